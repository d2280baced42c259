"""Resume and extend on a tiny Llama: a stopped run resumed gives the losses and weights of a straight
run; changed data or settings are refused with a message naming them; a half-written checkpoint is
skipped, never loaded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from test_training_job import make_cfg, prepared, write_data
from tiny import tiny_model, tiny_tokenizer

# Dropout on, so the restored RNG state matters too; several epochs, so the data order does.
TRAINING = dict(max_steps=10, batch_size=2, learning_rate=0.01, scheduler="linear", logging_steps=1)


class StopAt(TrainerCallback):
    def __init__(self, job_ref: list, step: int):
        self.job_ref, self.step = job_ref, step

    def on_step_end(self, args, state, control, **kw):
        if state.global_step == self.step:
            self.job_ref[0].stop()


def _cfg(data_file, **kw):
    cfg = make_cfg(data_file, **{**TRAINING, **kw})
    cfg.lora.dropout = 0.1
    return cfg


def _run(cfg, run_dir, tok, callbacks=(), **kw):
    from studio.training import TrainingJob
    job = TrainingJob(cfg, run_dir, model=tiny_model(tok), tokenizer=tok, data=kw.pop("data", None) or prepared(cfg, tok),
                      callbacks=callbacks, keep_model=False, **kw)
    job.start()
    assert job.join(120), "the job did not end"
    return job


def _losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if r["type"] == "train"}


def _stopped_run(tmp_path, tok, at=5, **kw):
    cfg = _cfg(write_data(tmp_path, n=8), **kw)
    ref: list = []
    from studio.training import TrainingJob
    job = TrainingJob(cfg, tmp_path / "stopped", model=tiny_model(tok), tokenizer=tok, data=prepared(cfg, tok),
                      callbacks=[StopAt(ref, at)], keep_model=False)
    ref.append(job)
    job.start()
    assert job.join(120)
    assert job.state == "stopped", job.message
    return cfg, job


def test_resume_after_a_stop_equals_the_straight_run(tmp_path):
    from studio.training.resume import plan_resume

    tok = tiny_tokenizer()
    straight = _run(_cfg(write_data(tmp_path, n=8)), tmp_path / "straight", tok)
    assert straight.state == "done", straight.message
    # Checkpoints every 100 steps: the only one is the one the stop writes.
    cfg, stopped = _stopped_run(tmp_path, tok, at=4, save_steps=100)
    assert stopped.progress.step == 5             # pressed during step 5: it is the last one
    # The stop wrote a complete checkpoint of step 5 (adapter + optimizer, no base weights).
    ckpt = stopped.run_dir / "checkpoints" / "checkpoint-5"
    assert (ckpt / "adapter_model.safetensors").is_file() and (ckpt / "optimizer.pt").is_file()
    assert not (ckpt / "model.safetensors").exists()
    assert [p.name for p in (stopped.run_dir / "checkpoints").glob("checkpoint-*")] == ["checkpoint-5"]

    plan = plan_resume(stopped.run_dir, tokenizer=tok)
    assert plan.step == 5
    resumed = _run(plan.cfg, stopped.run_dir, tok, data=plan.data, resume_from=plan.checkpoint)
    assert resumed.state == "done", resumed.message
    assert resumed.progress.step == 10

    a, b = _losses(straight.run_dir), _losses(resumed.run_dir)
    assert sorted(a) == sorted(b) == list(range(1, 11))          # each step logged once, none twice
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-5, abs=1e-6), f"step {step}"
    wa = load_file(straight.run_dir / "adapter" / "adapter_model.safetensors")
    wb = load_file(resumed.run_dir / "adapter" / "adapter_model.safetensors")
    assert wa.keys() == wb.keys()
    moved = max((wa[k] - load_file(ckpt / "adapter_model.safetensors")[k]).abs().max().item() for k in wa)
    assert moved > 1e-4                                          # the resumed half really trained
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-4, atol=1e-6)
    fp = json.loads((resumed.run_dir / "fingerprint.json").read_text())
    assert fp["resumed"][0]["from"] == "checkpoint-5"


def test_resume_refuses_changed_data(tmp_path):
    from studio.training.resume import plan_resume
    from studio.errors import ResumeError

    tok = tiny_tokenizer()
    cfg, job = _stopped_run(tmp_path, tok, at=3)
    data_file = Path(cfg.data.file)
    lines = data_file.read_text().splitlines()
    data_file.write_text("\n".join(lines[:-1]) + "\n")                 # one row fewer
    with pytest.raises(ResumeError) as e:
        plan_resume(job.run_dir, tokenizer=tok)
    assert "training data" in str(e.value) and "faq.jsonl" in str(e.value)
    assert "8 training" in str(e.value) and "7 and 0 now" in str(e.value)

    data_file.write_text("\n".join(lines).replace("Two years", "Three years") + "\n")   # same count, other text
    with pytest.raises(ResumeError, match="training data"):
        plan_resume(job.run_dir, tokenizer=tok)

    data_file.write_text("\n".join(lines) + "\n")                     # restored: resumable again
    assert plan_resume(job.run_dir, tokenizer=tok).step == job.progress.step


def test_resume_refuses_a_changed_setting_and_names_it(tmp_path):
    from studio.config import StudioConfig
    from studio.errors import ResumeError
    from studio.training.resume import plan_resume

    tok = tiny_tokenizer()
    _, job = _stopped_run(tmp_path, tok, at=3)
    cfg = StudioConfig.load(job.run_dir / "config.yaml")
    cfg.lora.r = 16
    cfg.training.learning_rate = 0.02
    cfg.training.logging_steps = 5                     # does not change what is learned: not named
    cfg.save(job.run_dir / "config.yaml")
    with pytest.raises(ResumeError) as e:
        plan_resume(job.run_dir, tokenizer=tok)
    msg = str(e.value)
    assert "lora.r: 8 then, 16 now" in msg and "training.learning_rate: 0.01 then, 0.02 now" in msg
    assert "logging_steps" not in msg


def test_a_run_from_before_a_setting_existed_still_resumes(tmp_path):
    """A run started before ``training.method`` existed trained with its default: nothing changed."""
    from studio.runs import RunFolder
    from studio.training.resume import plan_resume, read_fingerprint, write_fingerprint

    tok = tiny_tokenizer()
    _, job = _stopped_run(tmp_path, tok, at=3)
    fp = read_fingerprint(job.run_dir)
    del fp["settings"]["training.method"]
    write_fingerprint(RunFolder(job.run_dir), fp)
    assert plan_resume(job.run_dir, tokenizer=tok).step == job.progress.step


def test_an_incomplete_checkpoint_is_skipped_with_a_note(tmp_path):
    from studio.training.resume import COMPLETE_MARK, plan_resume

    tok = tiny_tokenizer()
    _, job = _stopped_run(tmp_path, tok, at=4, save_steps=2)
    ckpts = job.run_dir / "checkpoints"
    assert (ckpts / "checkpoint-4").is_dir() and (ckpts / "checkpoint-5").is_dir()
    # A crash while writing step 5's checkpoint: the trainer had not finished it.
    (ckpts / "checkpoint-5" / COMPLETE_MARK).unlink()
    weights = ckpts / "checkpoint-5" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    plan = plan_resume(job.run_dir, tokenizer=tok)
    assert plan.step == 4 and plan.checkpoint.name == "checkpoint-4"
    assert any("step 5 is incomplete" in n for n in plan.notes)
    assert (ckpts / "checkpoint-5").exists()       # planning removes nothing; the resume's start does
    resumed = _run(plan.cfg, job.run_dir, tok, data=plan.data, resume_from=plan.checkpoint)
    assert resumed.state == "done", resumed.message
    assert sorted(_losses(job.run_dir)) == list(range(1, 11))


def test_resume_refuses_a_finished_run_and_a_run_without_checkpoints(tmp_path):
    from studio.training.resume import plan_resume
    from studio.errors import ResumeError

    tok = tiny_tokenizer()
    done = _run(_cfg(write_data(tmp_path, n=8), max_steps=2), tmp_path / "done", tok)
    with pytest.raises(ResumeError, match="already finished.*Extend"):
        plan_resume(done.run_dir, tokenizer=tok)
    state = json.loads((done.run_dir / "state.json").read_text())
    (done.run_dir / "state.json").write_text(json.dumps({**state, "state": "failed"}))
    shutil.rmtree(done.run_dir / "checkpoints")
    with pytest.raises(ResumeError, match="no complete checkpoint"):
        plan_resume(done.run_dir, tokenizer=tok)


def test_extend_starts_from_the_old_adapter_and_records_its_origin(tmp_path):
    from studio.training.extend import plan_extend

    tok = tiny_tokenizer()
    first = _run(_cfg(write_data(tmp_path, n=8), max_steps=6), tmp_path / "first", tok)
    assert first.state == "done"
    cfg, origin = plan_extend(first.run_dir, max_steps=4, output_dir=str(tmp_path / "more"))
    assert cfg.training.max_steps == 4
    snap = Snapshot()
    more = _run(cfg, tmp_path / "more", tok, callbacks=[snap], init_adapter=first.run_dir / "adapter", origin=origin)
    assert more.state == "done", more.message
    fp = json.loads((more.run_dir / "fingerprint.json").read_text())
    assert fp["extended_from"]["steps"] == 6 and fp["extended_from"]["name"] == "first"
    # Training began from the first run's adapter weights (a fresh LoRA has B = 0) ...
    old = load_file(first.run_dir / "adapter" / "adapter_model.safetensors")
    assert len(snap.weights) == len(old) and any(v.abs().max() > 0 for k, v in old.items() if "lora_B" in k)
    for k, v in old.items():
        torch.testing.assert_close(snap.weights[k], v)
    # ... and moved on from them.
    new = load_file(more.run_dir / "adapter" / "adapter_model.safetensors")
    assert max((new[k] - old[k]).abs().max().item() for k in old) > 1e-4


class Snapshot(TrainerCallback):
    """The LoRA weights when training begins, named as in a saved adapter."""

    def on_train_begin(self, args, state, control, model=None, **kw):
        from peft import get_peft_model_state_dict
        self.weights = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}
