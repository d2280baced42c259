"""benchmarks/speed.py on a CPU (it refuses to measure without CUDA): rows of exactly N tokens (``--row-tokens``), the
long-row settings, checkpoint saves timed apart from the steps, and a dry run of the studio case on the 'tiny' shape
that saves inside the run."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import speed  # noqa: E402
import speed_case  # noqa: E402
import speed_common  # noqa: E402
import speed_setup  # noqa: E402


def test_rows_of_exactly_n_tokens(tmp_path, tiny_dir):
    train, evals = speed_setup.write_exact_rows(tmp_path / "rows", tiny_dir, n_train=3, n_eval=1, tokens=3000)
    rows = speed_common.load_rows(train)
    held = speed_common.load_rows(evals)
    assert len(rows) == 3 and len(held) == 1
    for r in rows + held:
        assert len(r["input_ids"]) == len(r["labels"]) == 3000
        trained = sum(x != -100 for x in r["labels"])
        assert 2000 < trained < 3000                  # the answer is trained on, the system prompt and question not
    assert len({tuple(r["input_ids"][:200]) for r in rows}) == 3     # different text in each row


def test_row_tokens_trains_one_row_a_step():
    a = argparse.Namespace(row_tokens=65536, batch_size=8, grad_accum=2, max_length=2048, steps=14,
                           train_rows=640, eval_rows=64)
    speed.long_rows(a)
    assert (a.batch_size, a.grad_accum, a.max_length, a.train_rows, a.eval_rows) == (1, 1, 65536, 14, 1)
    b = argparse.Namespace(row_tokens=0, batch_size=8, grad_accum=2, max_length=2048, steps=14, train_rows=640,
                           eval_rows=64)
    speed.long_rows(b)
    assert (b.batch_size, b.max_length, b.train_rows) == (8, 2048, 640)


def test_a_save_is_timed_apart_from_the_steps():
    rec = speed_common.StepRecorder()
    state = argparse.Namespace(num_input_tokens_seen=0)
    rec.on_train_begin(None, state, None)
    for step in range(3):
        time.sleep(0.05)
        state.num_input_tokens_seen += 100
        rec.on_step_end(None, state, None)
        if step == 0:
            time.sleep(0.4)                           # a save after the first step
            rec.on_save(None, state, None)
    assert len(rec.step_s) == 3 and len(rec.save_s) == 1
    assert rec.save_s[0] >= 0.4 and max(rec.step_s) < 0.3
    summary = speed.summarise({"case": "x", "step_s": rec.step_s, "tokens": rec.tokens, "save_s": rec.save_s},
                              0, 1.0, 1.0)
    assert summary["saves"] == 1 and summary["save_stall_s"] >= 0.4
    assert summary["tokens_per_s"] > 300 / 0.3


def test_every_case_saves_as_the_spec_says():
    assert speed_case.save_args({"save_steps": 0}) == {"save_strategy": "no"}
    assert speed_case.save_args({"save_steps": 5}) == {"save_strategy": "steps", "save_steps": 5}


def test_the_studio_case_runs_on_the_tiny_shape(tmp_path, tiny_dir, monkeypatch):
    """The studio case's code path on a CPU: exact rows, a save inside the run timed apart, a result without error."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    folder = speed_setup.model_folder("tiny", tmp_path, tiny_dir)
    train, evals = speed_setup.write_exact_rows(tmp_path / "rows", tiny_dir, n_train=4, n_eval=1, tokens=256)
    spec = {"shape": "tiny", "mode": "16bit", "model_dir": str(folder), "train_rows": str(train),
            "eval_rows": str(evals), "steps": 4, "warmup_steps": 0, "batch_size": 1, "grad_accum": 1,
            "learning_rate": 2e-4, "scheduler": "constant", "warmup_ratio": 0.0, "optimizer": "adamw_torch",
            "max_grad_norm": 0.3, "seed": 42, "gradient_checkpointing": True,
            "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"},
            "memory_cap_gb": 0, "max_length": 256, "save_steps": 2, "row_tokens": 256}
    out = tmp_path / "result.json"
    import shutil
    run = Path("/tmp/speed-studio-tiny-16bit")       # the case's own run folder
    shutil.rmtree(run, ignore_errors=True)
    try:
        speed_case.studio(spec, str(out), {"gradient_checkpointing": "offload", "fused_kernels": False})
    finally:
        shutil.rmtree(run, ignore_errors=True)
    res = json.loads(out.read_text())
    assert not res.get("error"), res
    assert len(res["step_s"]) == 4 and res["tokens"] == [256] * 4
    assert len(res["save_s"]) == 2                  # steps 2 and 4, each timed on its own
    assert "activation offload True" in res["notes"]


def test_the_steps_peak_is_kept_apart_from_the_setups(monkeypatch):
    # 'auto' probes before training, one of them out of memory on purpose: the process's peak then says what the
    # probe reached, not what the run needs, so the result carries the steps' own peak as well.
    import torch
    gib = 2**30
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a, **k: 5 * gib)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda *a, **k: 6 * gib)
    both = speed_common.peak_memory(setup_peak=8 * gib)
    assert both["peak_allocated_gb"] == 8 and both["train_peak_allocated_gb"] == 5
    alone = speed_common.peak_memory()
    assert alone["peak_allocated_gb"] == 5 and "train_peak_allocated_gb" not in alone
