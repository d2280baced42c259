"""A finished run asks its held-back questions before it lets the device go: the answers are scored,
eval.jsonl / eval_summary.json are written, the totals reach the job's result, the Train tab's summary
and the Runs table; the base answers are remembered for the next run."""

from __future__ import annotations

import json

from test_training_job import make_cfg, write_data


def _run(manager, cfg):
    job = manager.start(cfg)
    job.join(600)
    assert job.state == "done", job.message
    return job


def test_a_finished_run_is_scored_on_its_held_back_rows(tiny_dir, tmp_path, studio_home):
    from studio.evaluation import read_rows, read_summary, totals_of
    from studio.jobs import JobManager
    from studio.ui import views

    cfg = make_cfg(write_data(tmp_path, n=24), max_steps=4)
    cfg.model.source = str(tiny_dir)
    cfg.data.validation = 3
    cfg.generation.max_new_tokens = 12
    manager = JobManager()
    job = _run(manager, cfg)
    summary = job.result["scores"]
    assert summary == read_summary(job.run_dir)
    rows = read_rows(job.run_dir)
    assert len(rows) == summary["prompts"] == 3                  # the three held-back rows, each one question
    data_rows = [json.loads(x) for x in (tmp_path / "faq.jsonl").read_text().splitlines()]
    pairs = {r["messages"][0]["content"]: r["messages"][1]["content"] for r in data_rows}
    assert all(pairs[r["prompt"]] == r["reference"] for r in rows)       # references are the rows' own answers
    tot = totals_of(rows)
    assert summary["tuned"] == tot[job.run.name] and summary["base"] == tot["base"]
    assert summary["tuned"]["scored"] == sum(1 for r in rows if r["scores"][job.run.name]["right"] is not None)
    line = views.scores_line(summary, "en")
    assert f"{summary['tuned']['right']} of {summary['tuned']['scored']}" in line
    assert views.job_status(job.status(), "en").count("held-out questions") == 1
    assert views.facts_cell(summary) == (f"{summary['tuned']['right']}/{summary['tuned']['scored']} "
                                         f"({summary['base']['right']}/{summary['base']['scored']})")

    # The next run of the same base asks the base model nothing again: the answers are remembered.
    cache = list((studio_home / "models" / "base_answers").glob("*.json"))
    assert len(cache) == 1 and set(json.loads(cache[0].read_text())) == {r["prompt"] for r in rows}
    cfg2 = make_cfg(write_data(tmp_path, n=24), max_steps=8)
    cfg2.model.source, cfg2.data.validation, cfg2.generation.max_new_tokens = str(tiny_dir), 3, 12
    job2 = _run(manager, cfg2)
    assert [r["base"] for r in read_rows(job2.run_dir)] == [r["base"] for r in rows]


def test_none_asks_nothing_and_a_file_is_asked(tiny_dir, tmp_path, studio_home):
    from studio.evaluation import read_rows
    from studio.jobs import JobManager

    cfg = make_cfg(write_data(tmp_path, n=24), max_steps=2)
    cfg.model.source, cfg.data.validation, cfg.generation.max_new_tokens = str(tiny_dir), 3, 8
    cfg.data.score_prompts = "none"
    manager = JobManager()
    job = _run(manager, cfg)
    assert "scores" not in job.result and not (job.run_dir / "eval.jsonl").exists()
    prompts = tmp_path / "q.jsonl"
    prompts.write_text(json.dumps({"question": "How much is the kettle?", "answer": "It costs $79."}) + "\n")
    cfg.data.score_prompts = str(prompts)
    job = _run(manager, cfg)
    assert [r["prompt"] for r in read_rows(job.run_dir)] == ["How much is the kettle?"]
    assert job.result["scores"]["tuned"]["scored"] == 1
