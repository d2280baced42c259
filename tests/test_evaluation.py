"""The evaluation table for two runs of one tiny base: base and each run answered greedy, eval.jsonl
in each run folder, the same answers as chatting with each run alone."""

from __future__ import annotations

import json

import pytest

from test_export import train_run


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, tiny_dir):
    root = tmp_path_factory.mktemp("eval")
    return train_run(root, tiny_dir, "a", steps=4), train_run(root, tiny_dir, "b", steps=15)


def test_evaluation_table_for_two_runs(two_runs, tmp_path, capsys):
    import dataclasses

    from studio.cli import main
    from studio.config import GenerationConfig, StudioConfig
    from studio.device import DeviceLock
    from studio.inference import ChatSession

    a, b = two_runs
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "What is the warranty?", "reference": "Two years."}) + "\n" +
                       json.dumps({"question": "Does it ship to Canada?"}) + "\n")
    assert main(["eval", "--runs", str(a), str(b), "--prompts", str(prompts), "--max-new-tokens", "10",
                 "--csv", str(tmp_path / "t.csv")]) == 0
    out = capsys.readouterr().out
    assert "[2/2] Does it ship to Canada?" in out and "reference: Two years." in out
    rows_a = [json.loads(x) for x in (a / "eval.jsonl").read_text().splitlines()]
    rows_b = [json.loads(x) for x in (b / "eval.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in rows_a] == ["What is the warranty?", "Does it ship to Canada?"]
    assert rows_a[0]["base_answer"] == rows_b[0]["base_answer"]
    assert (tmp_path / "t.csv").read_text().splitlines()[0] == (
        "prompt,reference,base right,base facts,base similarity,base,a right,a facts,a similarity,a,"
        "b right,b facts,b similarity,b")
    assert rows_a[0]["score"]["explanation"] and rows_a[1]["score"] is None      # no reference: no score
    assert rows_a[0]["generation"]["repetition_penalty"] == GenerationConfig().repetition_penalty
    # Each run's answer is what chatting with that run alone gives, with the run's own settings (the
    # adapter switch really switched, and evaluation asks as chat asks).
    for run, rows in ((a, rows_a), (b, rows_b)):
        own = StudioConfig.load(run / "config.yaml").generation
        alone = ChatSession.from_run(run, generation=dataclasses.replace(own, max_new_tokens=10),
                                     device_lock=DeviceLock())
        assert [alone.reply(None, r["prompt"]) for r in rows] == [r["answer"] for r in rows]
        assert [alone.reply(None, r["prompt"], use_adapter=False) for r in rows] == [r["base_answer"] for r in rows]
    assert any(ra["answer"] != rb["answer"] for ra, rb in zip(rows_a, rows_b))


def test_bad_prompt_files_are_named(tmp_path):
    from studio.evaluation import load_prompts
    from studio.errors import EvalError

    assert load_prompts(None)[0]["prompt"].startswith("How much would an Aurora Pro")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\nnot json\n')
    with pytest.raises(EvalError, match="Line 2 of"):
        load_prompts(bad)
    csv_file = tmp_path / "p.csv"
    csv_file.write_text("question,answer\nHi?,Hello.\n")
    assert load_prompts(csv_file) == [{"prompt": "Hi?", "reference": "Hello."}]


def test_a_stopped_evaluation_keeps_the_last_complete_one(two_runs):
    import threading

    from studio.device import DeviceLock
    from studio.evaluation import evaluate

    a, _ = two_runs
    prompts = [{"prompt": "What is the warranty?"}, {"prompt": "Does it ship to Canada?"},
               {"prompt": "Can I return it?"}]
    list(evaluate([a], prompts[:1], max_new_tokens=5, device_lock=DeviceLock()))          # a complete evaluation of one prompt
    before = (a / "eval.jsonl").read_text()
    stop = threading.Event()
    rows = []
    for row in evaluate([a], prompts, max_new_tokens=5, stop=stop, device_lock=DeviceLock()):
        rows.append(row)
        stop.set()                                               # the Stop button after the first answer
    assert len(rows) == 1
    assert (a / "eval.jsonl").read_text() == before and not (a / "eval.jsonl.partial").exists()


def test_each_run_is_asked_with_its_own_system_prompt(two_runs, tmp_path, monkeypatch):
    """Runs trained with different system prompts are each asked as they were trained (as chatting with
    each alone would), not all with the first run's."""
    import shutil

    from studio.data import system_prompt
    from studio.device import DeviceLock
    from studio.evaluation import evaluate
    from studio.inference import ChatSession

    a, b = (shutil.copytree(r, tmp_path / r.name) for r in two_runs)
    system_prompt.save(a, {"system_prompt": "You are the warranty desk."})
    system_prompt.save(b, {"system_prompt": "You are the shipping desk."})
    monkeypatch.setattr(ChatSession, "reply",
                        lambda self, history, prompt, use_adapter=True: f"{self.system_prompt}|{use_adapter}")
    row = next(evaluate([a, b], [{"prompt": "Hello?"}], max_new_tokens=5, device_lock=DeviceLock()))
    assert row[a.name] == "You are the warranty desk.|True" and row[b.name] == "You are the shipping desk.|True"
    assert row["base"] == "You are the warranty desk.|False"
    b_rows = [json.loads(x) for x in (b / "eval.jsonl").read_text().splitlines()]
    assert b_rows[0]["base_answer"] == "You are the shipping desk.|False"
