"""Loading a base model for LoRA / QLoRA: the device and number format, the tokenizer, the model
(bitsandbytes 4-bit / 8-bit when asked), and what a loaded model is (``model_summary``).

Where a model comes from (default, .gguf, folder, Hub id) lives in ``sources.py``; this module loads
what it resolves. Every failure a user can cause becomes a ``ModelError`` with a plain message.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch

from ..config import ModelConfig
from ..errors import ModelError
from .lora import linear_module_names, parameter_counts
from .sources import remote_code_error, resolve_source

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
        # ram_free_gb: what gradient checkpointing 'offload' may fill with layer inputs (models/size.py)
        return {"device": "cuda", "name": torch.cuda.get_device_name(0), "total_gb": round(total / 1e9, 2),
                "free_gb": round(free / 1e9, 2), "ram_free_gb": round(_cpu_memory_gb()[1], 2), "bf16": _gpu_has_bf16(),
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
    from ..process_env import quantization_storage
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
        from ..process_env import model_placement
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
    beyond = [(r.row, top) for r in rows if (top := _top_id(r)) >= size]
    if beyond:
        row, top = min(beyond)        # the first such row of the file
        raise ModelError("Row {row} has token id {token}, but {name} has only {size} token embeddings: the "
                         "tokenizer does not belong to this model.", code="model.tokenizer_mismatch",
                         row=row, token=top, size=size, name=name)


def _top_id(row: Any) -> int:
    """The largest token id of a prepared row of any shape (its ``input_ids``, or a preference row's lists)."""
    return max((max(v, default=0) for k, v in vars(row).items() if k.endswith("_ids")), default=0)


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
