"""Supervised fine-tuning (SFT): the model learns each row's answer, the loss taken on the tokens the data
pipeline left unmasked. TRL's ``SFTTrainer`` trains it over the rows studio/data already rendered,
tokenised and masked.

Each ``EncodedRow`` becomes ``{"input_ids", "labels"}`` (labels are -100 where no loss is taken). TRL
recognises such a dataset as prepared and only batches it: its collator joins a step's rows into one
sequence with ``position_ids`` restarting at 0 per row (padding-free, ``training.packing``), or pads them
to the longest row of the batch. It computes the loss with its chunked LM head, which never
materialises the float32 logits of the whole vocabulary.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ...config import PROMPT_ADAPTERS, StudioConfig
from ..args import ResolvedArgs, build_training_args

DATA = "conversation"
COLUMNS = ("input_ids", "labels")
METRICS: tuple[str, ...] = ()      # SFT's trainer logs nothing the rows do not already carry


def training_args(cfg: StudioConfig, output_dir: str, on_cuda: bool, dtype: torch.dtype, has_validation: bool,
                  train_rows: int = 0) -> ResolvedArgs:
    """TRL's ``SFTConfig``: the arguments every method shares, and how SFT batches the prepared rows."""
    from trl import SFTConfig

    t = cfg.training
    # One row a step has no padding anyway (and TRL warns that padding-free buys nothing there).
    wanted = t.packing and t.batch_size > 1
    # Prefix / prompt tuning and LLaMA-Adapter put virtual tokens before the sequence: in a padding-free
    # batch they would stand before the first row only (and the positions restart mid-sequence).
    prompt_based = cfg.lora.adapter in PROMPT_ADAPTERS
    padding_free = wanted and not prompt_based
    resolved = build_training_args(cfg, output_dir, on_cuda, dtype, has_validation, train_rows, SFTConfig, dict(
        # Padding-free batches have no padding at all; padded batches count their attention mask.
        include_num_input_tokens_seen="all" if padding_free else "non_padding",
        # The rows are tokenised and cut to data.max_length already; TRL must not cut or pack again.
        max_length=None,
        padding_free=padding_free,
        packing=False,
        dataset_num_proc=None,
    ))
    if wanted and prompt_based:
        resolved.notes.append(f"Packing is off: lora.adapter '{cfg.lora.adapter}' puts its virtual tokens before "
                              "every row, so each batch is padded.")
    return resolved


def dataset(rows: Sequence) -> Any:
    """A ``datasets.Dataset`` with the ``COLUMNS`` of each ``EncodedRow``: ``input_ids`` and ``labels``."""
    from datasets import Dataset

    return Dataset.from_dict({c: [list(getattr(r, c)) for r in rows] for c in COLUMNS})


def collator(args: Any, tokenizer: Any) -> None:
    """None: TRL's own collator, padding-free or padded as ``args.padding_free`` says."""
    return None


def step_tokens(cfg: StudioConfig) -> int:
    """The worst case: every row of the micro-batch at the full length."""
    return cfg.training.batch_size * cfg.data.max_length


def worst_batch(rows: list, batch_size: int, collator: Any) -> tuple[dict, int]:
    """The ``batch_size`` longest rows (``EncodedRow``s) as the collator batches them, and its tokens."""
    longest = sorted(rows, key=lambda r: len(r.input_ids), reverse=True)[:batch_size]
    batch = collator([{c: list(getattr(r, c)) for c in COLUMNS} for r in longest])
    return batch, int(batch["input_ids"].numel())


def trainer(model, args, tokenizer, train, validation, callbacks, precision: str, collator: Any = None):
    """TRL's SFTTrainer over already tokenised rows with their loss masks as ``labels``.

    For a quantized base TRL keeps the adapters in bfloat16 (the QLoRA paper's choice); float16 mixed
    precision (GPUs without bfloat16) needs float32 adapters for its gradient scaler, so they are put
    back to float32 there."""
    import warnings

    from trl import SFTTrainer

    if not torch.cuda.is_available():
        compact_lm_head_on_cpu()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)     # TRL's use_liger_kernel deprecation note
        out = SFTTrainer(model=model, args=args, train_dataset=train, eval_dataset=validation,
                         processing_class=tokenizer, callbacks=callbacks, data_collator=collator)
    if precision == "fp16":
        for p in model.parameters():
            if p.requires_grad and p.dtype != torch.float32:
                p.data = p.data.float()
    return out


def compact_lm_head_on_cpu() -> None:
    """Make TRL's fused LM head score only the positions that have a label on a CPU too.

    TRL projects through the LM head (49,152 words for the built-in model) only the positions whose next token is
    trained on, but only on Triton devices: elsewhere (Neuron) a changing number of positions would recompile its
    graphs. Eager PyTorch on a CPU compiles nothing, and the prompt positions are about half of every chat row, so
    there they are skipped as well; the loss is the same (tests/test_cpu_lm_head.py)."""
    import trl.trainer.utils as tu

    original = getattr(tu, "_use_triton", None)
    if original is None or getattr(original, "studio_cpu", False):
        return

    def use_compact(device: torch.device) -> bool:
        return torch.device(device).type == "cpu" or original(device)

    use_compact.studio_cpu = True
    use_compact.original = original      # TRL's own rule, for a comparison without the patch
    tu._use_triton = use_compact
