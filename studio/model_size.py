"""A model's size from its ``config.json`` alone: the model is built on PyTorch's ``meta`` device
(shapes, no memory, no weights), so the count is exact for every architecture transformers knows,
before anything is downloaded. Used by the memory estimate and the target-module picker.
"""

from __future__ import annotations

import warnings
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
    is tied to the embedding, and the names of the linear layers LoRA can target."""
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
    return {"total": total, "embedding": embedding, "head": head_params, "tied": tied,
            "linear_modules": linear_module_names(model)}
