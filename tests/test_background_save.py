"""Checkpoints written in the background (studio/training/background_save.py) on the tiny Llama: a checkpoint
written while training went on resumes to the losses of a straight run; a write that fails, or a process killed
mid-write, leaves the previous checkpoint as it was and a resume uses it; the step after a save does not wait
for the write; at most one write is in flight."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from transformers import TrainerCallback

from test_resume import StopAt, _cfg, _losses, _run
from test_training_job import prepared, write_data
from tiny import tiny_model, tiny_tokenizer

import studio.training.background_save as bs

_REAL_WRITE = bs.write_files


def _slow_writer(monkeypatch, seconds: float, log: list | None = None, fail_at: int | None = None):
    """write_files, each call ``seconds`` slower (the training thread must not feel it); raising at ``fail_at``."""
    real = bs.write_files

    def slow(snap):
        start = time.monotonic()
        if log is not None:
            log.append(("start", snap.step, start))
        time.sleep(seconds)
        (snap.tmp / "half-written.bin").write_bytes(b"\0" * 1000)
        if snap.step == fail_at:
            raise OSError(28, "No space left on device")
        real(snap)
        (snap.tmp / "half-written.bin").unlink()
        if log is not None:
            log.append(("end", snap.step, time.monotonic()))

    monkeypatch.setattr(bs, "write_files", slow)


def _stopped(tmp_path, tok, name, at, save_steps, callbacks=()):
    from studio.training import TrainingJob
    cfg = _cfg(write_data(tmp_path, n=8), save_steps=save_steps)
    ref: list = []
    job = TrainingJob(cfg, tmp_path / name, model=tiny_model(tok), tokenizer=tok, data=prepared(cfg, tok),
                      callbacks=[StopAt(ref, at), *callbacks], keep_model=False)
    ref.append(job)
    job.start()
    assert job.join(120)
    return cfg, job


def _assert_resumes_like(straight, run_dir: Path, tok, step: int):
    from studio.training.resume import plan_resume
    plan = plan_resume(run_dir, tokenizer=tok)
    assert plan.step == step, plan.notes
    resumed = _run(plan.cfg, run_dir, tok, data=plan.data, resume_from=plan.checkpoint)
    assert resumed.state == "done", resumed.message
    a, b = _losses(straight.run_dir), _losses(run_dir)
    assert sorted(b) == list(range(1, 11))
    for s in range(step + 1, 11):
        assert b[s] == pytest.approx(a[s], rel=1e-5, abs=1e-6), f"step {s}"
    return plan


def test_a_checkpoint_written_while_training_goes_on_resumes_like_a_straight_run(tmp_path, monkeypatch):
    tok = tiny_tokenizer()
    straight = _run(_cfg(write_data(tmp_path, n=8)), tmp_path / "straight", tok)
    # Each write takes 0.6 s more, so training runs on while step 6 is written: copies that still pointed
    # at the live weights or optimizer moments would save later values, and the resume would drift.
    _slow_writer(monkeypatch, 0.6)
    _, job = _stopped(tmp_path, tok, "bg", at=6, save_steps=3)     # pressed in step 7: its last
    assert job.state == "stopped", job.message
    ckpts = job.run_dir / "checkpoints"
    assert job._saver is not None and len(job._saver.snapshot_s) == 3      # steps 3, 6 and the stop's 7
    assert sorted(p.name for p in ckpts.iterdir()) == ["checkpoint-6", "checkpoint-7"]   # limit 2; no temp left
    for name in ("adapter_model.safetensors", "adapter_config.json", "optimizer.pt", "scheduler.pt",
                 "rng_state.pth", "trainer_state.json", "training_args.bin", "studio-complete.json"):
        assert (ckpts / "checkpoint-6" / name).is_file(), name
    assert json.loads((ckpts / "checkpoint-6" / "trainer_state.json").read_text())["global_step"] == 6
    import shutil
    shutil.rmtree(ckpts / "checkpoint-7")          # resume from the one written in the background mid-run
    _assert_resumes_like(straight, job.run_dir, tok, step=6)


def test_a_failed_write_leaves_the_previous_checkpoint_and_says_so(tmp_path, monkeypatch):
    tok = tiny_tokenizer()
    straight = _run(_cfg(write_data(tmp_path, n=8)), tmp_path / "straight", tok)
    _slow_writer(monkeypatch, 0.0, fail_at=6)
    _, job = _stopped(tmp_path, tok, "failing", at=8, save_steps=3)
    assert job.state == "failed"                   # as a synchronous save that failed would have made it
    assert "No space left" in job.error
    ckpts = job.run_dir / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["checkpoint-3"]       # no step 6, no half-written temp
    monkeypatch.setattr(bs, "write_files", _REAL_WRITE)           # the disk has room again
    _assert_resumes_like(straight, job.run_dir, tok, step=3)


KILLED = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    import studio.training.background_save as bs
    from test_resume import StopAt, _cfg
    from test_training_job import prepared
    from tiny import tiny_model, tiny_tokenizer
    from studio.training import TrainingJob
    real = bs.write_files
    def dies_at_six(snap):
        if snap.step == 6:                        # half of the files, then the process is killed
            (snap.tmp / "adapter_model.safetensors").write_bytes(b"\\0" * 100)
            os.kill(os.getpid(), signal.SIGKILL)
        real(snap)
    bs.write_files = dies_at_six
    tok = tiny_tokenizer()
    cfg = _cfg({data!r}, save_steps=3)
    job = TrainingJob(cfg, {run!r}, model=tiny_model(tok), tokenizer=tok, data=prepared(cfg, tok), keep_model=False)
    job.run_sync()
""")


