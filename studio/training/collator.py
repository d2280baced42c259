"""Batches from already tokenised rows (``EncodedRow``): dynamic padding, or padding-free packing.

The data pipeline has already rendered each conversation with the chat template and set the loss
mask (labels are -100 where no loss is taken), so the collator only has to put rows side by side:

* ``packing=False``: pad ``input_ids`` / ``labels`` / ``attention_mask`` to the longest row of the
  batch (not to ``max_length``), on the right.
* ``packing=True``: concatenate the batch's rows into ONE sequence without any padding and give
  ``position_ids`` that restart at 0 for every row. With no attention mask, transformers detects the
  restarts and builds a block-diagonal causal mask (SDPA, eager and FlashAttention alike), so rows do
  not attend to each other. The first label of every row is masked so no row learns to predict the
  start of the next one. The number of rows per step stays ``batch_size``; the saving is the padding.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch.utils.data import Dataset


class EncodedDataset(Dataset):
    """A list of ``EncodedRow`` as the trainer wants it: dicts of token lists."""

    def __init__(self, rows: Sequence):
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        r = self.rows[i]
        return {"input_ids": list(r.input_ids), "labels": list(r.labels)}


class PaddingCollator:
    def __init__(self, pad_token_id: int, packing: bool = False, pad_to_multiple_of: int | None = None):
        self.pad_token_id = int(pad_token_id)
        self.packing = packing
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        if self.packing:
            return self._pack(features)
        longest = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            longest = (longest + m - 1) // m * m
        ids, labels, mask = [], [], []
        for f in features:
            n = len(f["input_ids"])
            pad = longest - n
            ids.append(list(f["input_ids"]) + [self.pad_token_id] * pad)
            labels.append(list(f["labels"]) + [-100] * pad)
            mask.append([1] * n + [0] * pad)
        return {"input_ids": torch.tensor(ids, dtype=torch.long),
                "labels": torch.tensor(labels, dtype=torch.long),
                "attention_mask": torch.tensor(mask, dtype=torch.long)}

    def _pack(self, features: list[dict]) -> dict[str, torch.Tensor]:
        ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        for f in features:
            row_labels = list(f["labels"])
            row_labels[0] = -100
            ids += list(f["input_ids"])
            labels += row_labels
            positions += range(len(f["input_ids"]))
        return {"input_ids": torch.tensor([ids], dtype=torch.long),
                "labels": torch.tensor([labels], dtype=torch.long),
                "position_ids": torch.tensor([positions], dtype=torch.long)}
