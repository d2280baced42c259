"""What every config section is made of: the field helper ``_f`` (help, choices, limits and labels in one place)
and the words the settings choose from. ``studio.config`` imports them from here and so do the method sections of
``config_methods.py``; anyone else reads them from ``studio.config``."""

from __future__ import annotations

import re
from dataclasses import field
from typing import Any


def _f(default: Any, help: str, choices: tuple | None = None, *, limits: tuple | None = None, typical: str = "",
       zh: str = "", label: tuple[str, str], **kw):
    """A config field and what every interface shows of it: ``help`` (English), ``choices``, ``limits``
    (low, high; None = open; validate() refuses values outside, saying the ``typical`` values when given:
    numbers, the same in every language), its Chinese help ``zh`` and its ``label`` (English, Chinese).
    The app and ``studio train --help`` read them from here; ``label`` is required so that no field's
    name on the screen has to live anywhere else."""
    meta: dict[str, Any] = {"help": help}
    if choices is not None:
        meta["choices"] = choices
    if limits is not None:
        meta["limits"] = limits
    if typical:
        meta["typical"] = typical
    if zh:
        meta["help_zh"] = zh
    meta["label"] = label
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


QUANTIZATIONS = ("none", "8bit", "4bit-nf4", "4bit-fp4")
ALL_LINEAR = "all-linear"     # lora.target_modules: every linear layer but the output head (PEFT's own word)
COMPUTE_DTYPES = ("auto", "bfloat16", "float16", "float32")
TEMPLATES = ("auto", "model", "chatml", "alpaca", "human_assistant")
FORMATS = ("auto", "alpaca", "sharegpt", "messages", "prompt_completion", "text", "preference", "mapping")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts")
CHECKPOINTING = ("auto", "on", "offload", "off")
TILE_MLP = ("auto", "on", "off")
MLP_TILE_TOKENS = 8192      # training.tile_mlp: tokens a tile (models/tiling.py, the estimate in models/size.py)
ATTENTIONS = ("auto", "sdpa", "flex_attention", "varlen")
STRATEGIES = ("auto", "ddp", "fsdp")
REPORT_TO = ("none", "tensorboard", "wandb", "mlflow")
OPTIMIZERS = ("adamw_torch", "paged_adamw_8bit", "adamw_8bit", "paged_adamw_32bit", "sgd", "adafactor")
# training.method: how a run learns from its rows. Each name is a module of studio/training/methods/ (the
# registry of methods: a new one adds its name here).
METHODS = ("sft", "dpo", "kto", "orpo", "simpo", "grpo")
# The methods whose every step also runs the reference (the base with the adapter off) over the step's rows, without
# gradients, while the trained forward's activations wait for the backward: the memory estimate adds its loss tile.
REFERENCE_METHODS = ("dpo", "kto")
# preference.loss: DPO's losses (TRL's DPOConfig.loss_type) that need no further setting.
DPO_LOSSES = ("sigmoid", "ipo", "hinge", "bco_pair", "sppo_hard", "nca_pair", "apo_zero", "apo_down")
# grpo.rewards: what a GRPO answer is scored by, each a function of studio/training/rewards.py of that name.
REWARDS = ("facts", "format", "length", "similarity")
ADAPTERS = ("lora", "loha", "lokr", "ia3", "prefix", "prompt", "llama-adapter")   # lora.adapter, peft's family
PROMPT_ADAPTERS = ("prefix", "prompt", "llama-adapter")   # learned tokens, not weight changes: nothing to merge
LORA_INITS = ("default", "pissa", "olora")


def split_names(text: Any) -> list[str]:
    """'facts, format' or [facts, format] as a list of its parts."""
    if isinstance(text, (list, tuple)):
        return [str(x).strip() for x in text if str(x).strip()]
    return [p for p in re.split(r"[,\s]+", str(text or "").strip().strip("[]")) if p]
