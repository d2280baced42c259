"""The subprocess runner on a CPU: one process (an isolated run) and two gloo processes (DDP) train the
tiny model through the job manager, stream their metrics, stop within seconds leaving no process, and a
rank killed with SIGKILL fails the run with a message naming it while the manager serves the next run."""

from __future__ import annotations

import os
import signal
import time

import pytest

from test_training_job import make_cfg, write_data


@pytest.fixture()
def two_gpus(monkeypatch):
    """This machine 'has' two GPUs for the plan; the processes then train on the CPU over gloo."""
    import studio.training.distributed as d
    monkeypatch.setattr(d, "gpu_count", lambda: 2)


def cfg_for(tmp_path, tiny_dir, **training):
    from studio.config import merge
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = make_cfg(write_data(tmp_path), **{"batch_size": 2, "max_steps": 4, **training})
    return merge(cfg, {"model": {"source": str(tiny_dir)}})


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def lora_b_norm(adapter_dir) -> float:
    from safetensors.torch import load_file
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    return sum(float(v.abs().sum()) for k, v in weights.items() if "lora_B" in k)


def test_one_isolated_process_trains_and_streams_like_a_thread_job(tmp_path, tiny_dir, studio_home):
    from studio.jobs import JobManager
    from studio.training.launcher import SubprocessJob
    from studio.runs import MetricsLog

    manager = JobManager()
    job = manager.start(cfg_for(tmp_path, tiny_dir, isolate=True))
    assert isinstance(job, SubprocessJob) and job.model is None
    seen, cursor = [], 0
    while job.active:
        rows, cursor = job.metrics.since(cursor)
        seen += rows
        time.sleep(0.1)
    assert job.join(10)
    seen += job.metrics.since(cursor)[0]
    assert job.state == "done", job.message
    assert [r["step"] for r in seen if r["type"] == "train"] == [1, 2, 3, 4]
    assert MetricsLog.read(job.run.metrics_path) == seen          # the same rows a thread job's reader gets
    assert job.run.has_adapter() and lora_b_norm(job.run.adapter_dir) > 0   # LoRA B starts at zero
    state = job.run.read_state()
    assert state["state"] == "done" and state["result"]["steps"] == 4 and state["processes"] == 1
    assert job.alive_pids() == []
    assert manager.runs()[0]["state"] == "done"


def test_two_gloo_processes_train_the_same_rows_as_one_at_twice_the_batch(tmp_path, tiny_dir, studio_home,
                                                                          two_gpus):
    """DDP on 2 processes at micro-batch 2 sees a step's 4 rows split in two: the same losses as one
    process at micro-batch 4 (the trainer averages over every rank's tokens)."""
    from studio.jobs import JobManager
    from studio.runs import MetricsLog

    manager = JobManager()
    two = manager.start(cfg_for(tmp_path / "a", tiny_dir, gpus=2, batch_size=2))
    assert two.processes == 2 and two.strategy == "ddp"
    assert two.join(120) and two.state == "done", two.message
    one = manager.start(cfg_for(tmp_path / "b", tiny_dir, gpus=1, isolate=True, batch_size=4))
    assert one.join(120) and one.state == "done", one.message
    l2 = [r["loss"] for r in MetricsLog.read(two.run.metrics_path) if r["type"] == "train"]
    l1 = [r["loss"] for r in MetricsLog.read(one.run.metrics_path) if r["type"] == "train"]
    assert len(l2) == len(l1) == 4
    assert l2[0] == pytest.approx(l1[0], rel=1e-4)
    assert l2 == pytest.approx(l1, rel=1e-3)
    assert two.run.has_adapter() and lora_b_norm(two.run.adapter_dir) > 0
    # Rank 1 wrote nothing of its own into the run folder; the config there is the resolved one.
    assert two.run.config().training.strategy == "ddp" and two.run.config().training.gpus == 2
    assert sorted(p.name for p in two.run.path.iterdir()) == sorted(
        ["adapter", "checkpoints", "config.yaml", "fingerprint.json", "metrics.jsonl", "state.json",
         "system_prompt.json", "train.log"])


