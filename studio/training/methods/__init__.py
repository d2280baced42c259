"""Training methods: how a run learns from its rows. ``training.method`` names one; the names are
``config.METHODS`` (the registry: a method is one name there), and each is the module of that name here.

A method module supplies what the run's named steps (``TrainingJob``) ask of it:

- ``DATA``: what it reads from the data, a key of ``data.types.DATA_SHAPES`` (``"conversation"``: whole
  conversations with their loss masks; ``"pair"``: a prompt with a chosen and a rejected answer; ``"labelled"``:
  a prompt with one answer marked desirable or not; ``"prompt"``: a prompt and a reference answer), which
  ``data.pipeline.prepare(..., shape=DATA)`` makes its rows of;
- ``COLUMNS``: the dataset columns its trainer reads;
- ``METRICS``: what its trainer logs beyond the loss, learning rate and gradient norm every metrics row
  has, copied into the rows (``callbacks.MetricsCallback``);
- ``training_args(cfg, output_dir, on_cuda, dtype, has_validation, train_rows) -> ResolvedArgs``: its
  trainer's arguments (``args.build_training_args`` makes the part every method shares);
- ``dataset(rows)``: the prepared rows as its trainer's dataset, with ``COLUMNS``;
- ``collator(args, tokenizer)``: how rows become a batch (None: the trainer's own);
- ``trainer(model, args, tokenizer, train, validation, callbacks, precision, collator)``;
- ``step_tokens(cfg) -> int``: the tokens one micro-batch holds at its longest, which the memory estimate
  and 'Fit to my GPU' count (``models.size.estimate_memory``);
- ``worst_batch(rows, batch_size, collator) -> (batch, tokens)``: that micro-batch made of the longest
  rows, which gradient checkpointing 'auto' measures (``checkpointing.choose``).

A method may also have ``pace(row, total_steps) -> dict | None`` and ``time_note(seconds_per_step, done, total)``
(GRPO's): the job's message while training then says how long the rest of the run takes.

``sft.py`` is supervised fine-tuning, the default.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ...config import METHODS, StudioConfig
from ...errors import ConfigError


def get(name: str) -> ModuleType:
    """The module of the method ``name`` (one of ``config.METHODS``)."""
    if name not in METHODS:     # validate() refuses it first; this guards callers that skip validation
        raise ConfigError("{key} is '{value}', which is not an option. Choose one of: {choices}.",
                          code="config.not_an_option", key="training.method", value=name, choices=", ".join(METHODS))
    return importlib.import_module(f"{__name__}.{name}")


def of(cfg: StudioConfig) -> ModuleType:
    """The method ``cfg`` trains with (``training.method``)."""
    return get(cfg.training.method)


def step_tokens(cfg: StudioConfig) -> int:
    """The tokens one micro-batch of ``cfg``'s method holds at its longest (the memory estimate's)."""
    return of(cfg).step_tokens(cfg)
