"""Loading base models for LoRA / QLoRA: tokenizer, dtype, quantization, adapters, facts and sizes.

Where a model comes from (default, .gguf, folder, Hub id) lives in ``model_sources``; this module
loads what it resolves: ``load_tokenizer``, ``load_model`` (bitsandbytes 4-bit / 8-bit when asked),
``apply_lora``, ``linear_module_names``, ``parameter_counts``, ``device_info``, ``estimate_memory``
and ``model_summary``. Every failure a user can cause becomes a ``ModelError`` with a plain message.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch

from .config import ALL_LINEAR, DataConfig, LoraConfig, ModelConfig, StudioConfig, TrainingConfig
from .config_checks import check_target_modules
from .errors import ConfigError, ModelError
from .model_size import config_facts  # noqa: F401
from .model_sources import default_gguf, default_model_dir, remote_code_error, resolve_source  # noqa: F401

# peft asks every model it wraps for ``is_gradient_checkpointing``, which transformers 5 deprecates with a
# FutureWarning: `studio eval` and `studio export` printed it to people who can do nothing about it.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)

log = logging.getLogger(__name__)

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


# ---- device and number format --------------------------------------------------------------

def _cpu_memory_gb() -> tuple[float, float]:
    """(total, available) RAM in GB; /proc/meminfo where it exists, sysconf otherwise."""
    total = free = 0.0
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            info = {line.split(":")[0]: float(line.split()[1]) * 1024 for line in f if ":" in line}
        total, free = info.get("MemTotal", 0.0), info.get("MemAvailable", info.get("MemFree", 0.0))
    except (OSError, ValueError, IndexError):
        try:
            page = os.sysconf("SC_PAGE_SIZE")
            total = page * os.sysconf("SC_PHYS_PAGES")
            free = page * os.sysconf("SC_AVPHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            pass
    return total / 1e9, free / 1e9


def _gpu_has_bf16() -> bool:
    # Native bf16 needs compute capability 8.0 (Ampere) or newer; older cards only emulate it slowly.
    return torch.cuda.is_available() and torch.cuda.get_device_capability(0)[0] >= 8


def _cpu_has_bf16() -> bool:
    """Whether this processor multiplies bfloat16 natively (AVX512-BF16 or AMX: AMD Zen 4, Intel Sapphire Rapids
    and newer). There LoRA training runs about twice as fast in bfloat16 as in float32 (docs/BENCHMARKS.md);
    elsewhere PyTorch emulates bfloat16, far slower than float32."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    try:
        return any(bool(p()) for p in probes if p is not None)
    except Exception:       # a probe of a PyTorch build that lacks it: take float32, which is always right
        return False


def device_info() -> dict:
    """The device training will use: ``device`` ('cuda'|'cpu'), ``name``, ``total_gb``, ``free_gb``, ``bf16``, ``note``."""
    if torch.cuda.is_available():
        try:
            free, total = torch.cuda.mem_get_info(0)
        except RuntimeError:
            free, total = 0, torch.cuda.get_device_properties(0).total_memory
        return {"device": "cuda", "name": torch.cuda.get_device_name(0), "total_gb": round(total / 1e9, 2),
                "free_gb": round(free / 1e9, 2), "bf16": _gpu_has_bf16(),
                "note": "" if _gpu_has_bf16() else "This GPU has no fast bfloat16: float16 is used."}
    total, free = _cpu_memory_gb()
    return {"device": "cpu", "name": f"CPU ({os.cpu_count() or 1} cores)", "total_gb": round(total, 2),
            "free_gb": round(free, 2), "bf16": _cpu_has_bf16(), "note": "CPU only: training will be slow"}


def dtype_and_note(model_cfg: ModelConfig) -> tuple[torch.dtype, str]:
    """The compute dtype for ``model_cfg.compute_dtype`` on this machine, and a note when it differs."""
    choice = model_cfg.compute_dtype
    if not torch.cuda.is_available():
        native = _cpu_has_bf16()
        if choice == "auto" or (choice == "bfloat16" and native):
            return (torch.bfloat16 if native else torch.float32), ""
        if choice in ("bfloat16", "float16"):
            # Without native 16-bit arithmetic a CPU emulates it, about 20x slower than float32.
            return torch.float32, f"{choice} is slow on this processor (no native 16-bit maths), so float32 is used instead."
        return torch.float32, ""
    if choice == "auto":
        return (torch.bfloat16 if _gpu_has_bf16() else torch.float16), ""
    if choice == "bfloat16" and not _gpu_has_bf16():
        return torch.float16, "This GPU has no native bfloat16, so float16 is used instead."
    return _DTYPES.get(choice, torch.float32), ""


