"""What ORPO and SimPO share: TRL's experimental pair trainers (ORPOTrainer, CPOTrainer) read text and tokenise it
themselves, so both get the pipeline's tokens through ``pairs.separate_row`` instead, padded batches from their own
collator, and the same arguments around their own (``max_length`` counts prompt and answer together). Their batches
hold no ``input_ids``, where the Trainer counts the tokens it has seen, so the trainer counts the chosen and rejected
sequences' real tokens itself (what DPO's stacked batch counts), and the Train tab has its tokens/s."""

from __future__ import annotations

from typing import Any

import torch

from ...config import StudioConfig
from ..args import ResolvedArgs, build_training_args
from . import pairs
from .dpo import fp32_adapters


def training_args(cfg: StudioConfig, output_dir: str, on_cuda: bool, dtype: torch.dtype, has_validation: bool,
                  train_rows: int, config_class: type, usual_beta: float, **own_settings: Any) -> ResolvedArgs:
    """``config_class``'s arguments: what every pair method shares, β, and the method's ``own_settings``."""
    own = {k: v for k, v in pairs.own_args(cfg, has_validation).items() if k != "max_length"}
    resolved = build_training_args(cfg, output_dir, on_cuda, dtype, has_validation, train_rows, config_class, dict(
        **own, beta=pairs.beta(cfg, usual_beta), **own_settings, max_length=cfg.data.max_length * 2,
        include_num_input_tokens_seen="non_padding"))
    resolved.args.padding_free = False      # its batches are padded (the job asks every method's arguments)
    return resolved


def collator(args: Any, tokenizer: Any) -> None:
    """None: the trainer's own (``DPODataCollatorWithPadding``), which its evaluation step requires."""
    return None


def trainer(trainer_class: type, model, args, tokenizer, train, validation, callbacks, precision: str):
    """``trainer_class`` over the pipeline's tokens, with float32 adapters under fp16."""
    class Trainer(trainer_class):
        tokenize_row = staticmethod(pairs.separate_row)

        def _track_num_input_tokens(self, inputs):
            if self.args.include_num_input_tokens_seen == "no":
                return
            tokens = real_tokens(inputs)
            self.state.num_input_tokens_seen += self.accelerator.gather(
                torch.as_tensor(tokens, device=self.args.device, dtype=torch.int64)).sum().item()

    out = Trainer(model=model, args=args, train_dataset=train, eval_dataset=validation, processing_class=tokenizer,
                  callbacks=callbacks)
    return fp32_adapters(out, model, precision)


def real_tokens(batch: dict) -> int:
    """The tokens of a batch of the ORPO/CPO collator that are not padding: chosen and rejected, each with its prompt
    (as DPO's batch of chosen then rejected rows counts them)."""
    return int(sum(batch[f"{side}_attention_mask"].sum() for side in ("chosen", "rejected")))
