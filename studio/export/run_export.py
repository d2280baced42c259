"""One entry point for every export of a run (the CLI's `studio export` and the Runs tab).

    export_run(run_dir, "adapter" | "merged" | "gguf", dtype="auto", output=None, progress=print) -> Path
    free_destination(run_dir, "adapter" | "merged" | "gguf", dtype="auto") -> Path   (the app's numbered names)

``KINDS`` are what ``--to`` takes; ``choices()`` the same exports as the app and its API name them
('merged', 'gguf-q4_k_m'...), read back by ``parse_choice``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .files import destination
from ..errors import ExportError

KINDS = ("adapter", "merged", "gguf")


def choices() -> tuple[str, ...]:
    """The exports the Runs tab offers beside its adapter zip, in order: 'merged', then 'gguf-<type>' for
    each GGUF type but f32 (twice the f16 file for the same answers; the CLI still writes it)."""
    from .gguf import TYPES
    return ("merged", *(f"gguf-{t}" for t in TYPES if t != "f32"))


def parse_choice(choice: str) -> tuple[str, str]:
    """An app choice (or a bare kind) as ``export_run``'s (to, dtype): 'gguf-q4_k_m' -> ('gguf', 'q4_k_m')."""
    to, _, dtype = choice.partition("-")
    return to, dtype or "auto"


def export_run(run_dir: str | Path, to: str, dtype: str = "auto", output: str | Path | None = None,
               progress: Callable[[str], None] = print, original: bool = False) -> Path:
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ExportError("{path} is not a run folder (it has no config.yaml).", code="run.not_a_run", path=str(run_dir))
    final = destination(run_dir, *_name(to, dtype), output)
    if to == "adapter":
        from .adapter import export_adapter_zip
        progress(f"Zipping the adapter of {run_dir.name}...")
        return export_adapter_zip(run_dir, final)
    if to == "merged":
        from .merge import export_merged
        return export_merged(run_dir, final, dtype, original, progress)
    from .gguf import export_gguf, gguf_type
    return export_gguf(run_dir, final, gguf_type(dtype), progress)


def free_destination(run_dir: str | Path, to: str, dtype: str = "auto") -> Path:
    """``<workspace>/exports/<run>-<name><suffix>``, numbered (-2, -3...) past the earlier exports of that
    name, so an export asked for in the app is written beside them, never refused. A merged folder is
    downloaded from the app as ``<folder>.zip``: neither name may be taken."""
    name, suffix = _name(to, dtype)
    dest, n = destination(run_dir, name, suffix), 1
    while dest.exists() or (to == "merged" and dest.with_name(dest.name + ".zip").exists()):
        n += 1
        dest = destination(run_dir, f"{name}-{n}", suffix)
    return dest


def _name(to: str, dtype: str) -> tuple[str, str]:
    """The export's part of its file name and its suffix (a merged model is a folder: none)."""
    if to == "adapter":
        return "adapter", ".zip"
    if to == "merged":
        return "merged", ""
    if to == "gguf":
        from .gguf import gguf_type, label
        # LM Studio reads the type from the name: <model>-Q4_K_M.gguf. gguf_type refuses an unknown type
        # (before, any other name was written as f16 without a word).
        return label(gguf_type(dtype)), ".gguf"
    raise ExportError("Unknown export '{kind}'; choose one of {choices}.", code="export.unknown_kind", kind=to,
                      choices=", ".join(KINDS))