def resolve_dtype(model_cfg: ModelConfig) -> torch.dtype:
    """auto → bf16 on GPUs that have it, fp16 on older GPUs; on a CPU bf16 where it has native bf16 maths, else fp32."""
    dtype, note = dtype_and_note(model_cfg)
    if note:
        log.warning(note)
    return dtype


# ---- tokenizer and model ----------------------------------------------------------------------

@contextlib.contextmanager
def _friendly_errors(name: str, quantization: str = "none") -> Iterator[None]:
    """Turn the errors a user can cause while loading into ModelError."""
    try:
        yield
    except ModelError:
        raise
    except torch.cuda.OutOfMemoryError:
        free_gpu()
        raise _oom_error(name, quantization) from None
    except MemoryError:
        raise _oom_error(name, quantization) from None
    except (ValueError, OSError, RuntimeError, KeyError, ImportError) as e:
        text = str(e)
        low = text.lower()
        if "out of memory" in low or "can't allocate memory" in low or "not enough memory" in low:
            free_gpu()
            raise _oom_error(name, quantization) from None
        if "trust_remote_code" in text or "custom code" in low:
            raise remote_code_error(name) from None
        if "bitsandbytes" in low:
            raise ModelError("Quantized loading needs the bitsandbytes package ({detail}).", code="model.no_bitsandbytes",
                             detail=text.splitlines()[0] if text else "") from None
        first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
        raise ModelError("Could not load {name}: {detail}", code="model.load_failed", name=name, detail=first) from None


def _oom_error(name: str, quantization: str) -> ModelError:
    return ModelError("Not enough memory to load {name}.", name=name,
                      code="model.oom_quantize" if quantization in ("none", "8bit") else "model.oom")


def free_gpu() -> None:
    """Hand cached GPU memory back after a model is dropped (call after ``del model; gc.collect()``)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # kernels still running hold their blocks until they finish
        torch.cuda.empty_cache()


def load_tokenizer(model_cfg: ModelConfig) -> Any:
    """The model's tokenizer with a pad token (eos, else unk, else bos: no new tokens are added)."""
    from transformers import AutoTokenizer

    folder = resolve_source(model_cfg.source, model_cfg.trust_remote_code)
    with _friendly_errors(model_cfg.source):
        tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=model_cfg.trust_remote_code)
    if tok.pad_token is None:
        # A new token would need a resized embedding matrix, which LoRA does not train; reuse one.
        for candidate in ("eos_token", "unk_token", "bos_token"):
            if getattr(tok, candidate, None) is not None:
                tok.pad_token = getattr(tok, candidate)
                break
        else:
            raise ModelError("The tokenizer of {name} has no end-of-text, unknown or start token to use for padding, "
                             "so batches cannot be built.", code="model.no_pad_token", name=model_cfg.source)
    return tok


def _quantization_config(model_cfg: ModelConfig, dtype: torch.dtype) -> Any:
    if model_cfg.quantization == "none":
        return None
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ModelError("Quantization needs the bitsandbytes package.", code="model.no_bitsandbytes", detail="") from None
    from transformers import BitsAndBytesConfig

    if model_cfg.quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    from .process_env import quantization_storage
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=model_cfg.quantization.split("-")[1],
                              bnb_4bit_use_double_quant=model_cfg.double_quant, bnb_4bit_compute_dtype=dtype,
                              **quantization_storage(dtype))


