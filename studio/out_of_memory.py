"""Whether an exception means the device (or the computer) ran out of memory.

Training and chat both report it in their own words, so the test lives below both of them.
"""

from __future__ import annotations


def is_gpu_out_of_memory(exc: BaseException) -> bool:
    """PyTorch's own out-of-memory error (raised for the GPU's memory)."""
    try:
        import torch
        return isinstance(exc, torch.OutOfMemoryError)
    except (ImportError, AttributeError):
        return False


def is_out_of_memory(exc: BaseException) -> bool:
    if is_gpu_out_of_memory(exc):
        return True
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or "out of memory" in text or "cuda error: out of memory" in text
