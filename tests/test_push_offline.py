"""`studio export --push` when the Hub cannot be reached ends within seconds with one plain line (it
hung at "Uploading..." on a network that swallows traffic, and a refused connection was called a
problem with the repository name or the token). Only local addresses are used: a port nobody listens
on, and a listener that never answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_dir):
    from test_export import train_run
    return train_run(tmp_path_factory.mktemp("push"), tiny_dir, steps=2)


def _push(run_dir: Path, endpoint: str, home: Path, hook: str = "") -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=endpoint, STUDIO_HOME=str(home), HF_HOME=str(home / "hf"), PYTHONPATH=str(REPO))
    code = (f"{hook}\nimport sys\nfrom studio.cli import main\n"
            f"sys.exit(main(['export', {str(run_dir)!r}, '--to', 'adapter', '--push', 'me/test', '--token', 'hf_x']))")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    return proc, time.monotonic() - t0


def test_a_refused_connection_is_said_plainly_and_at_once(run_dir, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]          # closed again: nothing listens there
    proc, took = _push(run_dir, f"http://127.0.0.1:{port}", tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "cannot be reached" in proc.stderr and "repository name" not in proc.stderr
    assert "Traceback" not in proc.stderr and "Uploading" not in proc.stdout


def test_a_hub_that_never_answers_ends_within_the_timeout(run_dir, tmp_path):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)                  # connections are taken, nothing is ever answered
        port = silent.getsockname()[1]
        hook = "import studio.export.hub as h\nh.READ_S = 2.0"
        proc, took = _push(run_dir, f"http://127.0.0.1:{port}", tmp_path, hook)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "cannot be reached" in proc.stderr and "Traceback" not in proc.stderr
    assert took < 120
