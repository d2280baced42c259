"""Gradient checkpointing 'auto': checkpoint only as many layers as this GPU's memory needs.

Checkpointing every layer keeps a run small but recomputes each layer's forward pass in the
backward pass (about a third more work); checkpointing none is fastest but keeps every layer's
activations. Which one fits depends on the model, the quantization, the kernels, the data and the
GPU, so 'auto' measures instead of guessing: before training it runs the run's largest micro-batch
(the ``batch_size`` longest rows) forward and backward twice, once with every layer checkpointed and
once with all but two. The difference of what the two hold at the end of the forward pass is what
a layer keeps when it is not checkpointed (A); the first ``n`` layers stay checkpointed, the others
do not, with ``n`` the smallest count whose predicted peak stays inside the budget (free memory, or
the process's memory cap, minus a margin and the optimizer state). The prediction is an upper bound:
every kept activation is counted as alive at the worst moment of the all-checkpointed run.

    peak(n) = peak(all checkpointed) + (L - n) x A x 1.25

When even every layer checkpointed does not fit (the probe runs out of memory, or its peak is over the
budget: long rows, where the layers' inputs alone fill the card), every layer stays checkpointed and
keeps its input in CPU memory (``models/offload.py``, the 'offload' mode), measured once more.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..models.offload import decoder_layers, set_offload  # noqa: F401  (decoder_layers: this module's name for them)

MARGIN = 0.85         # of the budget: allocator fragmentation, the evaluation pass, other processes
# A layer's measured cost is raised by this much: with a 24 GB cap on an 8B model at 16k tokens, the
# unraised prediction let a run out of memory (fragmentation and the optimizer step add to it).
LAYER_SAFETY = 1.25


@dataclass
class Decision:
    layers: int          # layers checkpointed, counted from the input side
    total: int
    note: str
    offload: bool = False    # every layer checkpointed, its input kept in CPU memory


def set_checkpointed_layers(model: Any, n: int) -> None:
    """Checkpoint the first ``n`` decoder layers and no others (checkpointing must be enabled)."""
    for i, layer in enumerate(decoder_layers(model)):
        layer.gradient_checkpointing = i < n


def memory_budget() -> int:
    """Bytes this process may allocate on the GPU: what it holds plus what is free, within its cap."""
    free, total = torch.cuda.mem_get_info()
    budget = free + torch.cuda.memory_allocated()
    get_cap = getattr(torch.cuda, "get_per_process_memory_fraction", None)
    cap = get_cap() if get_cap is not None else 1.0
    if 0 < cap < 1:          # set_per_process_memory_fraction: a smaller card inside this one
        budget = min(budget, int(cap * total))
    return budget


def _probe(trainer: Any, model: Any, batch: dict) -> tuple[int, int]:
    """(peak bytes, bytes held at the end of the forward pass), above the current allocation, of
    one forward and backward of ``batch``."""
    gc.collect()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    try:
        loss = trainer.compute_loss(model, trainer._prepare_inputs(batch))
        stored = torch.cuda.memory_allocated() - base
        loss.backward()
        return torch.cuda.max_memory_allocated() - base, stored
    finally:
        model.zero_grad(set_to_none=True)
        gc.collect()
        torch.cuda.empty_cache()


def layers_to_checkpoint(total: int, peak_all: float, per_layer: float, room: float) -> int:
    """The fewest checkpointed layers whose predicted peak, ``peak_all + (total - n) x per_layer``,
    stays within ``room`` bytes."""
    if peak_all >= room:
        return total
    free_layers = int((room - peak_all) // max(per_layer, 1))
    return max(0, total - free_layers)


def needs_offload(peak_all: float | None, room: float) -> bool:
    """Whether every layer checkpointed still does not fit: its probe ran out of memory (None) or peaked over
    ``room``. Then the layers' inputs go to CPU memory."""
    return peak_all is None or peak_all >= room


