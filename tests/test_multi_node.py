"""Two "machines" on this one: the main machine's run through the job manager (as the app starts it) and
the other machine's `studio train --nnodes 2 --node-rank 1 --master 127.0.0.1:PORT` (the command the
app shows, in a workspace of its own), two torch.distributed.run groups over gloo meeting at the main
machine's store. They train the losses of one process at the same global batch; Stop on the main
machine ends the other's processes within seconds; a killed other machine fails the run naming it."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from test_multi_process import cfg_for, lora_b_norm, wait_for

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main_cfg(tmp_path, tiny_dir, port: int, **training):
    from studio.config import merge
    return merge(cfg_for(tmp_path, tiny_dir, **training),
                 {"training": {"nnodes": 2, "node_rank": 0, "master": f"127.0.0.1:{port}"}})


def start_other_machine(cfg, tmp_path) -> subprocess.Popen:
    """Machine 2: the very command the app shows for it, in a workspace of its own."""
    from studio.training.nodes import helper_commands
    (command,) = helper_commands(cfg)
    argv = shlex.split(command)
    assert argv[:2] == ["studio", "train"]
    env = dict(os.environ, STUDIO_HOME=str(tmp_path / "machine2-home"), PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    return subprocess.Popen([sys.executable, "-m", "studio.cli", *argv[1:]], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def start_both(manager, cfg, tmp_path, leftovers: list):
    """The run on the main machine (this process's job manager), then machine 2's command; machine 2 goes on
    ``leftovers`` so the fixture kills it if the test does not end it."""
    job = manager.start(cfg)
    other = start_other_machine(cfg, tmp_path)
    leftovers.append(other)
    return job, other


def tree(proc: subprocess.Popen) -> list[psutil.Process]:
    try:
        p = psutil.Process(proc.pid)
        return [p, *p.children(recursive=True)]
    except psutil.Error:
        return []


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            pass
    return out


def finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for p in tree(proc):
            p.kill()
        out, _ = proc.communicate()
        pytest.fail(f"machine 2 did not end within {timeout} s:\n{out[-3000:]}")
    return proc.returncode, out


@pytest.fixture()
def no_leftovers():
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        for p in tree(proc):
            try:
                p.kill()
            except psutil.Error:
                pass


def train_rows(run) -> list[dict]:
    from studio.runs import MetricsLog
    return [r for r in MetricsLog.read(run.metrics_path) if r["type"] == "train"]


def test_two_machines_train_the_losses_of_one_process_at_the_same_global_batch(tmp_path, tiny_dir, studio_home,
                                                                                no_leftovers):
    from studio.jobs import JobManager

    manager = JobManager()
    cfg = main_cfg(tmp_path / "a", tiny_dir, free_port(), batch_size=2)
    job, other = start_both(manager, cfg, tmp_path, no_leftovers)
    assert job.join(150) and job.state == "done", job.message
    code, out = finish(other, 60)
    assert code == 0, out[-3000:]
    assert "127.0.0.1" in out and "the main machine" in out          # machine 2 says where the run is
    one = manager.start(cfg_for(tmp_path / "b", tiny_dir, batch_size=4))   # one process, 2 x 2 rows a step
    assert one.join(120) and one.state == "done", one.message
    two_losses, one_losses = [r["loss"] for r in train_rows(job.run)], [r["loss"] for r in train_rows(one.run)]
    assert len(two_losses) == len(one_losses) == 4
    assert two_losses == pytest.approx(one_losses, rel=1e-3)
    assert job.run.has_adapter() and lora_b_norm(job.run.adapter_dir) > 0
    assert job.run.read_state()["nnodes"] == 2
    # Machine 2 wrote nothing into a run folder: only its own scratch folder, with its log.
    home2 = tmp_path / "machine2-home"
    assert not (home2 / "runs").exists() or not any((home2 / "runs").iterdir())
    (scratch,) = (home2 / "node-scratch").iterdir()
    assert not (scratch / "adapter").exists() and not (scratch / "metrics.jsonl").exists()
    assert "127.0.0.1:" in (scratch / "train.log").read_text()


def test_stop_on_the_main_machine_ends_the_other_machines_processes_within_seconds(tmp_path, tiny_dir, studio_home,
                                                                                   no_leftovers):
    from studio.jobs import JobManager

    manager = JobManager()
    cfg = main_cfg(tmp_path, tiny_dir, free_port(), max_steps=100_000)
    job, other = start_both(manager, cfg, tmp_path, no_leftovers)
    wait_for(lambda: job.progress.step >= 2 or not job.active, 150, "training to start on both machines")
    assert job.active, job.message
    theirs = tree(other)
    assert len(theirs) >= 3          # studio train, torch's launcher, its worker
    t0 = time.monotonic()
    assert manager.stop()
    code, out = finish(other, 30)
    assert time.monotonic() - t0 < 20, "machine 2 took too long to stop"
    assert not alive(theirs)
    assert code == 0 and "stopped" in out.lower(), out[-3000:]
    assert job.join(30) and job.state == "stopped", job.message
    assert job.run.has_adapter() and job.alive_pids() == []


def test_a_killed_machine_fails_the_run_with_a_message_naming_it(tmp_path, tiny_dir, studio_home, no_leftovers):
    from studio.jobs import JobManager

    manager = JobManager()
    cfg = main_cfg(tmp_path, tiny_dir, free_port(), max_steps=100_000)
    job, other = start_both(manager, cfg, tmp_path, no_leftovers)
    wait_for(lambda: job.progress.step >= 1 or not job.active, 150, "training to start on both machines")
    assert job.active, job.message
    t0 = time.monotonic()
    for p in tree(other):                 # the whole machine: studio train, torch's launcher, the worker
        p.send_signal(signal.SIGKILL)
    assert job.join(60), "the run did not end after machine 2 was killed"
    assert time.monotonic() - t0 < 40
    assert job.state == "failed"
    assert "Machine 2 (node rank 1" in job.message, job.message
    failure = job.status()["failure"]
    assert failure.code == "training.node_failed"
    assert "第 2 台电脑" in failure.render("zh")[0]
    assert job.alive_pids() == []
