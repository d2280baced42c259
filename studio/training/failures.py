"""Turn an exception raised inside a training job into a message and a hint for people."""

from __future__ import annotations

import errno

from ..config import ConfigError
from ..data.types import DataError

OOM_HINT = ("Lower the batch size or the maximum length, set gradient checkpointing to 'on' "
            "(training.gradient_checkpointing), or load the model in 4-bit (QLoRA).")


def is_out_of_memory(exc: BaseException) -> bool:
    try:
        import torch
        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or "out of memory" in text or "cuda error: out of memory" in text


def explain(exc: BaseException, log_path: str = "") -> tuple[str, str]:
    """(message, hint) for a failed job."""
    where = f" The full error is in {log_path}." if log_path else ""
    if is_out_of_memory(exc):
        device = "GPU" if "cuda" in str(exc).lower() or type(exc).__name__ == "OutOfMemoryError" else "computer"
        return f"The {device} ran out of memory while training.", OOM_HINT
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return ("The disk is full, so the run could not be saved.",
                "Free some disk space or choose an output folder on another disk, then start again.")
    if isinstance(exc, DataError):
        return f"There is a problem with the training data: {exc}", "Fix the data file (or pick another) and start again."
    if isinstance(exc, ConfigError):
        return str(exc), "Change that setting and start again."
    if type(exc).__name__ == "ModelError":
        return str(exc), "Check the model source (name, folder or file) and start again."
    if isinstance(exc, OSError):
        return f"A file could not be read or written: {exc}", f"Check the folder's permissions and free space.{where}"
    text = str(exc).strip() or type(exc).__name__
    return f"Training failed: {text}", f"This looks like a bug or an unusual setting.{where}"
