"""Turn an exception raised inside a training job into a message and a hint for people."""

from __future__ import annotations

import errno
from pathlib import Path

from ..config import ConfigError, StudioConfig
from ..data.types import DataError
from ..out_of_memory import is_out_of_memory

OOM_HINT = ("Lower the batch size or the maximum length, set gradient checkpointing to 'on' "
            "(training.gradient_checkpointing), or load the model in 4-bit (QLoRA).")


def _damaged_weights(exc: BaseException, log_path: str) -> str | None:
    """A damaged model file, named (the run's config.yaml, next to train.log, says which model)."""
    from ..weights_check import explain as explain_weights, looks_like_damaged_weights
    if not looks_like_damaged_weights(exc):
        return None
    source = ""
    if log_path:
        try:
            source = StudioConfig.load(Path(log_path).parent / "config.yaml").model.source
        except ConfigError:
            pass
    return explain_weights(exc, source)


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
    damaged = _damaged_weights(exc, log_path)
    if damaged:
        return damaged, "Replace the damaged file, then start again."
    if isinstance(exc, OSError):
        return f"A file could not be read or written: {exc}", f"Check the folder's permissions and free space.{where}"
    text = str(exc).strip() or type(exc).__name__
    return f"Training failed: {text}", f"This looks like a bug or an unusual setting.{where}"
