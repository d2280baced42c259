"""Ctrl-C (SIGINT) and SIGTERM during `studio train` on the built-in model end cleanly: exit 130 / 143,
the adapter saved, state.json complete with its end time, no abort.

On the built-in model (not the tiny one) because the defect needed it: the interrupted main thread
believed the training thread had ended (Python 3.11's Thread.join after a KeyboardInterrupt) and
exited while that thread was still inside torch freeing the 135M model: SIGABRT, no end time.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from studio import paths

REPO = Path(__file__).resolve().parents[1]
# The built-in model on the demo data, with short rows so that a step takes about a second on a CPU.
CONFIG = ("model: {source: default}\n"
          "data: {file: demo, max_length: 64, validation: 0}\n"
          "training: {max_steps: 1000, batch_size: 2, logging_steps: 1, learning_rate: 0.001}\n"
          "lora: {r: 8, alpha: 16, dropout: 0.0}\n")


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_on_the_builtin_model_ends_cleanly(tmp_path, sig, code):
    (tmp_path / "run.yaml").write_text(CONFIG, encoding="utf-8")
    out = tmp_path / "run"
    env = {**os.environ, "STUDIO_HOME": str(tmp_path / "home"), "STUDIO_CACHE": str(paths.cache_dir()),
           "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "studio.cli", "train", "--config", str(tmp_path / "run.yaml"),
                             "--output", str(out)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        for line in proc.stdout:          # one line per logged step when not on a terminal
            seen.append(line)
            if line.startswith("step 2/"):
                break
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        proc.kill()
    why = f"stdout:\n{''.join(seen)[-2000:]}{stdout[-2000:]}\nstderr:\n{stderr[-3000:]}"
    assert proc.returncode == code, why
    assert "terminate called" not in stderr and "Traceback" not in stderr, why
    state = json.loads((out / "state.json").read_text(encoding="utf-8"))
    assert state["state"] == "stopped" and state["finished"] and 2 <= state["step"] < 1000, why
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert "Stopped:" in stdout
