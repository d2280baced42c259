"""Turn an exception raised inside a training job into a ``StudioError`` (message and hint) for people."""

from __future__ import annotations

import errno
from pathlib import Path

from ..config import StudioConfig
from ..errors import ConfigError, DataError, StudioError, TrainingFailed
from ..out_of_memory import is_gpu_out_of_memory, is_out_of_memory


def _on_gpu(exc: BaseException) -> bool:
    return is_gpu_out_of_memory(exc) or "cuda" in str(exc).lower()


def _damaged_weights(exc: BaseException, log_path: str) -> StudioError | None:
    """A damaged model file, named (the run's config.yaml, next to train.log, says which model)."""
    from ..models.weights_check import explain as explain_weights, looks_like_damaged_weights
    if not looks_like_damaged_weights(exc):
        return None
    source = ""
    if log_path:
        try:
            source = StudioConfig.load(Path(log_path).parent / "config.yaml").model.source
        except ConfigError:
            pass
    return explain_weights(exc, source)


def explain(exc: BaseException, log_path: str = "") -> StudioError:
    """The error a failed job reports: the engine's own when it raised one, else a ``TrainingFailed``."""
    log = log_path or "the run's train.log"
    if is_out_of_memory(exc):
        if _on_gpu(exc):
            return TrainingFailed("The GPU ran out of memory while training.", code="training.oom_gpu")
        return TrainingFailed("The computer ran out of memory while training.", code="training.oom_cpu")
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return TrainingFailed("The disk is full, so the run could not be saved.", code="training.disk_full")
    if isinstance(exc, DataError):
        return TrainingFailed("There is a problem with the training data: {cause}", code="training.data", cause=exc)
    if isinstance(exc, StudioError):     # a setting, the model, ...: its own message and hint
        return exc
    damaged = _damaged_weights(exc, log_path)
    if damaged:
        return damaged
    if isinstance(exc, OSError):
        return TrainingFailed("A file could not be read or written: {detail}", code="training.file",
                              detail=str(exc), log=log)
    text = str(exc).strip() or type(exc).__name__
    return TrainingFailed("Training failed: {detail}", code="training.failed", detail=text, log=log)
