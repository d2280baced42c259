"""A model's size, and the memory a LoRA run of it needs, from its ``config.json`` alone.

The model is built on PyTorch's ``meta`` device (shapes, no memory, no weights), so the count is exact
for every architecture transformers knows, before anything is downloaded. ``config_facts`` is what the
memory estimate reads; ``facts_for`` finds the config.json a model setting names (the one way the app,
the CLI, training and export ask); ``estimate_memory`` / ``estimate_from_facts`` turn the sizes and the
settings into GB. 'Fit to my GPU' (``studio/fit.py``) searches the settings with this estimate.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from .adapter_size import adapter_params
from ..config import MLP_TILE_TOKENS, REFERENCE_METHODS, DataConfig, LoraConfig, ModelConfig, StudioConfig, TrainingConfig


def meta_model(config: dict) -> Any:
    """The architecture of ``config`` with no weights (None for one transformers does not know)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = dict(config)
    model_type = cfg.pop("model_type", None)
    if not model_type:
        return None
    try:
        conf = AutoConfig.for_model(model_type, **cfg)
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")
            return AutoModelForCausalLM.from_config(conf)
    except Exception:  # unknown or remote-code architectures: the caller falls back to a formula
        return None


def size_facts(config: dict) -> dict | None:
    """``total`` parameters, ``embedding`` + ``head`` parameters (never quantized), whether the head
    is tied to the embedding, the names of the linear layers LoRA can target and, per name, the sum of
    in + out features over the model (``lora_in_out``: LoRA of rank r on those layers adds r x that)."""
    model = meta_model(config)
    if model is None:
        return None
    from .lora import linear_module_names

    embed = model.get_input_embeddings()
    head = model.get_output_embeddings()
    tied = head is not None and embed is not None and head.weight is embed.weight
    seen, total = set(), 0
    for p in model.parameters():          # tied weights once
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    embedding = embed.weight.numel() if embed is not None else 0
    head_params = 0 if (head is None or tied) else head.weight.numel()
    names = linear_module_names(model)
    in_out = dict.fromkeys(names, 0)
    dims: dict[str, list] = {n: [] for n in names}
    for full, module in model.named_modules():
        leaf = full.rsplit(".", 1)[-1]
        if leaf in in_out and module is not head and hasattr(module, "in_features"):
            in_out[leaf] += module.in_features + module.out_features
            dims[leaf].append((module.in_features, module.out_features))
    return {"total": total, "embedding": embedding, "head": head_params, "tied": tied,
            "linear_modules": names, "lora_in_out": in_out, "linear_dims": dims}


def _safetensors_params(folder: Path) -> int:
    """Parameter count from the safetensors headers (8-byte length + JSON), without loading weights."""
    import struct

    total = 0
    for f in folder.glob("*.safetensors"):
        try:
            with open(f, "rb") as fh:
                header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
        except (OSError, ValueError, struct.error):
            return 0
        for key, t in header.items():
            if key != "__metadata__":
                n = 1
                for d in t.get("shape", []):
                    n *= d
                total += n
    return total


