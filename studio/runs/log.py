"""A run's ``train.log``: written while the run trains, read back in part by the app.

The writer (``capture_logs``) and the reader (``log_tail``) live together because the reader parses
the lines the writer formats: change ``LINE_FORMAT`` and ``_LINE`` together.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

# Loggers whose output belongs in train.log while a job runs.
_CAPTURED_LOGGERS = ("transformers", "accelerate", "peft", "bitsandbytes", "studio", "py.warnings")

LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The start of a line LINE_FORMAT wrote (continuation lines of a traceback do not match).
_LINE = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ (?P<level>[A-Z]+) (?P<name>\S+?):")
_TAIL_BYTES = 256 * 1024


@contextmanager
def capture_logs(log_path: str | Path) -> Iterator[logging.Logger]:
    """Send the libraries' log records (and Python warnings) of the calling thread to ``log_path``
    while the block runs.

    transformers' own stderr handler is switched off meanwhile: its output is read by nobody
    in the app, and in the CLI it would break the progress line. Yields the studio's run logger.
    """
    from transformers.utils import logging as hf_logging

    thread = threading.get_ident()
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LINE_FORMAT))
    handler.setLevel(logging.INFO)
    # Only this thread's records: an error in a UI handler meanwhile belongs in the terminal.
    handler.addFilter(lambda record: record.thread == thread)
    others = _OtherThreadsToRoot(thread)
    saved = []
    for name in _CAPTURED_LOGGERS:
        lg = logging.getLogger(name)
        saved.append((lg, lg.level))
        lg.addHandler(handler)
        if lg.getEffectiveLevel() > logging.INFO:
            lg.setLevel(logging.INFO)
    studio_logger = logging.getLogger("studio.training")
    studio_propagate = logging.getLogger("studio").propagate
    logging.getLogger("studio").propagate = False   # our notes go to the file, not to the console...
    logging.getLogger("studio").addHandler(others)  # ...other threads' still reach it
    hf_logging.disable_default_handler()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()          # "Loading weights" bars would land on the console
    was_capturing = getattr(logging, "_warnings_showwarning", None) is not None
    logging.captureWarnings(True)
    try:
        yield studio_logger
    finally:
        logging.captureWarnings(was_capturing)
        hf_logging.enable_default_handler()
        if bars:
            hf_logging.enable_progress_bar()
        logging.getLogger("studio").removeHandler(others)
        logging.getLogger("studio").propagate = studio_propagate
        for lg, level in saved:
            lg.removeHandler(handler)
            lg.setLevel(level)
        handler.close()


class _OtherThreadsToRoot(logging.Handler):
    """While a run captures the ``studio`` logger, hands the records of every other thread on to the
    root logger's handlers (the terminal), as if the logger still propagated."""

    def __init__(self, captured_thread: int):
        super().__init__()
        self.captured_thread = captured_thread

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.captured_thread:
            logging.getLogger().handle(record)


def log_tail(log_path: str | Path, lines: int = 40) -> str:
    """The end of a train.log, without the libraries' INFO chatter (config dumps, file lists): the
    studio's own notes, and every warning or error with its traceback. '' when there is no log."""
    try:
        with open(log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - _TAIL_BYTES))     # a long run's log can be big; the end is enough
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    kept, keep = [], False
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:   # a continuation line (a traceback) goes with the record it belongs to
            keep = m.group("name").startswith("studio") or m.group("level") in ("WARNING", "ERROR", "CRITICAL")
        if keep:
            kept.append(line)
    return "\n".join(kept[-lines:])
