"""The engine (everything in studio/ except studio/ui) must work without gradio: a CLI run or a
headless server never pays for it, and the layering stays one-way. Checked in a fresh interpreter,
because this test session itself has gradio loaded by the UI tests."""

import json
import subprocess
import sys
from pathlib import Path

import studio

PACKAGE = Path(studio.__file__).resolve().parent


def engine_modules() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = rel.parts
        if "ui" in parts[1:2] or "__pycache__" in parts:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append(".".join(parts))
    return out


def test_the_engine_list_is_not_empty():
    mods = engine_modules()
    assert "studio.config" in mods and "studio.jobs" in mods and "studio.inference" in mods
    assert not any(m.startswith("studio.ui") for m in mods)


def test_importing_every_engine_module_does_not_import_gradio():
    code = (
        "import importlib, json, sys\n"
        f"mods = {engine_modules()!r}\n"
        "failed = {}\n"
        "for m in mods:\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except Exception as e:\n"
        "        failed[m] = repr(e)\n"
        "print(json.dumps({'gradio': sorted(k for k in sys.modules if k == 'gradio' or k.startswith('gradio.')),"
        " 'failed': failed}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=PACKAGE.parent)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["failed"] == {}, result["failed"]
    assert result["gradio"] == [], f"the engine imported gradio: {result['gradio'][:5]}"
