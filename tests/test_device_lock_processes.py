"""One user of the device across processes: while another process on the same workspace holds the lock
file (as `studio train` in a terminal does), the app's Start, `studio train` and chat are refused with
a message naming that run; once the holder ends, even killed, the device is free again."""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from test_training_job import make_cfg, prepared, write_data
from tiny import tiny_model, tiny_tokenizer

REPO = Path(__file__).resolve().parents[1]
HOLDER = """
import sys, time
from studio.device import DeviceLock
lock = DeviceLock()
assert lock.acquire("training", timeout=5, run="20260101-120000-terminal-run")
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture()
def other_process(studio_home):
    env = {**os.environ, "STUDIO_HOME": str(studio_home)}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield proc
    proc.kill()
    proc.wait()


def test_start_chat_and_cli_are_refused_while_another_process_trains(tmp_path, studio_home, other_process, capsys):
    from studio.cli import main
    from studio.jobs import JobManager
    from studio.errors import DeviceBusy, JobBusy

    manager = JobManager()
    tok = tiny_tokenizer()
    cfg = make_cfg(write_data(tmp_path), max_steps=2)
    with pytest.raises(JobBusy, match="in use by the training run '20260101-120000-terminal-run'.*another window"):
        manager.start(cfg, model=tiny_model(tok), tokenizer=tok, data=prepared(cfg, tok))
    assert not (studio_home / "runs").exists() or not any((studio_home / "runs").iterdir())   # no folder made

    with pytest.raises(DeviceBusy, match="terminal-run"):
        manager.device_lock.check_free_elsewhere("Chat")
    from studio.inference import ChatSession
    chat = ChatSession(tiny_model(tok), tok, device_lock=manager.device_lock)
    with pytest.raises(DeviceBusy, match="terminal-run"):
        chat.reply([], "Hello")

    assert main(["train", "--config", str(write_cfg_file(tmp_path, cfg))]) == 2
    assert "terminal-run" in capsys.readouterr().err

    other_process.send_signal(signal.SIGKILL)       # a holder that dies without releasing frees the device
    other_process.wait()
    job = manager.start(cfg, model=tiny_model(tok), tokenizer=tok, data=prepared(cfg, tok))
    assert job.join(60) and job.state == "done"
    assert chat.reply([], "Hello") is not None


def write_cfg_file(tmp_path, cfg):
    path = tmp_path / "cfg.yaml"
    cfg.save(path)
    return path


def test_a_run_in_this_process_refuses_another_process(tmp_path, studio_home):
    """The other direction: while this process trains, a second process is told which run has the device."""
    from transformers import TrainerCallback

    from studio.jobs import JobManager

    class Hold(TrainerCallback):
        def __init__(self):
            self.reached, self.release = threading.Event(), threading.Event()

        def on_step_begin(self, args, state, control, **kw):
            self.reached.set()
            self.release.wait(60)

    hold = Hold()
    tok = tiny_tokenizer()
    cfg = make_cfg(write_data(tmp_path), max_steps=2)
    job = JobManager().start(cfg, model=tiny_model(tok), tokenizer=tok, data=prepared(cfg, tok), callbacks=[hold])
    try:
        assert hold.reached.wait(60)
        probe = subprocess.run([sys.executable, "-c", "from studio.device import DeviceLock; "
                                "print(DeviceLock().other_process_holder())"], cwd=REPO, capture_output=True,
                               text=True, env={**os.environ, "STUDIO_HOME": str(studio_home)}, timeout=60)
        assert f"'run': '{job.run.name}'" in probe.stdout and "'who': 'training'" in probe.stdout, probe.stderr
    finally:
        hold.release.set()
        job.join(60)
    # The lock is released when the run ends.
    probe = subprocess.run([sys.executable, "-c", "from studio.device import DeviceLock; "
                            "print(DeviceLock().other_process_holder())"], cwd=REPO, capture_output=True, text=True,
                           env={**os.environ, "STUDIO_HOME": str(studio_home)}, timeout=60)
    assert probe.stdout.strip() == "None"
