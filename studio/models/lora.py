"""LoRA and the rest of peft's family on a loaded model: the linear layers they can adapt, the wrapping
itself (``lora.adapter``: LoRA, LoHa, LoKr, IA3, prefix / prompt tuning, LLaMA-Adapter; ``lora.init``: PiSSA,
OLoRA), and parameter counts (4-bit packed weights counted as the weights they stand for)."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from ..config import ALL_LINEAR, PROMPT_ADAPTERS, LoraConfig
from ..config_checks import check_target_modules
from ..errors import ConfigError, ModelError


def _linear_classes() -> tuple[type, ...]:
    from transformers.pytorch_utils import Conv1D   # GPT-2 style "linear" layers

    return (torch.nn.Linear, Conv1D)    # bnb Linear4bit / Linear8bitLt subclass nn.Linear


def linear_module_names(model: Any) -> list[str]:
    """Sorted unique leaf names of the linear layers LoRA can target (``q_proj``, ...), without the output head."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    names = set()
    for full, module in base.named_modules():
        if not isinstance(module, _linear_classes()) or module is head:
            continue
        parts = full.split(".")
        if any(p.startswith("lora_") for p in parts):       # LoRA's own A/B matrices
            continue
        if parts[-1] == "base_layer" and len(parts) > 1:     # a layer already wrapped by LoRA
            parts = parts[:-1]
        if parts[-1] != "lm_head":
            names.add(parts[-1])
    return sorted(names)


def _numel(p: torch.nn.Parameter) -> int:
    if type(p).__name__ == "Params4bit":
        # Two 4-bit values are packed per byte of storage, so numel() shows half (or less).
        shape = getattr(getattr(p, "quant_state", None), "shape", None)
        return int(shape.numel()) if shape is not None else p.numel() * 2 * p.element_size()
    return p.numel()


def parameter_counts(model: Any) -> dict:
    """``total`` and ``trainable`` parameters (4-bit packed weights counted as real weights)."""
    total = trainable = 0
    for p in model.parameters():
        n = _numel(p)
        total += n
        if p.requires_grad:
            trainable += n
    return {"total": total, "trainable": trainable}


def _enable_checkpointing(model: Any) -> None:
    # Non-reentrant checkpointing lets gradients reach LoRA weights without forcing input grads.
    kwargs = {"use_reentrant": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def apply_lora(model: Any, lora_cfg: LoraConfig, gradient_checkpointing: bool = False) -> Any:
    """Wrap ``model`` in the adapter ``lora_cfg.adapter`` names (a PeftModel); only the adapter is trainable.

    Target modules are checked against the model first, so a typo gives a ConfigError naming the
    layers that do exist.
    """
    from peft import get_peft_model

    check_adapter_fits(model, lora_cfg.adapter)
    names = linear_module_names(model)
    if not names:
        raise ModelError("This model has no linear layers that LoRA can adapt.", code="model.no_linear")
    # The settings were validated when the run started; only the model can say which layers it has.
    check_target_modules(lora_cfg, names)
    # The base stays frozen and in its own dtype, 4-bit or not. peft's prepare_model_for_kbit_training
    # (the QLoRA articles' recipe) would also cast every norm, the embedding and the output head to
    # float32: measured, that costs memory and a dtype copy of the head on every step, and buys no
    # accuracy under bf16 autocast (docs/BENCHMARKS.md). So only its freezing is kept.
    for p in model.parameters():
        p.requires_grad_(False)
    # peft's prefix tuning hands its keys and values in as a cache, which checkpointed layers cannot take.
    if gradient_checkpointing and lora_cfg.adapter != "prefix":
        _enable_checkpointing(model)
        model.config.use_cache = False
    peft_cfg = peft_config(model, lora_cfg)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)   # transformers 5 renames inside peft
            return get_peft_model(model, peft_cfg)
    except ValueError as e:
        raise ConfigError("LoRA cannot be applied with these settings: {detail}", code="config.lora_refused",
                          detail=str(e).splitlines()[0]) from None


# IA3 scales the input of feed-forward layers and the output of the others; these are the layers that
# take the MLP's wide activations in (peft's own per-model table names the same for Llama-style models).
_FEEDFORWARD = ("down_proj", "fc2", "w2", "c_proj", "dense_4h_to_h", "fc_out")
# The model types peft's adaption prompt (LLaMA-Adapter) knows how to recompute the queries of.
_ADAPTION_PROMPT_TYPES = ("llama", "mistral", "gpt2")


