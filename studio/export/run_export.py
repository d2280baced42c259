"""One entry point for every export of a run (the CLI's `studio export` and the Runs tab).

    export_run(run_dir, "adapter" | "merged" | "gguf", dtype="auto", output=None, progress=print) -> Path
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .files import ExportError, destination

KINDS = ("adapter", "merged", "gguf")


def export_run(run_dir: str | Path, to: str, dtype: str = "auto", output: str | Path | None = None,
               progress: Callable[[str], None] = print, original: bool = False) -> Path:
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ExportError("{path} is not a run folder (it has no config.yaml).", code="run.not_a_run", path=str(run_dir))
    if to == "adapter":
        from .adapter import export_adapter_zip
        final = destination(run_dir, "adapter", ".zip", output)
        progress(f"Zipping the adapter of {run_dir.name}...")
        return export_adapter_zip(run_dir, final)
    if to == "merged":
        from .merge import export_merged
        return export_merged(run_dir, destination(run_dir, "merged", "", output), dtype, original, progress)
    if to == "gguf":
        from .gguf import export_gguf, gguf_type, label
        kind = gguf_type(dtype)      # before: any other name was written as f16 without a word
        # LM Studio reads the type from the name: <model>-Q4_K_M.gguf
        return export_gguf(run_dir, destination(run_dir, label(kind), ".gguf", output), kind, progress)
    raise ExportError("Unknown export '{kind}'; choose one of {choices}.", code="export.unknown_kind", kind=to,
                      choices=", ".join(KINDS))