def load_model(model_cfg: ModelConfig, for_training: bool = True) -> Any:
    """The base model on ``cuda`` (if present) or ``cpu``, in the resolved dtype, quantized as configured.

    bitsandbytes 0.50 runs 4-bit (NF4/FP4) and 8-bit layers on a CPU too, including backward through
    LoRA, so no quantization is refused on a CPU (it is only slow there).
    """
    from transformers import AutoModelForCausalLM

    folder = resolve_source(model_cfg.source, model_cfg.trust_remote_code)
    dtype = resolve_dtype(model_cfg)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    quant = _quantization_config(model_cfg, dtype)
    if device == "cpu" and model_cfg.quantization == "8bit":
        # It works (bitsandbytes 0.50 has CPU int8 kernels) but measured 10-30x slower per step than 'none'.
        log.warning("8-bit on a CPU works but is very slow; '4bit-nf4' or 'none' train much faster here.")
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": model_cfg.trust_remote_code}
    if any(Path(folder).glob("*.safetensors")):
        kwargs["use_safetensors"] = True      # never unpickle a .bin when a safe twin exists
    if quant is not None:
        kwargs["quantization_config"] = quant
    if device == "cuda" or quant is not None:
        # Straight onto the GPU (this process's own one in a multi-GPU run), layer by layer: no full
        # copy in CPU memory first. With FSDP there is none: FSDP places and shards the weights.
        from .process_env import model_placement
        placement = model_placement(device == "cuda")
        if placement is not None:
            kwargs["device_map"] = placement
    with _friendly_errors(model_cfg.source, model_cfg.quantization), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*cast from torch.float32 to float16.*")
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    if for_training:
        model.config.use_cache = False   # no KV cache is needed while training; it only costs memory
    else:
        model.eval()
    return model


def check_vocabulary(model: Any, rows: Any, name: str) -> None:
    """Every token id of the prepared rows has an embedding in the model. A tokenizer with more tokens than
    the model (another model's, or added tokens the model was never resized for) would otherwise stop the
    first step on a GPU with "device-side assert triggered", which names neither the row nor the cause."""
    size = model.get_input_embeddings().num_embeddings
    beyond = [(r.row, top) for r in rows if (top := max(r.input_ids, default=0)) >= size]
    if beyond:
        row, top = min(beyond)        # the first such row of the file
        raise ModelError("Row {row} has token id {token}, but {name} has only {size} token embeddings: the "
                         "tokenizer does not belong to this model.", code="model.tokenizer_mismatch",
                         row=row, token=top, size=size, name=name)


# ---- LoRA ---------------------------------------------------------------------------------------

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
    """Wrap ``model`` in LoRA adapters (a PeftModel); only the adapters are trainable.

    Target modules are checked against the model first, so a typo gives a ConfigError naming the
    layers that do exist.
    """
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

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
    if gradient_checkpointing:
        _enable_checkpointing(model)
        model.config.use_cache = False
    target = lora_cfg.target_modules
    peft_cfg = PeftLoraConfig(r=lora_cfg.r, lora_alpha=lora_cfg.alpha, lora_dropout=lora_cfg.dropout,
                              target_modules=ALL_LINEAR if target == ALL_LINEAR else list(target),
                              use_dora=lora_cfg.use_dora, use_rslora=lora_cfg.use_rslora, bias=lora_cfg.bias,
                              task_type="CAUSAL_LM")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)   # transformers 5 renames inside peft
            return get_peft_model(model, peft_cfg)
    except ValueError as e:
        raise ConfigError("LoRA cannot be applied with these settings: {detail}", code="config.lora_refused",
                          detail=str(e).splitlines()[0]) from None


# ---- memory estimate ------------------------------------------------------------------------------

# Bytes of optimizer state per trainable parameter (Adam keeps two moments).
_OPTIMIZER_BYTES = {"adamw_torch": 8, "paged_adamw_32bit": 8, "adamw_8bit": 2, "paged_adamw_8bit": 2,
                    "sgd": 0, "adafactor": 1}
_ATTN = ("q_proj", "k_proj", "v_proj", "o_proj", "query", "key", "value", "dense", "c_attn", "qkv_proj", "out_proj")


