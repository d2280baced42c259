"""Direct preference optimisation (DPO, and the losses TRL offers beside it: IPO, hinge...): the model is moved
towards each pair's chosen answer and away from its rejected one, the log-likelihoods measured against the
reference, the model as the run started. TRL's ``DPOTrainer`` trains it over pairs already tokenised.

The reference is no second model: with a LoRA adapter TRL computes it with the adapter switched off (a fresh
adapter adds nothing, so that is the base); a run that starts from an earlier adapter (``--from-run``) gets a
frozen copy of that adapter, named "ref", as its reference (the SFT model DPO is meant to start from), a few
megabytes, never a copy of the base.
"""

from __future__ import annotations

from typing import Any

import torch

from ...config import StudioConfig
from ..args import ResolvedArgs, build_training_args
from . import pairs
from .reference import base_as_reference

DATA = "pair"
COLUMNS = pairs.COLUMNS
METRICS = pairs.with_eval(pairs.REWARDS)
USUAL_BETA = 0.1

step_tokens = pairs.step_tokens
worst_batch = pairs.worst_batch


def dataset(rows) -> Any:
    """The pairs, with the length a pair pads its batch to (prompt and its longer answer) for grouping."""
    data = pairs.dataset(rows)
    return data.add_column("length", [len(p) + max(len(c), len(r)) for p, c, r in
                                      zip(data["prompt_ids"], data["chosen_ids"], data["rejected_ids"])])


def losses(cfg: StudioConfig) -> tuple[list[str], list[float]]:
    """TRL's ``loss_type`` and ``loss_weights``: the chosen loss, and the NLL term of the chosen answer (RPO)
    when ``preference.sft_weight`` is above 0."""
    p = cfg.preference
    if p.sft_weight > 0:
        return [p.loss, "sft"], [1.0, p.sft_weight]
    return [p.loss], [1.0]


def training_args(cfg: StudioConfig, output_dir: str, on_cuda: bool, dtype: torch.dtype, has_validation: bool,
                  train_rows: int = 0) -> ResolvedArgs:
    from trl import DPOConfig

    loss_type, weights = losses(cfg)
    return build_training_args(cfg, output_dir, on_cuda, dtype, has_validation, train_rows, DPOConfig, dict(
        **pairs.own_args(cfg, has_validation), beta=pairs.beta(cfg, USUAL_BETA), loss_type=loss_type, loss_weights=weights,
        padding_free=False, precompute_ref_log_probs=False, **grouping(cfg),
        include_num_input_tokens_seen="non_padding"))


def grouping(cfg: StudioConfig) -> dict:
    """transformers' length-grouped sampler (batches of similar length, shuffled in groups) when asked for; on the
    synthetic pairs of benchmarks/preference_speed.py it cut the padded tokens of a step (docs/BENCHMARKS.md)."""
    if cfg.training.group_by_length and cfg.training.batch_size > 1:
        return {"train_sampling_strategy": "group_by_length", "length_column_name": "length"}
    return {}


def collator(args: Any, tokenizer: Any) -> Any:
    """TRL's own: chosen then rejected rows, padded, with the answers' completion mask."""
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    return DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id)


def trainer(model, args, tokenizer, train, validation, callbacks, precision: str, collator: Any = None):
    from trl import DPOTrainer

    class Trainer(DPOTrainer):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset       # the pairs are tokenised, templated and cut by the data pipeline already

    out = Trainer(model=model, ref_model=None, args=args, train_dataset=train, eval_dataset=validation,
                  processing_class=tokenizer, callbacks=callbacks, data_collator=collator)
    base_as_reference(model)
    return fp32_adapters(out, model, precision)


def fp32_adapters(out, model, precision: str):
    """float16 mixed precision needs float32 adapters for its gradient scaler (as SFT)."""
    if precision == "fp16":
        for p in model.parameters():
            if p.requires_grad and p.dtype != torch.float32:
                p.data = p.data.float()
    return out