def test_a_process_killed_mid_write_leaves_the_previous_checkpoint(tmp_path):
    tok = tiny_tokenizer()
    data = write_data(tmp_path, n=8)
    straight = _run(_cfg(data), tmp_path / "straight", tok)
    run_dir = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(Path(bs.__file__).parents[2]),
                                                                                os.environ.get("PYTHONPATH", "")])}
    script = KILLED.format(tests=str(Path(__file__).parent), data=str(data), run=str(run_dir))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-3000:]
    ckpts = run_dir / "checkpoints"
    assert (ckpts / "checkpoint-3" / "studio-complete.json").is_file()
    assert not (ckpts / "checkpoint-6").exists() and (ckpts / ".tmp-checkpoint-6").is_dir()
    _assert_resumes_like(straight, run_dir, tok, step=3)
    assert not list(ckpts.glob(".tmp-*"))          # the resumed run's first save cleared the dead one's temp


class StepTimes(TrainerCallback):
    def __init__(self):
        self.begin, self.end = {}, {}

    def on_step_begin(self, args, state, control, **kw):
        self.begin[state.global_step + 1] = time.monotonic()

    def on_step_end(self, args, state, control, **kw):
        self.end[state.global_step] = time.monotonic()


def test_the_step_after_a_save_does_not_wait_for_the_write(tmp_path, monkeypatch):
    tok = tiny_tokenizer()
    writes: list = []
    _slow_writer(monkeypatch, 2.0, log=writes)
    times = StepTimes()
    cfg = _cfg(write_data(tmp_path, n=8), save_steps=3, max_steps=4)
    job = _run(cfg, tmp_path / "timed", tok, callbacks=[times])
    assert job.state == "done", job.message
    saver = job._saver
    assert saver.write_s[0] >= 2.0                  # the write took its two seconds ...
    gap = times.begin[4] - times.end[3]             # ... in the background: step 4 began at once after step 3
    assert gap < 1.0, f"the save held the training thread {gap:.2f} s"
    assert times.end[4] - times.begin[4] < 1.0
    assert saver.snapshot_s[0] < 1.0
    # The end of training waited for the last write: the final checkpoint is complete when the run is done.
    assert (job.run_dir / "checkpoints" / "checkpoint-4" / "studio-complete.json").is_file()


def test_at_most_one_write_is_in_flight(tmp_path, monkeypatch):
    tok = tiny_tokenizer()
    writes: list = []
    _slow_writer(monkeypatch, 0.8, log=writes)
    cfg = _cfg(write_data(tmp_path, n=8), save_steps=1, max_steps=3)
    job = _run(cfg, tmp_path / "every-step", tok)
    assert job.state == "done", job.message
    assert [(kind, step) for kind, step, _ in writes] == [("start", 1), ("end", 1), ("start", 2), ("end", 2),
                                                           ("start", 3), ("end", 3)]
    assert sorted(p.name for p in (job.run_dir / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-3"]


def test_runs_of_several_processes_keep_the_trainers_own_save():
    class Args:
        world_size, push_to_hub, load_best_model_at_end, metric_for_best_model = 2, False, False, None

    class Trainer:
        args, model = Args(), None
    assert bs.supported(Trainer()) is False