def _lora_params(lora_cfg: LoraConfig, hidden: int, inter: int, layers: int, in_out: dict | None = None) -> int:
    """LoRA adds r x (in + out) per adapted layer. ``in_out`` (model_size.size_facts: in + out summed per
    layer name) makes it exact; without it, attention layers count as h->h and MLP layers as h<->i."""
    targets = lora_cfg.target_modules
    if in_out:
        names = in_out if targets == ALL_LINEAR else [t for t in targets if t in in_out]
        return lora_cfg.r * sum(in_out[n] for n in names)
    if targets == ALL_LINEAR:
        per_layer = 4 * 2 * hidden + 3 * (hidden + inter)
    else:
        per_layer = sum(2 * hidden if t in _ATTN else hidden + inter for t in targets)
    return lora_cfg.r * per_layer * layers


# Activation bytes a layer that is not checkpointed keeps per token: 12h + 4kv + 6i (h hidden, kv the
# width of k and v, i intermediate; with Liger's kernels, 16-bit values), x _ACT_SCALE. Measured on an
# H100 (docs/BENCHMARKS.md, memory scenarios): 137 KB per token and layer for both Llama-2-7B (MHA) and
# Llama-3-8B (GQA) shapes, where this formula gives 132 and 139. bitsandbytes int8 keeps far more; a
# float32 CPU keeps everything in 4 bytes. A checkpointed layer keeps only its input: h x _CKPT_BYTES.
_ACT_SCALE = {"none": 1.0, "4bit-nf4": 1.0, "4bit-fp4": 1.0, "8bit": 3.3}
_CKPT_BYTES = {"none": 2.0, "4bit-nf4": 2.0, "4bit-fp4": 2.0, "8bit": 28.0}
_LOSS_TILE = (4096, 32768)      # TRL's chunked LM head: tokens x vocabulary columns per tile
# Beyond what PyTorch allocates: the CUDA context, cuBLAS workspaces and loaded kernels (0.9 GB measured
# outside the allocator, paged optimizer states aside), and the caching allocator's reserve over its
# peak, which grows with the activations (0.14-1.3 GB measured, up to ~40% of them with checkpointing).
_GPU_CONTEXT = 0.9e9
_ALLOCATOR_SLACK = 0.25


def estimate_memory(num_params: int, model_cfg: ModelConfig, lora_cfg: LoraConfig, training_cfg: TrainingConfig,
                    data_cfg: DataConfig, hidden_size: int, num_layers: int, *, vocab_size: int = 0,
                    intermediate_size: int = 0, tied_embeddings: bool = False, kv_width: int = 0,
                    lora_in_out: dict | None = None, device: dict | None = None) -> dict:
    """A rough but honest estimate (GB) of the memory a LoRA run needs on the card, and whether it fits.

    P parameters, E = vocab x hidden (times 2 unless tied: embeddings and head), h hidden, kv the width of
    k and v, i intermediate, L layers, T = batch x max length tokens (the worst case: every row at full
    length):
    - weights: 16-bit P x 2 bytes (float32 on a CPU: x 4); 8-bit (P-E) x 1 + E x 2; 4-bit (P-E) x 4.13
      bits (4.5 without double quantization) + E x 2 (embedding and head stay 16-bit, never upcast);
    - adapters: N = r x sum(in + out) over the target layers (exact from ``lora_in_out``), x (weight +
      gradient + optimizer state) bytes: 2 + 2 for a quantized base (TRL keeps its adapters in bf16),
      4 + 4 otherwise; plus 8 for Adam, 2 for 8-bit Adam;
    - activations without checkpointing: T x L x (12h + 4kv + 6i) bytes x _ACT_SCALE (4 per value on a
      CPU); with checkpointing ('on', and 'auto' at its smallest) each layer keeps its input, T x L x h x 2,
      plus one layer being recomputed;
    - loss: TRL's chunked LM head never builds the logits of the whole vocabulary: one tile of
      4,096 tokens x 32,768 columns in 16-bit, and the answer tokens' hidden states and their gradient;
    - overhead: on a GPU the CUDA context (0.9 GB) and the allocator's reserve (a quarter of the
      activations); 0.5 GB on a CPU.
    Checked against measured peaks in tests/test_memory_estimate.py.
    """
    dev = device or device_info()
    on_gpu = dev.get("device") == "cuda"
    quant = model_cfg.quantization
    embed = vocab_size * hidden_size * (1 if tied_embeddings else 2)
    if quant == "none":
        weights = num_params * (2 if on_gpu else 4)
    elif quant == "8bit":
        weights = (num_params - embed) * 1 + embed * 2
    else:
        bits = 4 + (0.127 if model_cfg.double_quant else 0.5)
        weights = (num_params - embed) * bits / 8 + embed * 2
    inter = intermediate_size or 4 * hidden_size
    n_lora = _lora_params(lora_cfg, hidden_size, inter, num_layers, lora_in_out)
    adapter_bytes = 4 if quant != "none" else 8
    adapters = n_lora * (adapter_bytes + _OPTIMIZER_BYTES.get(training_cfg.optimizer, 8))
    tokens = training_cfg.batch_size * data_cfg.max_length
    per_layer = (12 * hidden_size + 4 * (kv_width or hidden_size) + 6 * inter) * (
        _ACT_SCALE.get(quant, 1.0) if on_gpu else 2.0)
    if training_cfg.gradient_checkpointing != "off":     # 'auto' needs at least this much
        kept = _CKPT_BYTES.get(quant, 2.0) if on_gpu else 4.0
        activations = tokens * (num_layers * hidden_size * kept + per_layer)
    else:
        activations = tokens * num_layers * per_layer
    value_bytes = 2 if on_gpu else 4
    logits = (min(tokens, _LOSS_TILE[0]) * min(vocab_size, _LOSS_TILE[1]) + 2 * tokens * hidden_size) * value_bytes
    overhead = _GPU_CONTEXT + _ALLOCATOR_SLACK * activations if on_gpu else 0.5e9
    parts = {"weights": weights, "adapters_and_optimizer": adapters, "activations": activations,
             "logits": logits, "overhead": overhead}
    total = sum(parts.values()) / 1e9
    free = float(dev.get("free_gb") or 0.0)
    return {"parts": {k: round(v / 1e9, 3) for k, v in parts.items()}, "total_gb": round(total, 2),
            "free_gb": free, "fits": total <= free, "device": dev.get("device", "cpu"), "lora_params": n_lora}