def _offload_decision(trainer: Any, model: Any, batch: dict, tokens: int, total: int, base: int,
                      optimizer_bytes: int, peak_all: float | None,
                      prepare_offload: Callable[[], None] | None = None) -> Decision:
    set_checkpointed_layers(model, total)
    set_offload(model, True)
    if prepare_offload:     # what comes with offload (MLP tiling) must be in place before it is measured
        prepare_offload()
    gc.collect()
    torch.cuda.empty_cache()
    peak, _ = _probe(trainer, model, batch)      # out of memory even so: the run cannot fit, and says so
    gb = lambda b: f"{b / 2**30:.1f} GB"  # noqa: E731
    why = "runs out of memory" if peak_all is None else f"needs about {gb(base + optimizer_bytes + peak_all)}"
    return Decision(total, total, f"Gradient checkpointing (auto): all {total} layers checkpointed with their inputs "
                                  f"kept in CPU memory (offload): the largest batch ({tokens:,} tokens) {why} with "
                                  f"every layer checkpointed on the GPU; offloaded it peaks at "
                                  f"{gb(base + optimizer_bytes + peak)} of a {gb(memory_budget())} budget.", offload=True)


def choose(trainer: Any, model: Any, batch: dict, tokens: int, optimizer_bytes: int, probe_layers: int = 2,
           prepare_offload: Callable[[], None] | None = None) -> Decision:
    """Measure the largest micro-batch, ``batch`` of ``tokens`` tokens (the training method's ``worst_batch``),
    twice (every layer checkpointed; all but ``probe_layers``) and keep checkpointing only on as many layers
    as the budget needs; when every layer checkpointed does not fit either, offload their inputs to the CPU,
    after ``prepare_offload()`` (the job's MLP tiling: at 131,072 tokens an 8B model's untiled MLP alone
    does not fit a 24 GB card, offloaded or not)."""
    layers = decoder_layers(model)
    total = len(layers)
    if total == 0:
        return Decision(0, 0, "This model has no layers that can be checkpointed.")
    model.train()
    base = torch.cuda.memory_allocated()
    room = memory_budget() * MARGIN - base - optimizer_bytes
    set_checkpointed_layers(model, total)
    try:
        peak_all, stored_all = _probe(trainer, model, batch)
    except torch.cuda.OutOfMemoryError:
        peak_all = stored_all = None
    if needs_offload(peak_all, room):
        return _offload_decision(trainer, model, batch, tokens, total, base, optimizer_bytes, peak_all,
                                 prepare_offload)
    k = min(probe_layers, total)
    try:
        set_checkpointed_layers(model, total - k)
        # What a layer keeps from its forward pass for the backward one when it is not checkpointed,
        # read where all of it is alive at once: at the end of the forward pass (a difference of
        # peaks would miss it when the peak falls late in the backward pass, as it did at 8k tokens).
        per_layer = LAYER_SAFETY * max((_probe(trainer, model, batch)[1] - stored_all) / k, 1.0)
    except torch.cuda.OutOfMemoryError:
        per_layer = None            # two layers more do not fit: every layer stays checkpointed
    gc.collect()                    # the failed probe's tensors, freed with its traceback
    torch.cuda.empty_cache()
    n = total if per_layer is None else layers_to_checkpoint(total, peak_all, per_layer, room)
    set_checkpointed_layers(model, n)
    gb = lambda b: f"{b / 2**30:.1f} GB"  # noqa: E731
    if per_layer is None:
        note = (f"Gradient checkpointing (auto): all {total} layers checkpointed; the largest batch "
                f"({tokens:,} tokens) leaves no room for more.")
    else:
        predicted = base + optimizer_bytes + peak_all + (total - n) * per_layer
        note = (f"Gradient checkpointing (auto): {n} of {total} layers checkpointed. The largest batch "
                f"({tokens:,} tokens) adds about {gb(per_layer)} a layer without it; predicted peak "
                f"{gb(predicted)} of a {gb(memory_budget())} budget.")
    return Decision(n, total, note)
