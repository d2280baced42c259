"""Simple preference optimisation (SimPO): the chosen answer's average log-likelihood per token should beat the
rejected one's by a margin (``preference.simpo_gamma``). No reference model and no SFT term. TRL runs it as its
experimental ``CPOTrainer`` with ``loss_type="simpo"`` and ``cpo_alpha=0``, on the pipeline's tokens
(``pairs.separate_row``)."""

from __future__ import annotations

from typing import Any

import torch

from ...config import StudioConfig
from ..args import ResolvedArgs, build_training_args
from . import pairs
from .dpo import fp32_adapters

DATA = "pair"
COLUMNS = pairs.COLUMNS
METRICS = pairs.with_eval(pairs.REWARDS + ("nll_loss",))
USUAL_BETA = 2.0

dataset = pairs.dataset
step_tokens = pairs.step_tokens
worst_batch = pairs.separate_worst_batch


def training_args(cfg: StudioConfig, output_dir: str, on_cuda: bool, dtype: torch.dtype, has_validation: bool,
                  train_rows: int = 0) -> ResolvedArgs:
    from trl.experimental.cpo import CPOConfig

    own = {k: v for k, v in pairs.own_args(cfg, has_validation).items() if k != "max_length"}
    resolved = build_training_args(cfg, output_dir, on_cuda, dtype, has_validation, train_rows, CPOConfig, dict(
        **own, beta=pairs.beta(cfg, USUAL_BETA), loss_type="simpo", cpo_alpha=0.0,
        simpo_gamma=cfg.preference.simpo_gamma, max_length=cfg.data.max_length * 2,
        include_num_input_tokens_seen="no"))
    resolved.args.padding_free = False      # its batches are padded (the job asks every method's arguments)
    return resolved


def collator(args: Any, tokenizer: Any) -> None:
    """None: the trainer's own (``DPODataCollatorWithPadding``), which its evaluation step requires."""
    return None


def trainer(model, args, tokenizer, train, validation, callbacks, precision: str, collator: Any = None):
    from trl.experimental.cpo import CPOTrainer

    class Trainer(CPOTrainer):
        tokenize_row = staticmethod(pairs.separate_row)

    out = Trainer(model=model, args=args, train_dataset=train, eval_dataset=validation, processing_class=tokenizer,
                  callbacks=callbacks)
    return fp32_adapters(out, model, precision)
