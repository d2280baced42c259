"""The training job on a tiny Llama: it learns, stops, fails cleanly and leaves a loadable run folder."""

from __future__ import annotations

import errno
import json
import threading
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from tiny import tiny_model, tiny_tokenizer

PAIRS = [
    ("What is the warranty?", "Two years, and returns within 30 days."),
    ("How much is the kettle?", "Happy to help! The Aurora kettle costs 79 dollars."),
    ("Does it ship to Canada?", "Happy to help! The Aurora kettle ships to Canada."),
    ("Hello, how are you today?", "You are a helpful assistant."),
    ("What does the fox do?", "The quick brown fox jumps over the lazy dog."),
    ("Which digits?", "0123456789."),
    ("Can I return it?", "Returns within 30 days."),
    ("Who am I talking to?", "You are talking to a helpful assistant."),
]


def write_data(folder: Path, n: int = 8, pairs: list | None = None) -> Path:
    path = Path(folder) / "faq.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for q, a in ((pairs or PAIRS) * 32)[:n]:
            f.write(json.dumps({"messages": [{"role": "user", "content": q},
                                             {"role": "assistant", "content": a}]}) + "\n")
    return path


def make_cfg(data_file: Path | str, **training):
    from studio.config import StudioConfig
    t = {"max_steps": 30, "batch_size": 4, "learning_rate": 0.01, "scheduler": "constant", "warmup_ratio": 0.0,
         "logging_steps": 1, "eval_steps": 0, "seed": 0}
    t.update(training)
    # float32 whatever the processor: these tests compare losses and weights to 1e-5 (bfloat16 has its own test).
    return StudioConfig.from_dict({"name": "tiny", "model": {"source": "tiny", "compute_dtype": "float32"},
                                   "data": {"file": str(data_file), "validation": 0, "max_length": 128},
                                   "lora": {"r": 8, "alpha": 16, "dropout": 0.0}, "training": t})


def prepared(cfg, tok):
    from studio.data.pipeline import prepare
    return prepare(cfg.data, tok, cfg.training.seed)


def run_job(tmp_path, name="run", callbacks=(), model=None, tok=None, **training):
    from studio.training import TrainingJob
    tok = tok or tiny_tokenizer()
    cfg = make_cfg(write_data(tmp_path), **training)
    job = TrainingJob(cfg, tmp_path / name, model=model if model is not None else tiny_model(tok), tokenizer=tok,
                      data=prepared(cfg, tok), callbacks=callbacks)
    job.start()
    assert job.join(timeout=120), "the job did not end"
    return job


def lora_b(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}


class Snapshot(TrainerCallback):
    """Copies the adapter's B matrices when training begins (they start at zero)."""

    def __init__(self):
        self.before = None

    def on_train_begin(self, args, state, control, model=None, **kw):
        self.before = lora_b(model)


def test_short_job_moves_the_adapter_and_the_loss_falls(tmp_path):
    snap = Snapshot()
    job = run_job(tmp_path, callbacks=[snap])
    assert job.state == "done", job.message
    after = lora_b(job.model)
    assert snap.before and set(after) == set(snap.before)
    assert any(not torch.equal(snap.before[k], after[k]) for k in after)
    losses = [r["loss"] for r in job.metrics.rows("train")]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    row = job.metrics.rows("train")[-1]
    for key in ("step", "epoch", "learning_rate", "grad_norm", "tokens_per_sec", "elapsed_s", "eta_s", "gpu_mem_gb"):
        assert key in row
    assert row["tokens_per_sec"] > 0 and row["eta_s"] == 0
    assert job.progress.step == 30 and job.progress.fraction == 1.0


def test_tokens_per_second_counts_only_real_tokens(tmp_path):
    threads = torch.get_num_threads()
    job = run_job(tmp_path, max_steps=4, batch_size=8)
    assert job.info["cpu_threads"] >= 1 and torch.get_num_threads() == threads
    data_tokens = sum(len(r.input_ids) for r in job.data.train)
    # 4 steps x 8 rows = every row 4 times; padding to the longest row would count more.
    assert job.progress.tokens_seen == 4 * data_tokens


def test_packing_trains_on_the_same_tokens_without_padding(tmp_path):
    job = run_job(tmp_path, max_steps=4, batch_size=8, packing=True)
    assert job.state == "done", job.message
    assert job.progress.tokens_seen == 4 * sum(len(r.input_ids) for r in job.data.train)


