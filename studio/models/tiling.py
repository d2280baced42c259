"""MLP tiling over the sequence for long rows (``training.tile_mlp``).

A decoder layer's MLP (gate, up, their SiLU product, down) keeps tokens x intermediate values three times over for
the backward pass: at 131,072 tokens on an 8B shape (intermediate 14,336) that is 11.3 GB for one layer, most of
what a layer being recomputed under checkpointing needs. Tiled, the MLP runs over the sequence in tiles of
``tokens`` tokens, each tile a checkpoint of its own (non-reentrant, so it nests inside the layer's checkpoint and
its recompute): only the tile's input is kept, and in the backward pass each tile is recomputed and its
intermediate values freed before the next, so they exist for one tile at a time. The MLP is per token, so the
result is the same as untiled, up to the order of floating-point sums in the weights' gradients.

How: each MLP module's class is swapped for a subclass whose ``__call__`` splits the input and calls the module
itself per tile; the module, its name and its parameters are unchanged, so peft's LoRA-wrapped gate/up/down
projections and Liger's SwiGLU (which replaces the instance's ``forward``, before or after) work inside it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from ..config import MLP_TILE_TOKENS as TILE_TOKENS   # 8192 x 14,336 x 6 bytes = 0.7 GB of an 8B layer's MLP


class _TiledMLP:
    """Mixed in before the MLP's own class (``set_mlp_tiling``)."""

    _studio_tile_tokens: int = TILE_TOKENS

    def __call__(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        tile = int(self._studio_tile_tokens or 0)
        if args or kwargs or x.dim() < 2 or tile <= 0 or x.shape[-2] <= tile:
            return super().__call__(x, *args, **kwargs)
        call = super().__call__
        chunks = torch.split(x, tile, dim=-2)         # one SplitBackward: tile gradients joined once
        if torch.is_grad_enabled():
            outs = [checkpoint(call, c, use_reentrant=False) for c in chunks]
        else:
            outs = [call(c) for c in chunks]
        return torch.cat(outs, dim=-2)


_CLASSES: dict = {}


def _tiled_class(cls: type) -> type:
    if issubclass(cls, _TiledMLP):
        return cls
    if cls not in _CLASSES:
        _CLASSES[cls] = type("Tiled" + cls.__name__, (_TiledMLP, cls), {"_studio_untiled_class": cls})
    return _CLASSES[cls]


def mlp_modules(model: Any) -> list:
    """Each decoder layer's MLP (its ``mlp`` attribute: Llama, Mistral, Qwen, Gemma and most others)."""
    from .offload import decoder_layers
    return [m for layer in decoder_layers(model) if isinstance(m := getattr(layer, "mlp", None), torch.nn.Module)]


def set_mlp_tiling(model: Any, on: bool, tokens: int = TILE_TOKENS) -> int:
    """Each decoder layer's MLP runs rows longer than ``tokens`` in tiles of ``tokens`` (``on``), or whole as
    before. Returns the number of MLPs changed."""
    mlps = mlp_modules(model)
    for mlp in mlps:
        if on:
            mlp.__class__ = _tiled_class(type(mlp))
            mlp._studio_tile_tokens = int(tokens)
        elif isinstance(mlp, _TiledMLP):
            mlp.__class__ = mlp._studio_untiled_class
            mlp.__dict__.pop("_studio_tile_tokens", None)
    return len(mlps)


def is_tiled(model: Any) -> bool:
    mlps = mlp_modules(model)
    return bool(mlps) and all(isinstance(m, _TiledMLP) for m in mlps)
