"""Where the studio keeps its files: the workspace (runs, uploads) and the model cache.

``STUDIO_HOME`` moves the whole workspace; ``STUDIO_CACHE`` moves only the model cache
(the converted built-in model lives there). Defaults sit under the user's cache folder.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
PRESETS_DIR = REPO_DIR / "presets"
ASSETS_DIR = REPO_DIR / "assets"
DEMO_DATA = ASSETS_DIR / "demo" / "support_faq.jsonl"
DEMO_HELD_OUT = ASSETS_DIR / "demo" / "held_out.jsonl"
# The demo FAQ as preference pairs (a wrong fact in each rejected answer): scripts/make_demo_preference.py
DEMO_PREFERENCE = ASSETS_DIR / "demo" / "support_faq_preference.jsonl"


def workspace() -> Path:
    """The workspace folder, made when missing; a StudioError naming it when it is a file or cannot be made."""
    base = os.environ.get("STUDIO_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "finetune-studio")
    p = Path(base)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        from .errors import StudioError
        raise StudioError("The workspace {path} (STUDIO_HOME) is a file, not a folder.",
                          code="paths.workspace_is_file", path=str(p)) from None
    except OSError as e:
        from .errors import StudioError
        raise StudioError("The workspace {path} (STUDIO_HOME) cannot be made: {detail}.",
                          code="paths.workspace_unwritable", path=str(p), detail=e.strerror or str(e)) from None
    return p


def cache_dir() -> Path:
    p = Path(os.environ.get("STUDIO_CACHE") or workspace() / "models")
    p.mkdir(parents=True, exist_ok=True)
    return p


def runs_dir() -> Path:
    p = workspace() / "runs"
    p.mkdir(parents=True, exist_ok=True)
    return p


def user_presets_dir() -> Path:
    """Presets the user saved: in the workspace; the shipped ones in ``PRESETS_DIR`` are never written."""
    return workspace() / "presets"


def uploads_dir() -> Path:
    p = workspace() / "uploads"
    p.mkdir(parents=True, exist_ok=True)
    return p
