"""A running studio for the end-to-end tests: ``python launch.py`` in a subprocess on a free port,
with a private workspace and a tiny model (tests/tiny.py) preselected through ``--config``.

One app serves all e2e tests of a session (starting it costs ~15 s on two cores).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_config(model_dir: Path, path: Path, max_steps: int = 8) -> Path:
    """A config that trains in seconds on a CPU: tiny model, 64 demo rows, short sequences."""
    path.write_text(
        f"model: {{source: '{model_dir}'}}\n"
        "data: {file: demo, max_length: 96, validation: 8, max_rows: 64}\n"
        f"training: {{max_steps: {max_steps}, batch_size: 4, learning_rate: 0.005, eval_steps: 4, logging_steps: 1}}\n"
        "lora: {r: 8, alpha: 16, dropout: 0.0}\n"
        "generation: {max_new_tokens: 12}\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def studio_url(tmp_path_factory, tiny_dir):
    """URL of a studio started with ``launch.py`` for this session; the server log is kept in artifacts/."""
    tmp = tmp_path_factory.mktemp("studio-app")
    cfg = tiny_config(tiny_dir, tmp / "tiny.yaml")
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / "e2e-server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    env.pop("STUDIO_HOME", None)
    log = open(log_path, "w", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(REPO / "launch.py"), "--port", str(port), "--workspace",
                             str(tmp / "workspace"), "--config", str(cfg)],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"launch.py exited with {proc.returncode}:\n{log_path.read_text()}")
            if "running at" in log_path.read_text(encoding="utf-8"):
                break
            if time.time() > deadline:
                raise RuntimeError(f"launch.py did not start in time:\n{log_path.read_text()}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
