"""What the pair methods (DPO, ORPO, SimPO) share: their rows as a dataset, what one step holds, its worst batch,
and the arguments they all take. Each pair is run through the model twice, as the chosen and as the rejected
answer, so one micro-batch holds twice the rows of an SFT batch."""

from __future__ import annotations

from typing import Any, Sequence

from ...config import StudioConfig

COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")
# What TRL's preference trainers log (keys without the 'eval_' their evaluation adds), kept in the metrics rows.
REWARDS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
           "logps/rejected")


def with_eval(keys: Sequence[str]) -> tuple[str, ...]:
    """The keys and their evaluation twins, as the trainer logs them on held-back rows."""
    return tuple(keys) + tuple(f"eval_{k}" for k in keys)


def dataset(rows: Sequence) -> Any:
    """A ``datasets.Dataset`` of ``EncodedPair`` rows: ``prompt_ids``, ``chosen_ids``, ``rejected_ids``."""
    from datasets import Dataset

    return Dataset.from_dict({c: [list(getattr(r, c)) for r in rows] for c in COLUMNS})


def step_tokens(cfg: StudioConfig) -> int:
    """Chosen and rejected both at the full length: twice an SFT step."""
    return 2 * cfg.training.batch_size * cfg.data.max_length


def longest(rows: list, batch_size: int) -> list:
    """The ``batch_size`` pairs whose longer answer makes the longest sequence."""
    def size(r):
        return len(r.prompt_ids) + max(len(r.chosen_ids), len(r.rejected_ids))
    return sorted(rows, key=size, reverse=True)[:batch_size]


def worst_batch(rows: list, batch_size: int, collator: Any) -> tuple[dict, int]:
    """The longest pairs as DPO's collator batches them (chosen and rejected stacked), and its tokens."""
    batch = collator([{c: list(getattr(r, c)) for c in COLUMNS} for r in longest(rows, batch_size)])
    return batch, int(batch["input_ids"].numel())


def beta(cfg: StudioConfig, usual: float) -> float:
    """``preference.beta``, or the method's ``usual`` value for 0."""
    return cfg.preference.beta or usual


def own_args(cfg: StudioConfig, has_validation: bool) -> dict:
    """What every preference method's arguments class is told: the rows are tokenised and cut already, and the
    held-back rows are measured once before training too, so the run can say how far the preference moved
    (``preference_summary``)."""
    return dict(max_length=None, dataset_num_proc=None, disable_dropout=True, eval_on_start=has_validation)


def separate_row(feature: dict, *_: Any) -> dict:
    """One pair in the columns TRL's ORPO and CPO (SimPO) trainers batch: ``prompt_input_ids``, and for each
    answer the whole sequence (``chosen_input_ids``, mask, ``chosen_labels`` with -100 on the prompt).

    Those trainers take text only and tokenise it again (prompt and answer apart, then joined), which need not
    give the tokens the data pipeline rendered; they replace their ``tokenize_row`` with this, so every method
    trains on the same tokens."""
    prompt = list(feature["prompt_ids"])
    out = {"prompt_input_ids": prompt, "prompt_attention_mask": [1] * len(prompt)}
    for side in ("chosen", "rejected"):
        answer = list(feature[f"{side}_ids"])
        out[f"{side}_input_ids"] = prompt + answer
        out[f"{side}_attention_mask"] = [1] * (len(prompt) + len(answer))
        out[f"{side}_labels"] = [-100] * len(prompt) + answer
    return out


def separate_worst_batch(rows: list, batch_size: int, collator: Any) -> tuple[dict, int]:
    """The longest pairs as the ORPO/CPO collator pads them; chosen and rejected both run."""
    batch = collator([separate_row({c: getattr(r, c) for c in COLUMNS}) for r in longest(rows, batch_size)])
    return batch, int(batch["chosen_input_ids"].numel() + batch["rejected_input_ids"].numel())
