"""A DPO run started from an SFT run's adapter (``--from-run``) and stopped is resumed in a process of its own
(training.isolate, as with several GPUs): the worker is given that adapter again and its losses after the checkpoint
are the ones the same resume gives in the app's thread, whose reference is the SFT model. The checkpoint holds the
frozen reference copy too: with the SFT run's adapter deleted the resume measures against the SFT model still, and
only without that copy as well would the losses differ (the base as reference)."""

from __future__ import annotations

import json
import shutil

import pytest

from preference_rows import QUESTIONS
from test_preference_methods import StopAt
from test_training_job import make_cfg, write_data


def _pairs_file(folder):
    path = folder / "pairs.jsonl"
    path.write_text("".join(json.dumps({"prompt": q, "chosen": good, "rejected": bad}) + "\n"
                            for q, good, bad in QUESTIONS), encoding="utf-8")
    return path


def _losses_after(run_dir, step: int) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r["loss"] for r in rows if r.get("type") == "train" and r["step"] > step]


@pytest.fixture()
def stopped_dpo(tmp_path, tiny_dir, studio_home):
    """An SFT run, then a DPO run from its adapter stopped after 3 of 6 steps (in this process)."""
    from studio.config import merge
    from studio.training import TrainingJob
    from studio.training.extend import plan_from_run

    sft_cfg = merge(make_cfg(write_data(tmp_path), max_steps=4), {"model": {"source": str(tiny_dir)}})
    sft = TrainingJob(sft_cfg, tmp_path / "sft", keep_model=False).run_sync()
    assert sft.state == "done", sft.message
    dpo_cfg = merge(sft_cfg, {"name": "dpo", "data": {"file": str(_pairs_file(tmp_path))},
                              "training": {"method": "dpo", "max_steps": 6, "save_steps": 100, "isolate": True}})
    cfg, origin = plan_from_run(sft.run_dir, dpo_cfg)
    ref: list = []
    dpo = TrainingJob(cfg, tmp_path / "dpo", keep_model=False, callbacks=[StopAt(ref, 3)],
                      init_adapter=origin["started_from"]["adapter"], origin=origin)
    ref.append(dpo)
    dpo.run_sync()
    assert dpo.state == "stopped", dpo.message
    return sft, dpo


def test_a_worker_resumes_a_run_from_another_runs_adapter_like_the_thread(stopped_dpo, tmp_path):
    from studio.jobs import JobManager
    from studio.training import TrainingJob
    from studio.training.launcher import SubprocessJob
    from studio.training.resume import plan_resume

    sft, dpo = stopped_dpo
    assert (dpo.run.checkpoints_dir / "checkpoint-4" / "ref" / "adapter_model.safetensors").is_file()
    names = ("thread", "worker", "gone", "no-ref")
    for n in names:
        shutil.copytree(dpo.run_dir, tmp_path / n)
    thread_dir, worker_dir, gone_dir, no_ref_dir = (tmp_path / n for n in names)

    plan = plan_resume(thread_dir)
    assert plan.init_adapter == sft.run.adapter_dir.resolve()
    thread = TrainingJob(plan.cfg, thread_dir, keep_model=False, resume_from=plan.checkpoint,
                         init_adapter=plan.init_adapter).run_sync()
    assert thread.state == "done", thread.message

    worker_plan = plan_resume(worker_dir)
    assert worker_plan.start_kwargs()["init_adapter"] == sft.run.adapter_dir.resolve()
    job = JobManager().start(worker_plan.cfg, **worker_plan.start_kwargs())
    assert isinstance(job, SubprocessJob)
    assert job.join(240), "the worker did not finish"
    assert job.state == "done", job.message
    resumed_log = (worker_dir / "train.log").read_text().split("--resume-from")[-1]
    assert f"--init-adapter {sft.run.adapter_dir.resolve()}" in resumed_log        # the worker's command line
    assert f"Starting from the adapter in {sft.run.adapter_dir.resolve()}" in resumed_log

    # The SFT run's adapter deleted: the checkpoint's own frozen copy ("ref", which the Trainer loads back with
    # the trained adapter) is the reference still. Without that copy too, it would be the base: other losses.
    shutil.rmtree(sft.run.adapter_dir)
    shutil.rmtree(no_ref_dir / "checkpoints" / "checkpoint-4" / "ref")
    for folder in (gone_dir, no_ref_dir):
        p = plan_resume(folder)
        assert p.init_adapter is None
        assert TrainingJob(p.cfg, folder, keep_model=False, resume_from=p.checkpoint).run_sync().state == "done"

    step = plan.step
    expected, worker, gone, no_ref = (_losses_after(d, step) for d in (thread_dir, worker_dir, gone_dir, no_ref_dir))
    assert len(expected) == 6 - step and len(worker) == len(expected)
    assert worker == pytest.approx(expected, rel=1e-4, abs=1e-5)
    assert gone == pytest.approx(expected, rel=1e-4, abs=1e-5)
    assert no_ref != pytest.approx(expected, rel=1e-3, abs=1e-4)