def estimate_from_facts(cfg: StudioConfig, facts: dict, device: dict | None = None) -> dict:
    """``estimate_memory`` for ``cfg`` with the model sizes of ``model_size.config_facts``."""
    return estimate_memory(facts["num_params"], cfg.model, cfg.lora, cfg.training, cfg.data, facts["hidden_size"],
                           facts["num_layers"], vocab_size=facts["vocab_size"],
                           intermediate_size=facts["intermediate_size"],
                           tied_embeddings=bool(facts.get("tied_embeddings", False)),
                           kv_width=facts.get("kv_width", 0), lora_in_out=facts.get("lora_in_out"), device=device)


# ---- summary --------------------------------------------------------------------------------------

def quantization_of(model: Any) -> str:
    """'4bit-nf4', '4bit-fp4', '8bit' or 'none' for a loaded model."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    q = getattr(base.config, "quantization_config", None)
    if q is None:
        return "none"
    get = (lambda k: q.get(k)) if isinstance(q, dict) else (lambda k: getattr(q, k, None))
    if get("load_in_4bit"):
        return f"4bit-{get('bnb_4bit_quant_type') or 'fp4'}"
    if get("load_in_8bit"):
        return "8bit"
    return str(get("quant_method") or "none")


def model_summary(model: Any, tokenizer: Any) -> dict:
    """What the UI shows about a loaded model: architecture, size, context, template, LoRA targets."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = base.config
    has_template = bool(getattr(tokenizer, "chat_template", None))
    counts = parameter_counts(model)
    return {
        "architecture": (getattr(cfg, "architectures", None) or [type(base).__name__])[0],
        "params": counts["total"],
        "trainable_params": counts["trainable"],
        "context_length": getattr(cfg, "max_position_embeddings", None),
        "has_chat_template": has_template,
        "template": "model" if has_template else "chatml fallback",
        "linear_modules": linear_module_names(model),
        "dtype": str(getattr(base, "dtype", "")).replace("torch.", ""),
        "quantization": quantization_of(model),
        "device": str(getattr(base, "device", "cpu")),
    }
