"""Attention for padding-free batches: PyTorch's own variable-length FlashAttention kernel.

A padding-free batch is ONE sequence holding a step's rows back to back; each row must attend only
to itself. transformers offers three ways to do that without the ``flash_attn`` package, and the
benchmark (docs/BENCHMARKS.md) measured them:

* ``sdpa``: transformers turns the row boundaries into a dense ``T x T`` mask, so SDPA falls back to
  a kernel that computes every cross-row block and then throws it away (slower than padding).
* ``flex_attention``: a block-sparse document mask; compiled by Triton per sequence length.
* ``varlen`` (this module): ``torch.nn.attention.varlen.varlen_attn`` (PyTorch >= 2.10, CUDA) takes
  the row boundaries (``cu_seq_lens``) that TRL's padding-free collator already computes on the CPU,
  and skips cross-row work entirely, with no mask and no compilation.

transformers has no built-in name for the PyTorch kernel (its ``flash_attention_2`` needs the
``flash_attn`` package), so it is registered here under ``VARLEN``. The model is switched back to
``sdpa`` after training, since generation passes no row boundaries.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

VARLEN = "studio_varlen"
CHOICES = ("auto", "sdpa", "flex_attention", "varlen")


def varlen_available() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.get_device_capability()[0] >= 8     # FlashAttention needs Ampere or newer


def kernel_fits(model_config: Any) -> bool:
    """Whether the kernel computes this model's attention: it has no logit soft-capping (Gemma 2/3)."""
    text = model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config
    return not getattr(text, "attn_logit_softcapping", None)


def resolve_attention(choice: str, on_cuda: bool, padding_free: bool, model_config: Any = None,
                      dtype: torch.dtype | None = None) -> str:
    """The transformers ``attn_implementation`` for a config choice on this device, model and compute dtype.

    'auto' picks the variable-length kernel for padding-free batches on a GPU that has it, and SDPA
    everywhere else (padded batches, CPUs, older GPUs, soft-capped attention, float32 training: the
    FlashAttention kernel takes 16-bit inputs only and fails on float32 ones), where it is the
    fastest built-in choice."""
    if choice == "varlen" or (choice == "auto" and padding_free and on_cuda and varlen_available()):
        if (not padding_free or not varlen_available() or dtype == torch.float32
                or (model_config is not None and not kernel_fits(model_config))):
            return "sdpa"
        register()
        return VARLEN
    if choice == "flex_attention" and on_cuda:
        return "flex_attention"
    return "sdpa"


def _varlen_forward(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                    attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                    **kwargs: Any) -> tuple[torch.Tensor, None]:
    from torch.nn.attention.varlen import varlen_attn

    cu_q, cu_k = kwargs.get("cu_seq_lens_q"), kwargs.get("cu_seq_lens_k")
    if cu_q is None or dropout > 0:
        # No row boundaries (one plain sequence), or attention dropout, which the kernel does not
        # have: SDPA (with transformers' mask from the position ids).
        from transformers.integrations.sdpa_attention import sdpa_attention_forward
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling,
                                      dropout=dropout, **kwargs)
    # (1, heads, T, dim) -> (T, heads, dim): the kernel's packed layout.
    q = query.transpose(1, 2).reshape(-1, query.shape[1], query.shape[3])
    k = key.transpose(1, 2).reshape(-1, key.shape[1], key.shape[3])
    v = value.transpose(1, 2).reshape(-1, value.shape[1], value.shape[3])
    extra = {}
    if q.shape[1] != k.shape[1]:
        if _takes_gqa():
            extra["enable_gqa"] = True
        else:   # older kernels want as many key/value heads as query heads
            rep = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    cu_q = cu_q.to(device=q.device, dtype=torch.int32)
    cu_k = cu_q if cu_k is None else cu_k.to(device=q.device, dtype=torch.int32)
    max_q = int(kwargs.get("max_length_q") or 0) or int((cu_q[1:] - cu_q[:-1]).max())
    max_k = int(kwargs.get("max_length_k") or 0) or max_q
    # (left, right) = (-1, 0) is causal; a sliding window W keeps the W - 1 keys before each query.
    window = getattr(module, "sliding_window", None) or kwargs.get("sliding_window")
    window_size = (int(window) - 1 if window else -1, 0)
    out = varlen_attn(q, k, v, cu_q, cu_k, max_q, max_k, scale=scaling, window_size=window_size, **extra)
    return out.view(query.shape[0], query.shape[2], query.shape[1], query.shape[3]), None


_GQA: bool | None = None


def _takes_gqa() -> bool:
    global _GQA
    if _GQA is None:
        from torch.nn.attention.varlen import varlen_attn
        _GQA = "enable_gqa" in inspect.signature(varlen_attn).parameters
    return _GQA


def register() -> None:
    """Make ``attn_implementation=VARLEN`` known to transformers (idempotent). No mask function is
    registered on purpose: transformers then builds no mask at all, which is what the kernel wants."""
    from transformers import AttentionInterface
    AttentionInterface.register(VARLEN, _varlen_forward)


def set_attention(model: Any, implementation: str) -> str:
    """Switch a loaded model (or PeftModel) to another attention implementation; returns the one in
    use, which is SDPA where the model's code takes no other (older or remote-code architectures)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if getattr(base.config, "_attn_implementation", None) == implementation:
        return implementation
    try:
        base.set_attn_implementation(implementation)
        return implementation
    except (ValueError, ImportError, AttributeError, NotImplementedError):
        if implementation == "sdpa":
            return getattr(base.config, "_attn_implementation", "sdpa")
        return set_attention(model, "sdpa")
