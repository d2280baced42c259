"""Correctness of the GPU-only fast paths, which the CPU test suite cannot reach.

    python benchmarks/check_gpu_paths.py

1. ``studio_varlen`` attention (PyTorch's variable-length FlashAttention) against SDPA run on each
   row alone: outputs and input gradients, bf16, grouped-query heads, rows of very different length.
2. A padding-free batch through a small Llama with the varlen kernel and Liger's kernels against
   the same rows padded through SDPA without Liger: the per-token losses.
Prints the relative errors (bf16 operands land near 1e-2 at most) and exits 1 if one is off.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().float() - b.detach().float()).norm() / b.detach().float().norm())


def check_kernel() -> float:
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    from studio.training.attention import _varlen_forward

    torch.manual_seed(0)
    lengths, hq, hkv, d = [37, 300, 5, 1024, 129], 32, 8, 64
    total = sum(lengths)
    q = torch.randn(1, hq, total, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(1, hkv, total, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn(1, hkv, total, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    cu = torch.tensor([0] + list(torch.tensor(lengths).cumsum(0)), dtype=torch.int32)
    out, _ = _varlen_forward(None, q, k, v, None, scaling=d ** -0.5, cu_seq_lens_q=cu, cu_seq_lens_k=cu,
                             max_length_q=max(lengths), max_length_k=max(lengths))
    grad = torch.randn_like(out)
    gq, gk, gv = torch.autograd.grad(out, (q, k, v), grad)
    refs, ref_grads = [], []
    for s, e in zip(cu[:-1].tolist(), cu[1:].tolist()):
        qi, ki, vi = (t[:, :, s:e].detach().float().requires_grad_() for t in (q, k, v))
        o = sdpa(qi, ki.repeat_interleave(hq // hkv, 1), vi.repeat_interleave(hq // hkv, 1), is_causal=True)
        o = o.transpose(1, 2)
        refs.append(o)
        ref_grads.append(torch.autograd.grad(o, (qi, ki, vi), grad[:, s:e].float()))
    ref = torch.cat(refs, 1)
    errs = {"out": rel(out, ref), "dq": rel(gq, torch.cat([g[0] for g in ref_grads], 2)),
            "dk": rel(gk, torch.cat([g[1] for g in ref_grads], 2)), "dv": rel(gv, torch.cat([g[2] for g in ref_grads], 2))}
    print("varlen attention vs SDPA per row (relative error):", {k: f"{v:.2e}" for k, v in errs.items()})
    return max(errs.values())


def check_model() -> float:
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from studio.training.attention import VARLEN, register

    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=512, intermediate_size=1536, num_hidden_layers=4, num_attention_heads=8,
                      num_key_value_heads=2, vocab_size=4000, max_position_embeddings=4096)
    model = LlamaForCausalLM(cfg).to("cuda", torch.bfloat16)
    rows = [torch.randint(0, 4000, (n,)).tolist() for n in (50, 700, 3, 1200)]
    feats = [{"input_ids": r, "labels": r} for r in rows]

    def per_token_loss(batch) -> torch.Tensor:
        batch = {k: v.cuda() if torch.is_tensor(v) else v for k, v in batch.items()}
        labels = batch.pop("labels")
        logits = model(**batch).logits.float()
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 4000), labels[:, 1:].reshape(-1),
                                                 reduction="none", ignore_index=-100)
        return loss[labels[:, 1:].reshape(-1) != -100]

    with torch.no_grad():
        model.set_attn_implementation("sdpa")
        padded = per_token_loss(DataCollatorForLanguageModeling(pad_token_id=0)(feats))
        register()
        model.set_attn_implementation(VARLEN)
        try:
            from liger_kernel.transformers import _apply_liger_kernel_to_instance
            _apply_liger_kernel_to_instance(model=model, rms_norm=True, rope=True, swiglu=True,
                                            cross_entropy=False, fused_linear_cross_entropy=False)
            liger = "with Liger kernels"
        except ImportError:
            liger = "(liger-kernel not installed)"
        free = per_token_loss(DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(feats))
    # Padding-free masks each row's first label (no learning across the seam); padded rows have it as
    # their shifted-out position anyway, so both keep the same tokens in the same order.
    err = rel(free, padded)
    print(f"padding-free + varlen {liger} vs padded SDPA, per-token loss: {err:.2e} "
          f"(mean {free.mean():.4f} vs {padded.mean():.4f}, {free.numel()} tokens)")
    return err


def main() -> int:
    if not torch.cuda.is_available():
        print("needs an NVIDIA GPU")
        return 2
    worst = max(check_kernel(), check_model())
    print("OK" if worst < 2e-2 else "FAILED", f"(worst {worst:.2e})")
    return 0 if worst < 2e-2 else 1


if __name__ == "__main__":
    sys.exit(main())
