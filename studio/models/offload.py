"""Gradient checkpointing with each checkpointed layer's input kept in CPU memory (``training.gradient_checkpointing:
offload``).

Plain checkpointing keeps one tensor a layer for the backward pass, the layer's input (tokens x hidden, 16-bit): at
131,072 tokens on an 8B shape that is 1 GiB a layer, 32 GiB for the model, more than a 24 GB card holds. Here the
input goes to pinned CPU memory as the forward pass leaves the layer, copied on a side stream while the next layer
computes, and comes back when the backward pass recomputes the layer; the GPU holds only the layers in flight.

How: PyTorch's non-reentrant ``checkpoint`` saves its inputs as saved tensors (``_CheckpointFrame.save_inputs``)
before it installs its own hooks for the layer's insides, so a ``saved_tensors_hooks`` pair around the call sees
exactly the layer's inputs and nothing else. Tensors already on the CPU (a CPU run) pass through unchanged: the
same code path runs, and gives the same numbers, without copies.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint


class CpuOffload:
    """The pack/unpack pair: a CUDA tensor to pinned CPU memory on a side stream (the copy overlaps the next
    layer's compute; ``record_stream`` keeps its GPU block from reuse until the copy is done), back to its device
    on the compute stream, after the copy's event, when the backward pass needs it."""

    def __init__(self):
        self._streams: dict = {}
        self.packed = 0          # tensors sent to the CPU (a CPU run sends none)

    def _stream(self, device: torch.device) -> torch.cuda.Stream:
        if device not in self._streams:
            self._streams[device] = torch.cuda.Stream(device=device)
        return self._streams[device]

    def pack(self, t: torch.Tensor) -> Any:
        if not t.is_cuda or t.numel() == 0:      # an empty placeholder (some layers save one) is not worth a copy
            return t
        stream = self._stream(t.device)
        stream.wait_stream(torch.cuda.current_stream(t.device))      # the layer that made ``t`` has finished it
        with torch.cuda.stream(stream):
            cpu = torch.empty(t.size(), dtype=t.dtype, pin_memory=True)
            cpu.copy_(t, non_blocking=True)
            done = torch.cuda.Event()
            done.record(stream)
        t.record_stream(stream)
        self.packed += 1
        return t.device, cpu, done

    @staticmethod
    def unpack(packed: Any) -> torch.Tensor:
        if isinstance(packed, torch.Tensor):
            return packed
        device, cpu, done = packed
        torch.cuda.current_stream(device).wait_event(done)
        return cpu.to(device, non_blocking=True)


OFFLOAD = CpuOffload()


def offloaded_checkpoint(function: Any, *args: Any, hooks: CpuOffload | None = None, **kwargs: Any) -> Any:
    """``torch.utils.checkpoint.checkpoint`` (non-reentrant) with the layer's inputs kept on the CPU."""
    hooks = hooks or OFFLOAD
    kwargs.setdefault("use_reentrant", False)
    with torch.autograd.graph.saved_tensors_hooks(hooks.pack, hooks.unpack):
        return checkpoint(function, *args, **kwargs)


def decoder_layers(model: Any) -> list:
    """The model's checkpointable decoder layers (transformers' ``GradientCheckpointingLayer``), input side first."""
    from transformers.modeling_layers import GradientCheckpointingLayer
    return [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]


def set_offload(model: Any, on: bool, hooks: CpuOffload | None = None) -> int:
    """Checkpointed layers of ``model`` keep their inputs on the CPU (``on``) or on the GPU as plain checkpointing
    does. Checkpointing must be enabled (``lora.apply_lora``); which layers are checkpointed is unchanged. Returns
    the number of layers changed."""
    layers = decoder_layers(model)
    for layer in layers:
        plain = getattr(layer, "_studio_plain_checkpoint", None)
        if plain is None:
            plain = layer._studio_plain_checkpoint = getattr(layer, "_gradient_checkpointing_func", None) or \
                functools.partial(checkpoint, use_reentrant=False)
        layer._gradient_checkpointing_func = (functools.partial(offloaded_checkpoint, hooks=hooks) if on else plain)
    return len(layers)


def is_offloaded(model: Any) -> bool:
    layers = decoder_layers(model)
    return bool(layers) and all(isinstance(getattr(l, "_gradient_checkpointing_func", None), functools.partial)
                                and l._gradient_checkpointing_func.func is offloaded_checkpoint for l in layers)
