"""Odds ratio preference optimisation (ORPO): learning to write each pair's chosen answer (the SFT loss) and, in
the same step, raising the odds of the chosen answer over the rejected one. No reference model, so it can start
from a base model. TRL's experimental ``ORPOTrainer`` trains it, on the pipeline's tokens (``pairs.separate_row``).
"""

from __future__ import annotations

from typing import Any

import torch

from ...config import StudioConfig
from ..args import ResolvedArgs, build_training_args
from . import pairs
from .dpo import fp32_adapters

DATA = "pair"
COLUMNS = pairs.COLUMNS
METRICS = pairs.with_eval(pairs.REWARDS + ("nll_loss", "log_odds_ratio", "log_odds_chosen"))
USUAL_BETA = 0.1

dataset = pairs.dataset
step_tokens = pairs.step_tokens
worst_batch = pairs.separate_worst_batch


def training_args(cfg: StudioConfig, output_dir: str, on_cuda: bool, dtype: torch.dtype, has_validation: bool,
                  train_rows: int = 0) -> ResolvedArgs:
    from trl.experimental.orpo import ORPOConfig

    own = {k: v for k, v in pairs.own_args(cfg, has_validation).items() if k != "max_length"}
    resolved = build_training_args(cfg, output_dir, on_cuda, dtype, has_validation, train_rows, ORPOConfig, dict(
        **own, beta=pairs.beta(cfg, USUAL_BETA), max_length=cfg.data.max_length * 2,
        include_num_input_tokens_seen="no"))
    resolved.args.padding_free = False      # its batches are padded (the job asks every method's arguments)
    return resolved


def collator(args: Any, tokenizer: Any) -> None:
    """None: the trainer's own (``DPODataCollatorWithPadding``), which its evaluation step requires."""
    return None


def trainer(model, args, tokenizer, train, validation, callbacks, precision: str, collator: Any = None):
    from trl.experimental.orpo import ORPOTrainer

    class Trainer(ORPOTrainer):
        tokenize_row = staticmethod(pairs.separate_row)

    out = Trainer(model=model, args=args, train_dataset=train, eval_dataset=validation, processing_class=tokenizer,
                  callbacks=callbacks)
    return fp32_adapters(out, model, precision)
