"""A model's size from its ``config.json`` alone: the model is built on PyTorch's ``meta`` device
(shapes, no memory, no weights), so the count is exact for every architecture transformers knows,
before anything is downloaded. ``config_facts`` is what the memory estimate reads; ``facts_for`` finds the
config.json a model setting names (the one way the app, the CLI, training and export ask).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any


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
    from .models import linear_module_names

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
    for full, module in model.named_modules():
        leaf = full.rsplit(".", 1)[-1]
        if leaf in in_out and module is not head and hasattr(module, "in_features"):
            in_out[leaf] += module.in_features + module.out_features
    return {"total": total, "embedding": embedding, "head": head_params, "tied": tied,
            "linear_modules": names, "lora_in_out": in_out}


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
            "lora_in_out": (size or {}).get("lora_in_out", {})}


def facts_for(model_cfg: Any) -> dict | None:
    """``config_facts`` of the model ``model_cfg`` (a ``ModelConfig``) names, without converting the built-in
    model or downloading weights for it: the built-in model not yet converted is read from its GGUF header, a
    Hub model not on this computer from its config.json alone (a few KB, cached), a folder even while its
    weights are still downloading. None when the sizes cannot be known that way (offline, no answer in time,
    an unreadable header); a source that cannot be used at all raises what ``resolve_source`` says."""
    from . import model_sources as ms
    source = model_cfg.source
    if source == "default" and not ms.is_converted(ms.default_model_dir()):
        config = ms.builtin_config()
        return config_facts(config) if config else None
    if ms.looks_like_hub_id(source) and not Path(source).exists():
        config = ms.hub_config(source)
        return config_facts(config) if config else None
    local = Path(source).expanduser()
    folder = local if (local / "config.json").is_file() else ms.resolve_source(source, model_cfg.trust_remote_code)
    return config_facts(folder)