def check_adapter_fits(model: Any, adapter: str) -> None:
    """Refuse by name an adapter peft cannot put on this model's architecture."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    model_type = getattr(getattr(base, "config", None), "model_type", "")
    if adapter == "llama-adapter" and model_type not in _ADAPTION_PROMPT_TYPES:
        raise ConfigError("lora.adapter '{adapter}' does not work with this model ({architecture}): {reason}",
                          code="config.adapter_unsupported", adapter=adapter, architecture=model_type or "unknown",
                          reason="peft's LLaMA-Adapter recomputes the attention queries of Llama, Mistral and "
                                 "GPT-2 models only.")


def _targets(lora_cfg: LoraConfig) -> Any:
    target = lora_cfg.target_modules
    return ALL_LINEAR if target == ALL_LINEAR else list(target)


def peft_config(model: Any, lora_cfg: LoraConfig) -> Any:
    """The peft config of ``lora_cfg.adapter``. The size settings are shared: r (and alpha) for the
    weight adapters, ``virtual_tokens`` for the prompt-based ones."""
    import peft

    adapter, common = lora_cfg.adapter, {"task_type": "CAUSAL_LM"}
    if adapter == "lora":
        init = {"default": True, "pissa": "pissa_niter_4", "olora": "olora"}[lora_cfg.init]   # niter: fast SVD
        return peft.LoraConfig(r=lora_cfg.r, lora_alpha=lora_cfg.alpha, lora_dropout=lora_cfg.dropout,
                               target_modules=_targets(lora_cfg), use_dora=lora_cfg.use_dora,
                               use_rslora=lora_cfg.use_rslora, bias=lora_cfg.bias, init_lora_weights=init, **common)
    if adapter == "loha":
        return peft.LoHaConfig(r=lora_cfg.r, alpha=lora_cfg.alpha, module_dropout=lora_cfg.dropout,
                               target_modules=_targets(lora_cfg), **common)
    if adapter == "lokr":
        return peft.LoKrConfig(r=lora_cfg.r, alpha=lora_cfg.alpha, module_dropout=lora_cfg.dropout,
                               target_modules=_targets(lora_cfg), **common)
    if adapter == "ia3":
        if lora_cfg.target_modules == ALL_LINEAR:
            return peft.IA3Config(**common)     # peft's own table for the model type (Llama: k, v, down_proj)
        targets = list(lora_cfg.target_modules)
        return peft.IA3Config(target_modules=targets, feedforward_modules=[t for t in targets if t in _FEEDFORWARD],
                              **common)
    if adapter == "prefix":
        return peft.PrefixTuningConfig(num_virtual_tokens=lora_cfg.virtual_tokens, **common)
    if adapter == "prompt":
        return peft.PromptTuningConfig(num_virtual_tokens=lora_cfg.virtual_tokens, **common)
    layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    wanted = lora_cfg.adapter_layers or layers
    return peft.AdaptionPromptConfig(adapter_len=lora_cfg.virtual_tokens, adapter_layers=min(wanted, layers) or wanted,
                                     **common)


def follow_patched_forward(peft_model: Any) -> None:
    """LLaMA-Adapter's wrapper copies the model's ``forward`` when it is made; a trainer that patches the
    model's forward afterwards (TRL's chunked LM head) must be followed, or the wrapper calls the old one."""
    inner = getattr(peft_model, "base_model", None)
    if type(inner).__name__ == "AdaptionPromptModel":
        inner.forward = inner.model.forward


def skip_input_casts_under_autocast(peft_model: Any) -> None:
    """Under autocast, peft's cast of each LoRA layer's input to the adapter's float32 (cast straight back to
    16-bit by autocast for the matrix product) is a round trip that changes no bit: losses and gradients are
    identical without it (tests/test_lora_casts.py), and it is two copies forward and two backward per adapted
    layer: a step of the built-in model under bf16 autocast had 1,811 copy calls without it, 2,645 with it.
    Outside autocast (generation, float32 training) the cast is needed and stays on. peft's own 4-bit and
    8-bit LoRA layers follow the same rule (they cast only when autocast is off); its 16-bit layer always casts.

    LoRA layers only: IA3 and the others scale the input by their own vectors, where the dtype decides the
    arithmetic. The switch is set on every forward of the inner model, which runs inside the trainer's
    autocast (accelerate wraps the outer PeftModel's forward)."""
    from peft.tuners.lora import LoraLayer

    base = peft_model.get_base_model()
    layers = [m for m in base.modules() if isinstance(m, LoraLayer) and hasattr(m, "cast_input_dtype_enabled")]
    if not layers or any(getattr(m, "lora_variant", None) for m in layers):
        return           # DoRA and the other variants do their own arithmetic, which the test does not cover
    weight = next((p for m in layers for p in m.parameters() if p.requires_grad), None)
    device_type = weight.device.type if weight is not None else "cpu"

    def set_casts(_module, _args):
        cast = not torch.is_autocast_enabled(device_type)
        if layers[0].cast_input_dtype_enabled != cast:
            for m in layers:
                m.cast_input_dtype_enabled = cast

    remove_input_cast_switch(base)
    base._studio_cast_switch = base.register_forward_pre_hook(set_casts)


def remove_input_cast_switch(model: Any) -> None:
    handle = getattr(model, "_studio_cast_switch", None)
    if handle is not None:
        handle.remove()
        del model._studio_cast_switch


def clean_base(peft_model: Any) -> Any:
    """The base model under a previous run's adapter, with that adapter taken off, whatever its kind."""
    if peft_model.active_peft_config.is_prompt_learning:
        return peft_model.get_base_model()            # the virtual tokens live beside the model, not in it
    inner = peft_model.base_model
    if type(inner).__name__ == "AdaptionPromptModel":
        inner.disable_adapter_layers()                # the original attention modules back in their places
        return inner.model
    remove_input_cast_switch(peft_model.get_base_model())
    return peft_model.unload()


def is_prompt_adapter(lora_cfg: LoraConfig) -> bool:
    """Learned virtual tokens rather than weight changes: nothing to merge into the model."""
    return lora_cfg.adapter in PROMPT_ADAPTERS


def converts_on_save(lora_cfg: LoraConfig) -> bool:
    """PiSSA and OLoRA move the weights' main directions into the adapter: saved, it is converted back."""
    return lora_cfg.adapter == "lora" and lora_cfg.init != "default"
