"""The README's command-line blocks, run top to bottom as written, on the built-in model (issue 18: a bare
`studio` that the quick start never installed, a second run into the same `runs/demo`, Ctrl-C words that did
not match what is printed). Only the step counts are made small, and the answers of `studio eval` short; the
line marked Ctrl-C is stopped with SIGINT after its first step, as a person would."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from studio import paths

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("## The same thing without a browser", "## Resume, repeat, evaluate, export")
STEPS = {"30": "3", "20": "2"}
LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None     # the optional extra `finetune-studio[gguf]`


def needs_llama_cpp(words: list[str]) -> bool:
    """A K-quant GGUF and the export check go through llama.cpp; f16 and q8_0 do not."""
    return words[:1] == ["export"] and ("--check" in words or any(w.upper().startswith(("Q4_K", "Q5_K", "Q6_K"))
                                                                  for w in words))


def readme_commands() -> list[tuple[str, str]]:
    """(command, comment) of every `.venv/bin/studio` line in the README's command-line sections, in order."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    out = []
    for title in SECTIONS:
        section = text[text.index(title):]
        section = section[:section.find("\n## ", 1)]
        for block in re.findall(r"```bash\n(.*?)```", section, re.S):
            for line in block.splitlines():
                command, _, comment = line.partition("  #")
                if command.strip():
                    out.append((command.strip(), comment.strip()))
    return out


def test_the_readme_commands_are_the_installed_script():
    commands = readme_commands()
    assert len(commands) >= 10
    assert all(c.startswith(".venv/bin/studio ") for c, _ in commands), commands


@pytest.mark.slow
def test_the_readme_commands_run_top_to_bottom(tmp_path):
    env = {**os.environ, "STUDIO_HOME": str(tmp_path / "home"), "STUDIO_CACHE": str(paths.cache_dir()),
           "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    work = tmp_path / "clone"      # the README is run from the repository's root: its assets, not its files
    work.mkdir()
    (work / "assets").symlink_to(REPO / "assets")
    for command, comment in readme_commands():
        words = shlex.split(command)[1:]          # without `.venv/bin/studio`: this interpreter runs studio.cli
        words = [STEPS.get(w, w) if i and words[i - 1] == "--max-steps" else w for i, w in enumerate(words)]
        if words[:2] == ["train", "--preset"] and "--max-steps" not in words:
            words += ["--max-steps", "3"]         # the demo's three passes, made small too
        argv = [sys.executable, "-m", "studio.cli", *words]
        if argv[3:4] == ["eval"]:
            argv += ["--max-new-tokens", "8"]
        proc = subprocess.Popen(argv, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        seen = []
        if "Ctrl-C" in comment:
            for line in proc.stdout:
                seen.append(line)
                if line.startswith("step 1/"):
                    break
            proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=900)
        why = f"{command}\nstdout:\n{''.join(seen)}{stdout[-3000:]}\nstderr:\n{stderr[-3000:]}"
        if needs_llama_cpp(words) and not LLAMA_CPP:
            # Without the extra the line must say how to get it, in words a person can act on.
            assert proc.returncode == 2 and 'pip install "finetune-studio[gguf]"' in stderr, why
            continue
        assert proc.returncode == (130 if "Ctrl-C" in comment else 0), why
        assert "Traceback" not in stderr and "already exists" not in stderr, why
        if "--resume" in argv:
            assert "steps          3 of 3" in stdout, why
    runs = tmp_path / "home" / "runs"
    assert {"demo", "stop-demo", "again"} <= {p.name for p in runs.iterdir()}
