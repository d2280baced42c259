"""Odds ratio preference optimisation (ORPO): learning to write each pair's chosen answer (the SFT loss) and, in
the same step, raising the odds of the chosen answer over the rejected one. No reference model, so it can start
from a base model. TRL's experimental ``ORPOTrainer`` trains it, on the pipeline's tokens (``pairs.separate_row``).
"""

from __future__ import annotations

from typing import Any

import torch

from ...config import StudioConfig
from ..args import ResolvedArgs
from . import pairs, text_pairs

DATA = "pair"
COLUMNS = pairs.COLUMNS
METRICS = pairs.with_eval(pairs.REWARDS + ("nll_loss", "log_odds_ratio", "log_odds_chosen"))
USUAL_BETA = 0.1

dataset = pairs.dataset
step_tokens = pairs.step_tokens
worst_batch = pairs.separate_worst_batch
collator = text_pairs.collator


def training_args(cfg: StudioConfig, output_dir: str, on_cuda: bool, dtype: torch.dtype, has_validation: bool,
                  train_rows: int = 0) -> ResolvedArgs:
    from trl.experimental.orpo import ORPOConfig

    return text_pairs.training_args(cfg, output_dir, on_cuda, dtype, has_validation, train_rows, ORPOConfig,
                                    USUAL_BETA)


def trainer(model, args, tokenizer, train, validation, callbacks, precision: str, collator: Any = None):
    from trl.experimental.orpo import ORPOTrainer

    return text_pairs.trainer(ORPOTrainer, model, args, tokenizer, train, validation, callbacks, precision)
