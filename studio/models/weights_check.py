"""Damaged or incomplete model weight files, named.

A truncated download or an interrupted copy of ``model.safetensors`` makes loading fail with
safetensors' own words ("Error while deserializing header: incomplete metadata, file not fully
covered"), which say nothing about which file or what to do. ``damaged_files(folder)`` checks each
safetensors file's header and size without loading it; ``explain(exc, source)`` turns such a load
error into a ``ModelError`` that names the file and the fix, or returns None for any other error.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from ..errors import ModelError

_MARKERS = ("deserializing header", "incomplete metadata", "header too small", "header too large",
            "invalid json in header", "metadataincompletebuffer", "file not fully covered")


def looks_like_damaged_weights(exc: BaseException) -> bool:
    try:
        from safetensors import SafetensorError
        if isinstance(exc, SafetensorError):
            return True
    except ImportError:
        pass
    # transformers re-raises some of them as OSError/ValueError with safetensors' words inside.
    text = f"{type(exc).__name__}: {exc}".lower()
    return any(m in text for m in _MARKERS)


def check_file(path: Path) -> str | None:
    """Why a safetensors file cannot be complete, or None when its header and size agree."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return f"it is only {size} bytes long"
            (n,) = struct.unpack("<Q", head)
            if n > 100 * 2**20 or 8 + n > size:
                return f"its header is cut off (the file is {_mb(size)})"
            header = json.loads(f.read(n))
    except OSError as e:
        return f"it cannot be read ({e.strerror or e})"
    except (ValueError, UnicodeDecodeError):
        return "its header is not readable"
    if not isinstance(header, dict):
        return "its header is not readable"
    ends = [t.get("data_offsets", [0, 0])[1] for k, t in header.items()
            if k != "__metadata__" and isinstance(t, dict) and isinstance(t.get("data_offsets"), list)]
    expected = 8 + n + max(ends, default=0)
    if size < expected:
        return f"it ends after {_mb(size)} but should be {_mb(expected)} long"
    return None


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n:,} bytes"


def damaged_files(folder: str | Path) -> list[tuple[Path, str]]:
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [(p, why) for p in sorted(folder.glob("*.safetensors")) if (why := check_file(p))]


def check_adapter(folder: str | Path, run: str = "") -> None:
    """Raise a ``ModelError`` naming a damaged or truncated adapter file of a run (PEFT and the trainer say it in
    safetensors' words, and the studio would otherwise blame the base model, which is fine)."""
    bad = damaged_files(folder)
    if bad:
        raise ModelError("The adapter of the run {run} is damaged or incomplete: {files}. The base model is not "
                         "affected.", code="model.damaged_adapter", run=run or Path(folder).parent.name,
                         files="; ".join(f"{p} ({why})" for p, why in bad))


def _local_folder(source: str) -> Path | None:
    """The model's folder on this computer, without downloading or converting anything."""
    from . import sources as ms
    s = (source or "").strip()
    if not s:
        return None
    if ms.is_builtin(s):
        return ms.default_model_dir()
    p = Path(s).expanduser()
    if p.is_dir():
        return p
    if p.is_file():
        return p.parent
    if ms.looks_like_hub_id(s):
        try:
            from huggingface_hub import snapshot_download
            return Path(snapshot_download(s, local_files_only=True))
        except Exception:  # not in the cache: nothing to name
            return None
    return None


def explain(exc: BaseException, source: str) -> ModelError | None:
    """A ``ModelError`` naming the damaged weights file of ``source`` when ``exc`` is such a load error."""
    if not looks_like_damaged_weights(exc):
        return None
    folder = _local_folder(source)
    bad = damaged_files(folder) if folder else []
    from . import sources as ms
    builtin = ms.is_builtin(source)
    if bad:
        named = "; ".join(f"{p} ({why})" for p, why in bad)
        return ModelError("The model file is damaged or incomplete: {files}.",
                          code="model.damaged_builtin" if builtin else "model.damaged", files=named, folder=str(folder))
    return ModelError("A model weights file in {folder} is damaged or incomplete ({detail}).",
                      code="model.damaged_file_builtin" if builtin else "model.damaged_file", folder=str(folder or source),
                      detail=str(exc))
