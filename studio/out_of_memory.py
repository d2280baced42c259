"""Whether an exception means the device (or the computer) ran out of memory.

Training and chat both report it in their own words, so the test lives below both of them.
"""

from __future__ import annotations


def is_out_of_memory(exc: BaseException) -> bool:
    try:
        import torch
        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or "out of memory" in text or "cuda error: out of memory" in text
