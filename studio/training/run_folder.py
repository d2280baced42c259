"""The folder of one run: what a Runs table, a chat window and a later resume need.

    <runs>/<YYYYmmdd>-<HHMMSS>-<name>/
        config.yaml      the full resolved config the run was started with
        metrics.jsonl    one JSON row per log step / evaluation (see metrics.py)
        train.log        the trainer's own log and the studio's notes (tracebacks of failures too)
        state.json       state, message, hint, times, steps, final losses, model and data source
        checkpoints/     intermediate checkpoints (only with save_steps > 0)
        adapter/         at the end: the PEFT adapter (safetensors), tokenizer, chat_template.jinja

``state.json`` is rewritten atomically (temp file + rename), so a reader never sees half of it.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..config import ConfigError, StudioConfig
from .. import paths

# Loggers whose output belongs in train.log while a job runs.
_CAPTURED_LOGGERS = ("transformers", "accelerate", "peft", "bitsandbytes", "studio", "py.warnings")


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")
    return s[:40] or "run"


def default_run_name(cfg: StudioConfig) -> str:
    if cfg.name.strip():
        return _slug(cfg.name)
    model = Path(cfg.model.source.rstrip("/")).name or cfg.model.source
    data = Path(cfg.data.file).stem or cfg.data.file
    return _slug(f"{model}-{data}")


class RunFolder:
    """Paths and files of one run folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # ---- creation -----------------------------------------------------------------------
    @classmethod
    def create(cls, cfg: StudioConfig, output_dir: str | None = None) -> "RunFolder":
        """A new run folder: ``output_dir`` itself when given (it must be new or empty), else a dated
        folder under the studio's runs folder."""
        if output_dir:
            path = Path(output_dir).expanduser()
            if path.exists() and (not path.is_dir() or any(path.iterdir())):
                raise ConfigError("The output folder {path} (training.output_dir) already exists and is not empty.",
                                  code="config.output_exists", path=str(path))
        else:
            stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            base = paths.runs_dir() / f"{stamp}-{default_run_name(cfg)}"
            path, n = base, 1
            while path.exists():  # two runs in the same second
                n += 1
                path = base.with_name(f"{base.name}-{n}")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError("Cannot create the run folder {path}: {detail}.", code="config.output_unwritable",
                              path=str(path), detail=str(e.strerror or e)) from None
        run = cls(path)
        cfg.save(run.config_path)
        return run

    # ---- paths --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def log_path(self) -> Path:
        return self.path / "train.log"

    @property
    def state_path(self) -> Path:
        return self.path / "state.json"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def adapter_dir(self) -> Path:
        return self.path / "adapter"

    def has_adapter(self) -> bool:
        return (self.adapter_dir / "adapter_config.json").is_file()

    def config(self) -> StudioConfig:
        return StudioConfig.load(self.config_path)

    # ---- state.json ---------------------------------------------------------------------
    def write_state(self, state: dict) -> None:
        tmp = self.state_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
        os.replace(tmp, self.state_path)

    def read_state(self) -> dict | None:
        try:
            return json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    # ---- train.log ----------------------------------------------------------------------
    @contextmanager
    def capture_logs(self) -> Iterator[logging.Logger]:
        """Send the libraries' log records (and Python warnings) to train.log while the block runs.

        transformers' own stderr handler is switched off meanwhile: its output is read by nobody
        in the app, and in the CLI it would break the progress line. Yields the studio's run logger.
        """
        from transformers.utils import logging as hf_logging

        thread = threading.get_ident()
        handler = logging.FileHandler(self.log_path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
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


def list_run_folders(root: Path | None = None) -> list[RunFolder]:
    root = root or paths.runs_dir()
    if not root.is_dir():
        return []
    return [RunFolder(p) for p in sorted(root.iterdir()) if (p / "state.json").is_file()]
