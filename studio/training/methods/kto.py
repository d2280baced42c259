"""Kahneman-Tversky optimisation (KTO): one answer per prompt, marked good or bad; the model is moved towards
the good answers and away from the bad ones, measured against the reference (the base with the adapter off, as
DPO: ``reference.py``) and a KL estimate from mismatched prompt/answer pairs of the same batch. TRL's
``KTOTrainer`` trains it over rows already tokenised.

With ``preference.balance: auto`` the rarer kind is weighed up so that desirable_weight x good answers equals
undesirable_weight x bad answers, the lower end of the range the KTO paper (Eq. 8) and TRL recommend."""

from __future__ import annotations

import logging
from typing import Any, Sequence

import torch

from ...config import StudioConfig
from ..args import ResolvedArgs, build_training_args
from . import pairs
from .dpo import fp32_adapters
from .reference import base_as_reference

_log = logging.getLogger("studio.training")

DATA = "labelled"
COLUMNS = ("prompt_ids", "completion_ids", "label")
METRICS = pairs.with_eval(pairs.REWARDS[:3] + ("logps/chosen", "logps/rejected", "kl"))
USUAL_BETA = 0.1


def dataset(rows: Sequence) -> Any:
    """A ``datasets.Dataset`` of ``EncodedLabelled`` rows: ``prompt_ids``, ``completion_ids``, ``label``."""
    from datasets import Dataset

    return Dataset.from_dict({"prompt_ids": [list(r.prompt_ids) for r in rows],
                              "completion_ids": [list(r.completion_ids) for r in rows],
                              "label": [bool(r.label) for r in rows]})


def balanced_weights(labels: Sequence[bool]) -> tuple[float, float]:
    """(desirable_weight, undesirable_weight): the rarer kind weighed up by the ratio of the counts, the other 1."""
    good = sum(1 for x in labels if x)
    bad = len(labels) - good
    if good == 0 or bad == 0 or good == bad:
        return 1.0, 1.0
    return (round(bad / good, 4), 1.0) if good < bad else (1.0, round(good / bad, 4))


def training_args(cfg: StudioConfig, output_dir: str, on_cuda: bool, dtype: torch.dtype, has_validation: bool,
                  train_rows: int = 0) -> ResolvedArgs:
    from trl import KTOConfig

    p = cfg.preference
    resolved = build_training_args(cfg, output_dir, on_cuda, dtype, has_validation, train_rows, KTOConfig, dict(
        **pairs.own_args(cfg, has_validation), beta=pairs.beta(cfg, USUAL_BETA), precompute_ref_log_probs=False,
        desirable_weight=p.desirable_weight, undesirable_weight=p.undesirable_weight,
        include_num_input_tokens_seen="non_padding"))      # the rows' own tokens (the KL twins not counted)
    resolved.args.padding_free = False
    resolved.args.studio_balance = p.balance     # the trainer balances the weights from the rows' labels
    return resolved


def collator(args: Any, tokenizer: Any) -> Any:
    """TRL's own: the rows and their mismatched KL twins, padded."""
    from trl.trainer.kto_trainer import DataCollatorForUnpairedPreference

    return DataCollatorForUnpairedPreference(pad_token_id=tokenizer.pad_token_id)


def step_tokens(cfg: StudioConfig) -> int:
    """The rows and, for the KL term, the same number of mismatched rows: twice an SFT step's sequences (the
    KL pass keeps no activations for backward, but its forward holds as many tokens at once)."""
    return 2 * cfg.training.batch_size * cfg.data.max_length


def worst_batch(rows: list, batch_size: int, collator: Any) -> tuple[dict, int]:
    longest = sorted(rows, key=lambda r: len(r.prompt_ids) + len(r.completion_ids), reverse=True)[:batch_size]
    feats = [{"prompt_ids": list(r.prompt_ids), "completion_ids": list(r.completion_ids), "label": bool(r.label)}
             for r in longest]
    for i, f in enumerate(feats):            # the KL twin: the previous row's answer, as TRL pairs them
        f["KL_completion_ids"] = feats[i - 1]["completion_ids"]
    batch = collator(feats)
    return batch, int(batch["input_ids"].numel() + batch["KL_input_ids"].numel())


def trainer(model, args, tokenizer, train, validation, callbacks, precision: str, collator: Any = None):
    from trl import KTOTrainer

    class Trainer(KTOTrainer):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            # tokenised by the data pipeline; only the KL twins are added, as TRL does (answers rotated by one
            # within each batch-sized block)
            if not self.calculate_KL:
                return dataset

            def add_kl(examples):
                examples["KL_completion_ids"] = [examples["completion_ids"][-1]] + examples["completion_ids"][:-1]
                return examples
            return dataset.map(add_kl, batched=True, batch_size=args.per_device_train_batch_size)

    out = Trainer(model=model, ref_model=None, args=args, train_dataset=train, eval_dataset=validation,
                  processing_class=tokenizer, callbacks=callbacks, data_collator=collator)
    base_as_reference(model)
    if getattr(args, "studio_balance", "auto") == "auto":
        labels = list(train["label"])
        out.desirable_weight, out.undesirable_weight = balanced_weights(labels)
        good = sum(labels)
        _log.info("KTO weights: good answers %s, bad answers %s (%d good, %d bad rows: balance auto).",
                  out.desirable_weight, out.undesirable_weight, good, len(labels) - good)
    return fp32_adapters(out, model, precision)
