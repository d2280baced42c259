"""Simple preference optimisation (SimPO): the chosen answer's average log-likelihood per token should beat the
rejected one's by a margin (``preference.simpo_gamma``). No reference model and no SFT term. TRL runs it as its
experimental ``CPOTrainer`` with ``loss_type="simpo"`` and ``cpo_alpha=0``, on the pipeline's tokens
(``pairs.separate_row``)."""

from __future__ import annotations

from typing import Any

import torch

from ...config import StudioConfig
from ..args import ResolvedArgs
from . import pairs, text_pairs

DATA = "pair"
COLUMNS = pairs.COLUMNS
METRICS = pairs.with_eval(pairs.REWARDS + ("nll_loss",))
USUAL_BETA = 2.0

dataset = pairs.dataset
step_tokens = pairs.step_tokens
worst_batch = pairs.separate_worst_batch
collator = text_pairs.collator


def training_args(cfg: StudioConfig, output_dir: str, on_cuda: bool, dtype: torch.dtype, has_validation: bool,
                  train_rows: int = 0) -> ResolvedArgs:
    from trl.experimental.cpo import CPOConfig

    return text_pairs.training_args(cfg, output_dir, on_cuda, dtype, has_validation, train_rows, CPOConfig,
                                    USUAL_BETA, loss_type="simpo", cpo_alpha=0.0,
                                    simpo_gamma=cfg.preference.simpo_gamma)


def trainer(model, args, tokenizer, train, validation, callbacks, precision: str, collator: Any = None):
    from trl.experimental.cpo import CPOTrainer

    return text_pairs.trainer(CPOTrainer, model, args, tokenizer, train, validation, callbacks, precision)
