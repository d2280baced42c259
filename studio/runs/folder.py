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
from pathlib import Path
from typing import Any, Callable, ContextManager

from .. import paths
from ..config import StudioConfig
from ..errors import ConfigError
from .log import capture_logs, log_tail
from .metrics import MetricsLog


def slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")
    return s[:40] or "run"


def default_run_name(cfg: StudioConfig) -> str:
    if cfg.name.strip():
        return slug(cfg.name)
    model = Path(cfg.model.source.rstrip("/")).name or cfg.model.source
    data = Path(cfg.data.file).stem or cfg.data.file
    return slug(f"{model}-{data}")


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

    def write_adapter(self, fill: Callable[[Path], None], tokenizer: Any, chat_template: str) -> None:
        """Write ``adapter/`` whole or not at all: ``fill(folder)`` puts the PEFT files into a side folder,
        the tokenizer and the chat template it was trained with go beside them (the template chat uses),
        and the side folder replaces ``adapter/`` in one rename, so a crash mid-save never leaves half an
        adapter where chat, export and resume look."""
        import shutil
        final = self.adapter_dir
        partial = final.with_name("adapter.partial")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            partial.mkdir(parents=True)
            fill(partial)
            tokenizer.chat_template = chat_template
            tokenizer.save_pretrained(str(partial))
            (partial / "chat_template.jinja").write_text(chat_template, encoding="utf-8")
            shutil.rmtree(final, ignore_errors=True)
            partial.rename(final)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise

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

    # ---- reading its files ---------------------------------------------------------------
    def config_text(self) -> str:
        """config.yaml as written ('' when it cannot be read)."""
        try:
            return self.config_path.read_text(encoding="utf-8")
        except OSError:
            return ""

    def metrics(self) -> list[dict]:
        """The complete rows of metrics.jsonl."""
        return MetricsLog.read(self.metrics_path)

    # ---- train.log ----------------------------------------------------------------------
    def capture_logs(self) -> ContextManager[logging.Logger]:
        """The calling thread's log records (and the libraries') go to train.log while the block runs."""
        return capture_logs(self.log_path)

    def log_tail(self, lines: int = 40) -> str:
        """The end of train.log without the libraries' INFO chatter (see ``log.log_tail``)."""
        return log_tail(self.log_path, lines)


def is_bare_name(value: str) -> bool:
    """'demo' (a run's name), not 'runs/demo', './demo', '~/x' or '..'."""
    v = (value or "").strip()
    seps = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    return bool(v) and not any(c in v for c in seps) and not v.startswith("~") and v not in (".", "..")


def find_run(value: str) -> Path:
    """The run folder a command line names: a folder path as given, or a bare name of a run in the workspace's
    runs folder (where the app lists runs), when there is no such folder here."""
    p = Path(value).expanduser()
    if p.exists() or not is_bare_name(value):
        return p
    in_workspace = paths.runs_dir() / value.strip()
    return in_workspace if in_workspace.exists() else p


def list_run_folders(root: Path | None = None) -> list[RunFolder]:
    root = root or paths.runs_dir()
    if not root.is_dir():
        return []
    return [RunFolder(p) for p in sorted(root.iterdir()) if (p / "state.json").is_file()]