def test_stop_ends_every_process_within_seconds_and_saves(tmp_path, tiny_dir, studio_home, two_gpus):
    from studio.jobs import JobManager

    manager = JobManager()
    job = manager.start(cfg_for(tmp_path, tiny_dir, gpus=2, max_steps=100_000))
    wait_for(lambda: job.progress.step >= 2 or not job.active, 120, "training to start")
    pids = job.alive_pids()
    assert len(pids) == 3                     # torch's launcher and two workers
    t0 = time.monotonic()
    assert manager.stop()
    assert job.join(30), "the run did not end after stop"
    assert time.monotonic() - t0 < 20
    assert job.state == "stopped", job.message
    assert not [p for p in pids if _running(p)]
    assert job.run.has_adapter() and "Stopped at step" in job.message


def test_a_rank_killed_fails_the_run_naming_it_and_the_next_run_starts(tmp_path, tiny_dir, studio_home, two_gpus):
    import psutil

    from studio.jobs import JobManager

    manager = JobManager()
    job = manager.start(cfg_for(tmp_path, tiny_dir, gpus=2, max_steps=100_000))
    wait_for(lambda: job.progress.step >= 1 or not job.active, 120, "training to start")
    workers = psutil.Process(job.pid).children()
    rank1 = next(p for p in workers if p.environ().get("RANK") == "1")
    os.kill(rank1.pid, signal.SIGKILL)
    assert job.join(60), "the run did not end after a rank died"
    assert job.state == "failed"
    assert "rank 1" in job.message and "SIGKILL" in job.message, job.message
    assert job.status()["failure"].code == "training.process_killed"
    assert "SIGKILL" in job.status()["failure"].render("zh")[0]          # the zh app says it in Chinese
    assert job.run.read_state()["state"] == "failed"
    assert job.alive_pids() == []
    again = manager.start(cfg_for(tmp_path / "next", tiny_dir, isolate=True, max_steps=2))
    assert again.join(120) and again.state == "done", again.message


def _running(pid: int) -> bool:
    import psutil
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_objects_of_this_process_are_refused_for_a_run_in_its_own(tmp_path, tiny_dir, studio_home):
    """A model or data loaded here cannot go to a child process; passing them must not be ignored."""
    from studio.jobs import JobManager
    manager = JobManager()
    with pytest.raises(ValueError, match="cannot be passed"):
        manager.start(cfg_for(tmp_path, tiny_dir, isolate=True), data=object())
    assert manager.current() is None            # nothing was started


def test_a_stopped_two_process_run_resumes_from_its_checkpoint(tmp_path, tiny_dir, studio_home, two_gpus):
    """Resume goes through the same path as the app's Resume button and `studio train --resume`."""
    from studio.runs import MetricsLog
    from studio.ui.services import Services

    svc = Services()
    manager = svc.manager()
    job = manager.start(cfg_for(tmp_path, tiny_dir, gpus=2, max_steps=100_000))
    wait_for(lambda: job.progress.step >= 3 or not job.active, 120, "training to start")
    assert manager.stop() and job.join(30) and job.state == "stopped", job.message
    again, plan = svc.resume_run(str(job.run.path))
    assert again.processes == 2 and again.run.path == job.run.path
    wait_for(lambda: again.progress.step >= plan.step + 2 or not again.active, 120, "the resumed run to train")
    assert manager.stop() and again.join(30) and again.state == "stopped", again.message
    steps = [r["step"] for r in MetricsLog.read(again.run.metrics_path) if r["type"] == "train"]
    # Up to the checkpoint once, then on from it: the run was resumed, not started over.
    assert steps[:plan.step] == list(range(1, plan.step + 1)) and steps[plan.step] == plan.step + 1
    assert steps == sorted(steps) and again.run.has_adapter()


def test_a_data_problem_in_an_isolated_run_reaches_the_app_in_its_language(tmp_path, tiny_dir, studio_home):
    """The worker's own explained failure (here: a data file without usable rows) crosses to the app's
    process as the same error, so the Chinese app shows it in Chinese, as for a thread job."""
    from studio.config import merge
    from studio.jobs import JobManager

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"nothing": "useful"}\n' * 4, encoding="utf-8")
    cfg = merge(cfg_for(tmp_path, tiny_dir, isolate=True), {"data": {"file": str(bad)}})
    job = JobManager().start(cfg)
    assert job.join(120) and job.state == "failed"
    failure = job.status()["failure"]
    assert failure is not None and failure.code == "training.data", job.message
    message, hint = failure.render("zh")
    assert message.startswith("训练数据有问题") and hint == "修正数据文件（或换一个）后重新开始。"
    assert job.message == failure.message

