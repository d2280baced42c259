"""Where exports go and how they are written: a side folder renamed when complete, never over an
existing export, after a check of the free disk space."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .. import paths


from ..errors import ExportError  # noqa: F401 - its home before the error family


def exports_dir() -> Path:
    return paths.workspace() / "exports"


def destination(run_dir: str | Path, kind: str, suffix: str = "", out: str | Path | None = None) -> Path:
    """``out`` when given, else ``<workspace>/exports/<run>-<kind><suffix>``."""
    if out:
        return Path(out).expanduser()
    return exports_dir() / f"{Path(run_dir).name}-{kind}{suffix}"


def refuse_existing(final: Path) -> None:
    if final.exists():
        raise ExportError("{path} already exists; an export never replaces an earlier one.", code="export.exists",
                          path=str(final))


def check_free_space(folder: Path, needed_bytes: int, what: str) -> None:
    """Refuse before writing when the disk holding ``folder`` has less than ``needed_bytes`` (+10%) free."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed_bytes * 1.1:
        raise ExportError("Not enough free disk space for {what}: it needs about {needed:.2f} GB, and {folder} has "
                          "{free:.2f} GB free.", code="export.no_space", what=what, needed=needed_bytes / 1e9,
                          folder=str(probe), free=free / 1e9)


@contextmanager
def side_path(final: Path) -> Iterator[Path]:
    """Yield ``<final>.partial`` to write into; renamed to ``final`` only when the block succeeds.
    An interrupted export leaves no half file under the real name (the side copy is removed)."""
    refuse_existing(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(final.name + ".partial")
    _remove(partial)
    try:
        yield partial
        refuse_existing(final)          # made meanwhile by another export
        partial.rename(final)
    except BaseException:
        _remove(partial)
        raise


def _remove(p: Path) -> None:
    if p.is_dir():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists():
        p.unlink()


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())