def config_facts(folder: Path | dict) -> dict:
    """Sizes from a model folder's config.json (or the config itself) alone, without loading weights:
    for the memory estimate before a run starts, and before a Hub model is downloaded."""
    cfg = folder if isinstance(folder, dict) else json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    cfg = {**cfg.get("text_config", {}), **cfg}    # multimodal configs nest the language model
    pick = lambda *keys: next((int(cfg[k]) for k in keys if isinstance(cfg.get(k), (int, float))), 0)  # noqa: E731
    h = pick("hidden_size", "n_embd", "d_model")
    layers = pick("num_hidden_layers", "n_layer", "num_layers")
    vocab = pick("vocab_size")
    inter = pick("intermediate_size", "n_inner", "ffn_dim") or 4 * h
    size = size_facts(cfg)       # exact, from the architecture built on the meta device
    params = ((size or {}).get("total")
              or (0 if isinstance(folder, dict) else _safetensors_params(Path(folder)))   # unknown architecture
              or 12 * layers * h * h + vocab * h)                                         # classic estimate
    tied = size["tied"] if size else bool(cfg.get("tie_word_embeddings", True))
    heads = pick("num_attention_heads", "n_head", "num_heads")
    head_dim = pick("head_dim") or (h // heads if heads else 0)
    kv_width = (pick("num_key_value_heads") or heads) * head_dim or h     # grouped-query attention: narrower k, v
    return {"num_params": params, "hidden_size": h, "num_layers": layers, "vocab_size": vocab,
            "intermediate_size": inter, "kv_width": kv_width,
            "context_length": pick("max_position_embeddings", "n_positions"),
            "tied_embeddings": tied, "linear_modules": (size or {}).get("linear_modules", []),
            "lora_in_out": (size or {}).get("lora_in_out", {}), "linear_dims": (size or {}).get("linear_dims", {})}


def facts_for(model_cfg: Any) -> dict | None:
    """``config_facts`` of the model ``model_cfg`` (a ``ModelConfig``) names, without converting the built-in
    model or downloading weights for it: the built-in model not yet converted is read from its GGUF header, a
    Hub model not on this computer from its config.json alone (a few KB, cached), a folder even while its
    weights are still downloading. None when the sizes cannot be known that way (offline, no answer in time,
    an unreadable header); a source that cannot be used at all raises what ``resolve_source`` says."""
    from . import sources as ms
    source = model_cfg.source
    if ms.is_builtin(source) and not ms.is_converted(ms.default_model_dir()):
        config = ms.builtin_config()
        return config_facts(config) if config else None
    if ms.looks_like_hub_id(source) and not Path(source).exists():
        config = ms.hub_config(source)
        return config_facts(config) if config else None
    local = Path(source).expanduser()
    folder = local if (local / "config.json").is_file() else ms.resolve_source(source, model_cfg.trust_remote_code)
    return config_facts(folder)


# ---- memory estimate ------------------------------------------------------------------------------

# Bytes of optimizer state per trainable parameter (Adam keeps two moments).
_OPTIMIZER_BYTES = {"adamw_torch": 8, "paged_adamw_32bit": 8, "adamw_8bit": 2, "paged_adamw_8bit": 2,
                    "sgd": 0, "adafactor": 1}


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
                    lora_in_out: dict | None = None, device: dict | None = None, step_tokens: int | None = None,
                    linear_dims: dict | None = None) -> dict:
    """A rough but honest estimate (GB) of the memory a LoRA run needs on the card, and whether it fits.

    P parameters, E = vocab x hidden (times 2 unless tied: embeddings and head), h hidden, kv the width of
    k and v, i intermediate, L layers, T the tokens one micro-batch holds at its longest, as the training
    method says (``step_tokens``; without it batch x max length, every row at full length, as SFT holds):
    - weights: 16-bit P x 2 bytes (float32 on a CPU: x 4); 8-bit (P-E) x 1 + E x 2; 4-bit (P-E) x 4.13
      bits (4.5 without double quantization) + E x 2 (embedding and head stay 16-bit, never upcast);
    - adapters: N = r x sum(in + out) over the target layers for LoRA (exact from ``lora_in_out``; each other
      adapter its own shapes, ``adapter_size.adapter_params``), x (weight +
      gradient + optimizer state) bytes: 2 + 2 for a quantized base (TRL keeps its adapters in bf16),
      4 + 4 otherwise; plus 8 for Adam, 2 for 8-bit Adam;
    - activations without checkpointing: T x L x (12h + 4kv + 6i) bytes x _ACT_SCALE (4 per value on a
      CPU); with checkpointing ('on', and 'auto' at its smallest) each layer keeps its input, T x L x h x 2,
      plus one layer being recomputed; with 'offload' (and 'auto' when 'on' does not fit) the inputs are in
      CPU memory (``cpu_offload_gb``, not counted in the total) and the GPU holds two of them in flight and
      the layer being recomputed (``checkpointing`` says which mode the figures are for); with the MLP tiled
      (``training.tile_mlp`` 'on', or 'auto' with 'offload'; ``tile_mlp`` says) the MLP's 6i of a layer's
      values are kept for one tile of ``config.MLP_TILE_TOKENS`` tokens, not for T;
    - loss: TRL's chunked LM head never builds the logits of the whole vocabulary: one tile of
      4,096 tokens x 32,768 columns in 16-bit, and the answer tokens' hidden states and their gradient;
    - reference (DPO and KTO only, ``config.REFERENCE_METHODS``): their reference forward over the same T tokens
      runs without gradients after the trained forward, whose activations wait for the backward; a no-gradient
      forward frees each layer's values as it goes, so what it adds is its own loss tile and the T hidden states
      the head reads (one tile of the loss term; ORPO, SimPO and SFT have no such part);
    - overhead: on a GPU the CUDA context (0.9 GB) and the allocator's reserve (a quarter of the
      activations); 0.5 GB on a CPU.
    Checked against measured peaks in tests/test_memory_estimate.py.
    """
    dev = device or _this_device()
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
    n_lora = adapter_params(lora_cfg, hidden_size, inter, num_layers, kv_width, lora_in_out, linear_dims)
    adapter_bytes = 4 if quant != "none" else 8
    adapters = n_lora * (adapter_bytes + _OPTIMIZER_BYTES.get(training_cfg.optimizer, 8))
    tokens = step_tokens if step_tokens is not None else training_cfg.batch_size * data_cfg.max_length
    scale = _ACT_SCALE.get(quant, 1.0) if on_gpu else 2.0
    per_layer = (12 * hidden_size + 4 * (kv_width or hidden_size) + 6 * inter) * scale
    mlp_per_token = 6 * inter * scale           # the MLP's gate, up and their product: what tiling keeps to one tile
    kept = _CKPT_BYTES.get(quant, 2.0) if on_gpu else 4.0
    inputs = tokens * num_layers * hidden_size * kept        # every checkpointed layer's input
    value_bytes = 2 if on_gpu else 4
    tile = min(tokens, _LOSS_TILE[0]) * min(vocab_size, _LOSS_TILE[1])
    logits = (tile + 2 * tokens * hidden_size) * value_bytes
    free = float(dev.get("free_gb") or 0.0)

    tile_setting = getattr(training_cfg, "tile_mlp", "off")

    def parts_for(mode: str) -> tuple[dict, float]:
        """(the GPU's parts, bytes kept in CPU memory) with checkpointing ``mode``."""
        cpu = 0.0
        tiled = tile_setting == "on" or (tile_setting == "auto" and mode == "offload")
        # tiled, the MLP's values of every layer exist for one tile at a time (models/tiling.py)
        # (rows no longer than a tile run whole)
        mlp_saved = ((tokens * (num_layers if mode == "off" else 1) - MLP_TILE_TOKENS) * mlp_per_token
                     if tiled and tokens > MLP_TILE_TOKENS else 0.0)
        if mode == "off":
            activations = tokens * num_layers * per_layer
        elif mode == "offload" and on_gpu:
            # the inputs in CPU memory; on the GPU the layer being recomputed and two inputs in flight
            activations, cpu = tokens * (min(2, num_layers) * hidden_size * kept + per_layer), inputs
        else:      # 'on' (and 'offload' on a CPU, where the inputs already are)
            activations = inputs + tokens * per_layer
        activations -= mlp_saved
        overhead = _GPU_CONTEXT + _ALLOCATOR_SLACK * activations if on_gpu else 0.5e9
        parts = {"weights": weights, "adapters_and_optimizer": adapters, "activations": activations,
                 "logits": logits, "overhead": overhead}
        if getattr(training_cfg, "method", "sft") in REFERENCE_METHODS:
            parts["reference"] = (tile + tokens * hidden_size) * value_bytes
        return parts, cpu

    # 'auto' needs at least what every layer checkpointed needs, or, when that does not fit, the offload's
    # (checkpointing.choose does the same at run time); prefix tuning never checkpoints (its cache cannot pass
    # checkpointed layers).
    mode = training_cfg.gradient_checkpointing if lora_cfg.adapter != "prefix" else "off"
    if mode == "auto":
        mode = "on"
        if on_gpu and sum(parts_for("on")[0].values()) / 1e9 > free:
            mode = "offload"
    parts, cpu = parts_for(mode)
    total = sum(parts.values()) / 1e9
    # the offloaded inputs must fit the computer's free memory too, or the run swaps or is killed ('ram_free_gb':
    # known for the machine the app runs on, not for a budget 'Fit to my GPU' is asked about)
    ram = dev.get("ram_free_gb")
    ram_short = bool(cpu and ram is not None and cpu / 1e9 > float(ram))
    return {"parts": {k: round(v / 1e9, 3) for k, v in parts.items()}, "total_gb": round(total, 2),
            "free_gb": free, "fits": total <= free and not ram_short, "device": dev.get("device", "cpu"),
            "lora_params": n_lora, "ram_short": ram_short, "ram_free_gb": ram,
            "checkpointing": mode, "cpu_offload_gb": round(cpu / 1e9, 3),
            "tile_mlp": tile_setting == "on" or (tile_setting == "auto" and mode == "offload")}


def estimate_from_facts(cfg: StudioConfig, facts: dict, device: dict | None = None,
                        step_tokens: int | None = None) -> dict:
    """``estimate_memory`` for ``cfg`` with the model sizes of ``config_facts`` (``step_tokens``: the training
    method's, ``training.methods.step_tokens(cfg)``)."""
    return estimate_memory(facts["num_params"], cfg.model, cfg.lora, cfg.training, cfg.data, facts["hidden_size"],
                           facts["num_layers"], vocab_size=facts["vocab_size"],
                           intermediate_size=facts["intermediate_size"],
                           tied_embeddings=bool(facts.get("tied_embeddings", False)),
                           kv_width=facts.get("kv_width", 0), lora_in_out=facts.get("lora_in_out"), device=device,
                           step_tokens=step_tokens, linear_dims=facts.get("linear_dims"))


def _this_device() -> dict:
    # Imported here: reading a config's sizes needs no torch, which loading imports at once. Looked up
    # through the module, so whatever ``load.device_info`` is when the estimate runs is what it asks.
    from . import load
    return load.device_info()
