"""Where exports go and how they are written: a side folder renamed when complete, never over an
existing export, after a check of the free disk space."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .. import paths
from ..errors import ExportError


def exports_dir() -> Path:
    return paths.workspace() / "exports"


def destination(run_dir: str | Path, kind: str, suffix: str = "", out: str | Path | None = None) -> Path:
    """``out`` when given (checked: see ``check_output``), else ``<workspace>/exports/<run>-<kind><suffix>``."""
    default = f"{Path(run_dir).name}-{kind}{suffix}"
    if out:
        return check_output(Path(out).expanduser(), default, folder_export=not suffix)
    return exports_dir() / default


def check_output(path: Path, default_name: str, folder_export: bool) -> Path:
    """An output path the export can be written to, said plainly before any work when it cannot: it is
    the export's own path (an existing empty folder, or any folder for a file export, is not "an earlier
    export"), its folder must be a folder and writable."""
    if path.is_dir() and (not folder_export or not any(path.iterdir())):
        raise ExportError("{path} is an existing folder. The output path names the export itself (for example "
                          "{example}), not the folder to put it in.", code="export.output_is_folder", path=str(path),
                          example=str(path / default_name))
    if path.is_file() and folder_export:
        raise ExportError("{path} is an existing file; this export is a folder and never replaces a file.",
                          code="export.output_is_file", path=str(path))
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ExportError("{folder} is a file, so the export {path} cannot be written inside it.",
                          code="export.output_parent_file", folder=str(parent), path=str(path))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError("No permission to write in {folder}, so the export {path} cannot be written there.",
                          code="export.output_denied", folder=str(parent), path=str(path))
    return path


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
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError("{path} cannot be written: {detail}", code="export.write_failed", path=str(final),
                          detail=e.strerror or str(e)) from None
    partial = final.with_name(final.name + ".partial")
    _remove(partial)
    try:
        yield partial
        refuse_existing(final)          # made meanwhile by another export
        partial.rename(final)
    except OSError as e:
        _remove(partial)
        if not str(getattr(e, "filename", "") or "").startswith(str(final)):
            raise                       # reading something else failed: not the destination's fault
        raise ExportError("{path} cannot be written: {detail}", code="export.write_failed", path=str(final),
                          detail=e.strerror or str(e)) from None
    except BaseException:
        _remove(partial)
        raise


def _remove(p: Path) -> None:
    if p.is_dir():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists():
        p.unlink()