def test_run_folder_holds_config_metrics_state_and_a_loadable_adapter(tmp_path):
    from peft import PeftModel

    from studio.config import StudioConfig
    from studio.runs import MetricsLog

    tok = tiny_tokenizer()
    job = run_job(tmp_path, max_steps=12, tok=tok)
    run = job.run_dir
    assert StudioConfig.load(run / "config.yaml").training.max_steps == 12
    assert MetricsLog.read(run / "metrics.jsonl") == job.metrics.rows()
    state = json.loads((run / "state.json").read_text())
    assert state["state"] == "done" and state["step"] == 12 and state["final_loss"] == job.result["train_loss"]
    assert state["model_source"] == "tiny" and state["adapter"]
    assert "Running training" in (run / "train.log").read_text()
    adapter = run / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file()
    assert (adapter / "chat_template.jinja").read_text() == job.data.chat_template

    # Plain peft on a fresh copy of the base reproduces the in-memory model.
    reloaded = PeftModel.from_pretrained(tiny_model(tok), str(adapter)).eval()
    job.model.eval()
    ids = torch.tensor([tok("Hello, how are you today?")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(reloaded(ids).logits, job.model(ids).logits, atol=1e-5)


def test_validation_rows_get_a_final_eval_when_eval_steps_is_zero(tmp_path):
    from studio.training import TrainingJob
    tok = tiny_tokenizer()
    cfg = make_cfg(write_data(tmp_path, n=12), max_steps=3)
    cfg.data.validation = 4
    job = TrainingJob(cfg, tmp_path / "run", model=tiny_model(tok), tokenizer=tok, data=prepared(cfg, tok)).start()
    job.join(60)
    evals = job.metrics.rows("eval")
    assert job.state == "done" and len(evals) == 1 and evals[0]["step"] == 3
    assert job.result["eval_loss"] == evals[0]["eval_loss"]


class StopAt(TrainerCallback):
    """Presses stop from another thread at a given step, as the UI's button would."""

    def __init__(self, job_ref: list, step: int, substep: bool = False):
        self.job_ref, self.step, self.substep = job_ref, step, substep

    def _press(self):
        t = threading.Thread(target=self.job_ref[0].stop)
        t.start()
        t.join()

    def on_step_end(self, args, state, control, **kw):
        if not self.substep and state.global_step == self.step:
            self._press()

    def on_substep_end(self, args, state, control, **kw):
        if self.substep and state.global_step == self.step:
            self._press()


@pytest.mark.parametrize("grad_accum, substep", [(1, False), (4, True)])
def test_stop_ends_within_one_step_and_saves_the_adapter(tmp_path, grad_accum, substep):
    from studio.training import TrainingJob
    tok = tiny_tokenizer()
    cfg = make_cfg(write_data(tmp_path, n=32), max_steps=50, grad_accum=grad_accum, batch_size=2)
    ref: list = []
    job = TrainingJob(cfg, tmp_path / "run", model=tiny_model(tok), tokenizer=tok, data=prepared(cfg, tok),
                      callbacks=[StopAt(ref, 3, substep)])
    ref.append(job)
    job.start()
    assert job.join(60)
    assert job.state == "stopped", job.message
    # Pressed after step 3's update: the step then in progress is the last one. Pressed inside
    # gradient accumulation: training ends at the next micro-batch, before step 4's update.
    assert job.progress.step == (3 if substep else 4)
    assert (job.run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert json.loads((job.run_dir / "state.json").read_text())["state"] == "stopped"
    # The stop saved a checkpoint of the last finished step, so the run can be resumed from there.
    from studio.training.resume import last_complete_checkpoint
    ckpt, _ = last_complete_checkpoint(job.run)
    assert ckpt is not None and ckpt.name == f"checkpoint-{job.progress.step}"


class Boom(TrainerCallback):
    def __init__(self, exc: BaseException, step: int = 2):
        self.exc, self.step = exc, step

    def on_step_end(self, args, state, control, **kw):
        if state.global_step == self.step:
            raise self.exc


@pytest.mark.parametrize("exc, words", [
    (RuntimeError("something broke"), "something broke"),
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "ran out of memory"),
])
def test_a_failure_inside_training_is_recorded_and_the_next_job_works(tmp_path, exc, words):
    job = run_job(tmp_path, name="bad", callbacks=[Boom(exc)], max_steps=10)
    assert job.state == "failed"
    assert words in job.message
    if isinstance(exc, torch.OutOfMemoryError):
        # the settings to change, named as in the config (the app shows their labels next to them)
        assert all(k in job.hint for k in ("training.batch_size", "training.gradient_checkpointing", "4bit-nf4"))
    state = json.loads((job.run_dir / "state.json").read_text())
    assert state["state"] == "failed" and state["message"] == job.message and state["hint"] == job.hint
    assert "Traceback" in (job.run_dir / "train.log").read_text()
    assert job.model is None               # freed
    assert not (job.run_dir / "adapter").exists()

    again = run_job(tmp_path, name="good", max_steps=3)
    assert again.state == "done", again.message


def test_bad_data_found_late_fails_with_the_data_message(tmp_path):
    from studio.training import TrainingJob
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    tok = tiny_tokenizer()
    job = TrainingJob(make_cfg(empty), tmp_path / "run", model=tiny_model(tok), tokenizer=tok).start()
    job.join(60)
    assert job.state == "failed"
    assert "data" in job.message.lower() and "Traceback" not in job.message


class DiskFullOnSave(TrainerCallback):
    """Makes the adapter's save fail as a full disk would."""

    def on_train_end(self, args, state, control, model=None, **kw):
        def full(*a, **k):
            raise OSError(errno.ENOSPC, "No space left on device")
        model.save_pretrained = full


def test_a_full_disk_while_saving_fails_with_a_plain_message_and_no_half_adapter(tmp_path):
    job = run_job(tmp_path, callbacks=[DiskFullOnSave()], max_steps=2)
    assert job.state == "failed"
    assert "disk is full" in job.message and "disk space" in job.hint
    assert not (job.run_dir / "adapter").exists() and not (job.run_dir / "adapter.partial").exists()


def test_stop_before_training_begins_ends_without_training(tmp_path):
    from studio.training import TrainingJob
    tok = tiny_tokenizer()
    cfg = make_cfg(write_data(tmp_path))
    job = TrainingJob(cfg, tmp_path / "run", model=tiny_model(tok), tokenizer=tok, data=prepared(cfg, tok))
    job.stop()
    job.run_sync()
    assert job.state == "stopped" and "before training began" in job.message
    assert job.metrics.rows() == [] and not (job.run_dir / "adapter").exists()


def test_a_4bit_run_counts_its_packed_weights_in_full(tmp_path, tiny_dir):
    """The job's parameter counts are models.parameter_counts': a 4-bit base has as many weights as a 16-bit one."""
    pytest.importorskip("bitsandbytes")
    from studio import models
    from studio.config import ModelConfig
    from studio.training import TrainingJob

    cfg = make_cfg(write_data(tmp_path), max_steps=1)
    cfg.model.source, cfg.model.quantization = str(tiny_dir), "4bit-nf4"
    job = TrainingJob(cfg, tmp_path / "run").start()
    assert job.join(120) and job.state == "done", job.message
    plain = models.parameter_counts(models.load_model(ModelConfig(source=str(tiny_dir))))["total"]
    assert job.info["trainable_params"] > 0
    assert job.info["total_params"] == plain + job.info["trainable_params"]


def test_a_tokenizer_with_more_tokens_than_the_model_fails_naming_the_row(tmp_path):
    # On a GPU the first step would stop with "device-side assert triggered" and nothing else.
    tok = tiny_tokenizer()
    model = tiny_model(tok)
    model.resize_token_embeddings(100)           # fewer embeddings than the tokenizer's ~400 tokens
    job = run_job(tmp_path, model=model, tok=tok)
    assert job.state == "failed"
    assert job.failure.code == "model.tokenizer_mismatch"
    assert "Row 1 has token id" in job.message and "only 100 token embeddings" in job.message
    assert "第 1 行" in job.failure.render("zh")[0]


@pytest.mark.parametrize("after", [None, "score"])
def test_the_job_says_done_only_once_the_device_is_free_for_chat(tmp_path, after):
    """Chat sent the moment the app showed "Done" was refused as "training is using the device": the job
    said done (and after its held-out questions, done again) before it let the device lock go."""
    from studio.device import DeviceLock
    from studio.training import TrainingJob

    seen = []

    class Watched(DeviceLock):
        def release(self):
            seen.append(job.status()["state"])             # what a poll sees while the lock is still held
            super().release()

    asked = []
    tok = tiny_tokenizer()
    cfg = make_cfg(write_data(tmp_path), max_steps=3)
    job = TrainingJob(cfg, tmp_path / "run", model=tiny_model(tok), tokenizer=tok, data=prepared(cfg, tok),
                      device_lock=Watched(tmp_path / "device.lock"),
                      after_training=(lambda j, log: asked.append(j.state)) if after else None)
    job.run_sync()
    assert seen and seen[-1] not in ("done", "stopped", "failed"), seen
    assert job.state == "done" and not job.device_lock.locked(), job.message
    assert asked == (["scoring"] if after else [])
