"""The trainer's view of the rows: already rendered, tokenised and loss-masked by studio/data.

Each ``EncodedRow`` becomes ``{"input_ids", "labels"}`` (labels are -100 where no loss is taken).
TRL's ``SFTTrainer`` recognises such a dataset as prepared and only batches it; its collator joins a
step's rows into one sequence with ``position_ids`` restarting at 0 per row (padding-free), or pads
them to the longest row of the batch.
"""

from __future__ import annotations

from typing import Sequence


def encoded_dataset(rows: Sequence):
    """A ``datasets.Dataset`` with the columns ``input_ids`` and ``labels``."""
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": [list(r.input_ids) for r in rows],
                              "labels": [list(r.labels) for r in rows]})
