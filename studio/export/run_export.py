"""One entry point for every export of a run (the CLI's `studio export` and the Runs tab).

    export_run(run_dir, "adapter" | "merged" | "gguf" | "gguf-lora", dtype="auto", output=None, progress=print) -> Path
    free_destination(run_dir, "adapter" | "merged" | "gguf", dtype="auto") -> Path   (the app's numbered names)

``FORMATS`` is the one table of them: each kind and the module of studio/export/ that writes it. Such a
module has ``file_name(dtype) -> (name, suffix)``, ``write(run_dir, dest, dtype, original, progress) -> Path``
and ``APP_CHOICES`` (what the Runs tab offers of it). ``KINDS`` are what ``--to`` takes; ``choices()`` the
exports as the app and its API name them ('merged', 'gguf-q4_k_m'...), read back by ``parse_choice``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Callable

from .files import destination
from ..errors import ExportError

# kind -> its module here, imported when it is used (two of them import torch; `studio export --help` need not)
FORMATS = {"adapter": "adapter", "merged": "merge", "gguf": "gguf", "gguf-lora": "gguf_lora"}
KINDS = tuple(FORMATS)


def _format(to: str) -> ModuleType:
    if to not in FORMATS:
        raise ExportError("Unknown export '{kind}'; choose one of {choices}.", code="export.unknown_kind", kind=to,
                          choices=", ".join(KINDS))
    return importlib.import_module(f"{__package__}.{FORMATS[to]}")


def choices() -> tuple[str, ...]:
    """The exports the Runs tab offers beside its adapter zip, in order: 'merged', then 'gguf-<type>' for
    each GGUF type but f32 (twice the f16 file for the same answers; the CLI still writes it)."""
    return tuple(c for to in KINDS for c in _format(to).APP_CHOICES)


def parse_choice(choice: str) -> tuple[str, str]:
    """An app choice (or a bare kind) as ``export_run``'s (to, dtype): 'gguf-q4_k_m' -> ('gguf', 'q4_k_m'),
    'gguf-lora' -> ('gguf-lora', 'auto') (the longest kind the choice starts with: a kind may hold a '-')."""
    for to in sorted(KINDS, key=len, reverse=True):
        if choice == to or choice.startswith(to + "-"):
            return to, choice[len(to) + 1:] or "auto"
    to, _, dtype = choice.partition("-")
    return to, dtype or "auto"


def export_run(run_dir: str | Path, to: str, dtype: str = "auto", output: str | Path | None = None,
               progress: Callable[[str], None] = print, original: bool = False) -> Path:
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ExportError("{path} is not a run folder (it has no config.yaml).", code="run.not_a_run", path=str(run_dir))
    fmt = _format(to)
    final = destination(run_dir, *fmt.file_name(dtype), output)
    return fmt.write(run_dir, final, dtype, original, progress)


def free_destination(run_dir: str | Path, to: str, dtype: str = "auto") -> Path:
    """``<workspace>/exports/<run>-<name><suffix>``, numbered (-2, -3...) past the earlier exports of that
    name, so an export asked for in the app is written beside them, never refused. A merged folder is
    downloaded from the app as ``<folder>.zip``: neither name may be taken."""
    name, suffix = _format(to).file_name(dtype)
    dest, n = destination(run_dir, name, suffix), 1
    while dest.exists() or (to == "merged" and dest.with_name(dest.name + ".zip").exists()):
        n += 1
        dest = destination(run_dir, f"{name}-{n}", suffix)
    return dest
