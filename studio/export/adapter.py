"""The adapter as a zip that plain ``peft`` loads on another machine.

The trained ``adapter_config.json`` names the base by this machine's path (for the built-in model a
folder in the studio's cache). The export names the base by its Hugging Face Hub id where one is known,
so ``PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(<id>), <folder>)`` works anywhere,
and keeps the local path in ``base_model.json`` beside it. The tokenizer and chat template trained with
are in the folder too.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

from ..runs import RunFolder
from .files import side_path
from ..errors import ExportError

# The Hub repository the built-in model's GGUF was converted from.
DEFAULT_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def base_hub_id(source: str) -> str | None:
    """The Hub id of a model source: the built-in default's, a Hub id itself, or one recorded in a
    local folder's config (``_name_or_path``); None when unknown."""
    from ..models.sources import is_builtin, looks_like_hub_id
    if is_builtin(source):
        return DEFAULT_HUB_ID
    if looks_like_hub_id(source) and not Path(source).expanduser().exists():
        return source
    config = Path(source).expanduser() / "config.json"
    try:
        name = json.loads(config.read_text(encoding="utf-8")).get("_name_or_path", "")
    except (OSError, ValueError):
        return None
    return name if name and looks_like_hub_id(name) and not Path(name).exists() else None


def base_record(run: RunFolder) -> dict:
    cfg = run.config()
    config = json.loads((run.adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    return {"source": cfg.model.source, "hub_id": base_hub_id(cfg.model.source),
            "local_path": config.get("base_model_name_or_path"), "quantization": cfg.model.quantization}


def check_adapter(run: RunFolder) -> None:
    """ExportError unless the run has a complete adapter: none yet, a run that failed before saving one,
    or a damaged or cut-short weights file (exported, it would only fail on the other machine)."""
    from ..models.weights_check import check_adapter as check_weights
    if not run.has_adapter():
        if (run.read_state() or {}).get("state") == "failed":
            raise ExportError("The run {name} failed before it saved an adapter, so there is nothing to export.",
                              code="export.failed_run", name=run.name)
        raise ExportError("The run {name} has no saved adapter yet; export it once it has finished or stopped.",
                          code="export.no_adapter", name=run.name)
    check_weights(run.adapter_dir, run.name)


def portable_adapter_folder(run_dir: str | Path, dest: Path) -> dict:
    """Copy the run's adapter to ``dest`` with the base named by its Hub id; returns the base record."""
    run = RunFolder(run_dir)
    check_adapter(run)
    shutil.copytree(run.adapter_dir, dest)
    record = base_record(run)
    config_path = dest / "adapter_config.json"
    config: dict[str, Any] = json.loads(config_path.read_text(encoding="utf-8"))
    if record["hub_id"]:
        config["base_model_name_or_path"] = record["hub_id"]
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    (dest / "base_model.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    return record


def export_adapter_zip(run_dir: str | Path, final: Path) -> Path:
    """``final`` (a .zip) holding ``adapter/``: weights, config naming the Hub base, tokenizer, template."""
    import tempfile
    with side_path(final) as partial, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "adapter"
        portable_adapter_folder(run_dir, folder)
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(folder.rglob("*")):
                if f.is_file():
                    z.write(f, Path("adapter") / f.relative_to(folder))
    return final


# ---- this export as run_export.FORMATS reads it ------------------------------------------------

APP_CHOICES: tuple[str, ...] = ()     # the Runs tab zips the adapter with a button of its own


def file_name(dtype: str = "auto") -> tuple[str, str]:
    """This export's part of the file name, and its suffix."""
    return "adapter", ".zip"


def write(run_dir: str | Path, dest: Path, dtype: str = "auto", original: bool = False, progress=print) -> Path:
    progress(f"Zipping the adapter of {Path(run_dir).name}...")
    return export_adapter_zip(run_dir, dest)
