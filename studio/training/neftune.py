"""NEFTune (training.neftune_noise_alpha): uniform noise on the word embeddings while training, scaled
per row as the paper does: within +-alpha / sqrt(L x d), L the row's own length in tokens, d the
embedding width.

The trainer's own hook scales by the length of the whole batch tensor: for a padded batch the
longest row with its padding, and for a padding-free batch (training.packing) all the step's rows
joined, which gave each row about 1/sqrt(rows) of the paper's noise. Here each row's length comes
from the model call itself: the position ids of a padding-free batch start again at 0 for each row,
and a padded batch's attention mask counts its real tokens.
"""

from __future__ import annotations

from typing import Any

import torch


class RowScaledNoise:
    """Adds NEFTune's noise to ``model``'s input embeddings while it is training (never in eval mode)."""

    def __init__(self, model: Any, alpha: float):
        self.model, self.alpha = model, float(alpha)
        self._call: dict = {}
        self._handles: list = []

    def attach(self) -> "RowScaledNoise":
        # The call's position ids and attention mask, kept for the embedding hook of the same call.
        self._handles = [self.model.register_forward_pre_hook(self._remember, with_kwargs=True),
                         self.model.get_input_embeddings().register_forward_hook(self._add_noise)]
        return self

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles, self._call = [], {}

    def _remember(self, module, args, kwargs) -> None:
        self._call = {k: kwargs.get(k) for k in ("position_ids", "attention_mask")}

    def _add_noise(self, module, inputs, output: torch.Tensor) -> torch.Tensor:
        if not module.training or self.alpha <= 0:
            return output
        lengths = row_lengths(output.shape[:2], self._call.get("position_ids"), self._call.get("attention_mask"))
        bound = self.alpha / torch.sqrt(lengths.to(output.device, torch.float32) * output.size(-1))
        noise = torch.empty_like(output).uniform_(-1, 1) * bound.unsqueeze(-1).to(output.dtype)
        return output + noise


def row_lengths(shape: torch.Size, position_ids: torch.Tensor | None,
                attention_mask: torch.Tensor | None) -> torch.Tensor:
    """For every token of a (batch, tokens) call, the length of the row it belongs to."""
    batch, tokens = shape
    if attention_mask is not None and attention_mask.dim() == 2 and not bool(attention_mask.all()):
        return attention_mask.sum(1, keepdim=True).clamp(min=1).expand(batch, tokens)
    if position_ids is not None and position_ids.shape == (batch, tokens):
        starts = (position_ids == 0).long()
        # Every row of the batch tensor numbers its own segments; offsets keep them apart.
        ids = starts.cumsum(1) + torch.arange(batch, device=starts.device).unsqueeze(1) * (tokens + 1)
        counts = torch.bincount(ids.flatten())
        return counts[ids]
    return torch.full((batch, tokens), tokens, dtype=torch.long)
