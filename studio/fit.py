"""'Fit to my GPU': the largest micro-batch, and checkpointing only if needed, that the memory estimate
says fits a budget, keeping the global batch (micro-batch x accumulation) the user chose."""

from __future__ import annotations

import dataclasses
from typing import Callable

from .config import StudioConfig
from .models.size import estimate_from_facts

StepTokens = Callable[[StudioConfig], int]     # the training method's answer: training.methods.step_tokens


def _estimate(cfg: StudioConfig, facts: dict, budget_gb: float, step_tokens: StepTokens | None = None,
              ram_free_gb: float | None = None) -> dict:
    return estimate_from_facts(cfg, facts, device={"device": "cuda", "free_gb": budget_gb, "ram_free_gb": ram_free_gb},
                               step_tokens=step_tokens(cfg) if step_tokens else None)


def _with(cfg: StudioConfig, batch: int, accum: int, checkpointing: str) -> StudioConfig:
    training = dataclasses.replace(cfg.training, batch_size=batch, grad_accum=accum,
                                   gradient_checkpointing=checkpointing)
    return dataclasses.replace(cfg, training=training)


def fit_to_gpu(cfg: StudioConfig, facts: dict, budget_gb: float, step_tokens: StepTokens | None = None,
               ram_free_gb: float | None = None) -> tuple[StudioConfig, list[str], bool]:
    """(settings, what changed in words, whether they fit). Tries every micro-batch that divides the
    global batch, largest first, without checkpointing and then with it ('auto', which checkpoints
    only what the GPU needs at run time, judged at its smallest on the GPU: every layer checkpointed).
    When none fits so, the same micro-batches again with the layers' inputs in CPU memory ('auto' again,
    which offloads when every layer checkpointed does not fit; the estimate says so). ``step_tokens`` says
    what one micro-batch of a candidate holds (the training method's; without it, the estimate's own batch x
    max length). ``ram_free_gb``: the computer's free memory, which offloaded inputs must fit too (None: not
    checked)."""
    t = cfg.training
    global_batch = t.batch_size * t.grad_accum
    batches = [b for b in range(global_batch, 0, -1) if global_batch % b == 0]
    for batch in batches:
        for checkpointing, judged_as in (("off", "off"), ("auto", "on")):
            candidate = _with(cfg, batch, global_batch // batch, judged_as)
            if _estimate(candidate, facts, budget_gb, step_tokens, ram_free_gb)["fits"]:
                candidate = _with(cfg, batch, global_batch // batch, checkpointing)
                est = _estimate(candidate, facts, budget_gb, step_tokens, ram_free_gb)
                return candidate, _changes(cfg, candidate, est, budget_gb), True
    for batch in batches:       # the layers' inputs in CPU memory: longer rows, at some speed
        offloaded = _with(cfg, batch, global_batch // batch, "offload")
        est = _estimate(offloaded, facts, budget_gb, step_tokens, ram_free_gb)
        if est["fits"]:
            candidate = _with(cfg, batch, global_batch // batch, "auto")
            return candidate, _changes(cfg, candidate, est, budget_gb), True
    smallest = _with(cfg, 1, global_batch, "offload")
    est = _estimate(smallest, facts, budget_gb, step_tokens, ram_free_gb)
    if est.get("ram_short") and est["total_gb"] <= budget_gb:
        return cfg, [f"One example a step fits the GPU only with its layers' inputs in the computer's memory, "
                     f"about {est['cpu_offload_gb']:.1f} GB, and this computer has {ram_free_gb:.1f} GB free: lower "
                     f"the max length (data.max_length) or free memory."], False
    return cfg, [f"Even one example a step with gradient checkpointing, its layers' inputs in CPU memory, needs "
                 f"about {est['total_gb']:.1f} GB of {budget_gb:.1f} GB: lower the max length (data.max_length) or "
                 f"load the model in 4-bit (model.quantization)."], False


def _changes(old: StudioConfig, new: StudioConfig, est: dict, budget_gb: float) -> list[str]:
    out = []
    for name, label in (("batch_size", "batch size"), ("grad_accum", "gradient accumulation"),
                        ("gradient_checkpointing", "gradient checkpointing")):
        a, b = getattr(old.training, name), getattr(new.training, name)
        if a != b:
            out.append(f"{label} {a} → {b}")
    g = new.training.batch_size * new.training.grad_accum
    summary = (f"needs about {est['total_gb']:.1f} GB of {budget_gb:.1f} GB; "
               f"{g} examples per update, as before")
    if est.get("checkpointing") == "offload":
        summary += (f"; every layer checkpointed with its input in CPU memory (offload: about "
                    f"{est['cpu_offload_gb']:.1f} GB of RAM)")
    return (out or ["nothing to change"]) + [summary]
