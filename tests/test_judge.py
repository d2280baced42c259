"""The evaluation's optional judge: its verdict parser on hand-written replies, its fixed prompt, a judged
evaluation of a tiny run end to end (eval.jsonl, CSV, summary), verdicts counted, and `studio eval --judge`."""

from __future__ import annotations

import json

import pytest

from studio.judge import PROMPT, PROMPT_ZH, judge_prompt, parse_verdict
from test_export import train_run


@pytest.mark.parametrize("reply, verdict, reason", [
    ("VERDICT: right\nREASON: It states $129 like the reference.", "right", "It states $129 like the reference."),
    ("VERDICT: wrong\nREASON: It says $99, the reference $129.", "wrong", "It says $99, the reference $129."),
    ("verdict: Wrong\nreason: the price differs", "wrong", "the price differs"),
    ("**Verdict:** Correct - same facts", "right", "same facts"),
    ("Let me compare.\nVERDICT: WRONG.\nREASON: missing the 45 days\nHope this helps!", "wrong", "missing the 45 days"),
    ("VERDICT: 错误\nREASON: 价格不对", "wrong", "价格不对"),
    ("结论：正确\n理由：与参考答案一致", "right", "与参考答案一致"),
    ("VERDICT: 不正确", "wrong", ""),
    ("Right. The answer gives the same price.", "right", "Right. The answer gives the same price."),
])
def test_verdicts_are_read_from_the_reply(reply, verdict, reason):
    assert parse_verdict(reply) == {"verdict": verdict, "reason": reason}


@pytest.mark.parametrize("reply", ["", "asdf qwer zxcv", "VERDICT: right or wrong\nREASON: one short sentence",
                                   "VERDICT: partly right", "VERDICT: right\nVERDICT: wrong", None, "\x00\x01 ### ::"])
def test_a_reply_without_one_clear_verdict_is_unclear(reply):
    out = parse_verdict(reply)
    assert out["verdict"] == "unclear" and isinstance(out["reason"], str)


def test_the_prompt_holds_the_question_reference_and_answer_in_the_question_language():
    p = judge_prompt("How much is the Pro?", "The Pro costs $129.", "It costs {price}: $99.")
    assert p.startswith(PROMPT.split("\n")[0]) and "VERDICT: right or wrong" in p
    for part in ("Question: How much is the Pro?", "Reference answer: The Pro costs $129.",
                 "Answer to grade: It costs {price}: $99."):
        assert part in p
    zh = judge_prompt("Pro 多少钱？", "Pro 售价 129 美元。", "99 美元。")
    assert zh.startswith(PROMPT_ZH.split("\n")[0]) and "问题：Pro 多少钱？" in zh and "待评分的回答：99 美元。" in zh
    assert "VERDICT:" in zh                 # the same line to parse in both languages


PROMPTS = [{"prompt": "What is the warranty?", "reference": "Two years."},
           {"prompt": "Does it ship to Canada?", "reference": "Yes, it ships to Canada."},
           {"prompt": "Hello there", "reference": ""},
           {"prompt": "保修多久？", "reference": "两年。"}]


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_dir):
    return train_run(tmp_path_factory.mktemp("judge"), tiny_dir, "judged", steps=2)


def _evaluate(run, judge, **kw):
    from studio.device import DeviceLock
    from studio.evaluation import evaluate
    return list(evaluate([run], PROMPTS, 8, device_lock=DeviceLock(), judge=judge, **kw))


def test_a_judged_evaluation_of_a_tiny_run_writes_verdicts_everywhere(run, tiny_dir, tmp_path):
    from studio.evaluation import judge_totals_of, read_rows, read_summary, write_csv

    out = _evaluate(run, str(tiny_dir))        # the tiny random model as the judge: its replies are noise
    rows = out[:len(PROMPTS)]
    assert out[len(PROMPTS):] == rows and all(a is b for a, b in zip(out[len(PROMPTS):], rows))   # each row again
    for row in rows:
        assert set(row["judge"]) == {"base", "judged"}
        for v in row["judge"].values():
            assert (v is None) == (not row["reference"])
            if v:
                assert v["verdict"] in ("right", "wrong", "unclear") and isinstance(v["raw"], str)
    records = [json.loads(x) for x in (run / "eval.jsonl").read_text().splitlines()]
    assert [r["judge"] is None for r in records] == [False, False, True, False]
    assert all(r["base_judge"]["verdict"] in ("right", "wrong", "unclear") for r in records if r["reference"])
    judge = read_summary(run)["judge"]
    assert judge["model"] == str(tiny_dir)
    for side in ("tuned", "base"):
        t = judge[side]
        assert t["judged"] == 3 and t["right"] + t["wrong"] + t["unclear"] == 3
    assert read_summary(run)["tuned"]["scored"] >= 1           # the facts totals stay beside it
    assert judge_totals_of(read_rows(run))["judged"]["judged"] == 3
    header = write_csv(rows, tmp_path / "t.csv").read_text().splitlines()[0].split(",")
    assert {"base judge", "base judge reason", "judged judge", "judged judge reason"} <= set(header)


def test_right_and_wrong_replies_are_counted(run):
    from studio.evaluation import judge_line, judge_totals_of, read_summary

    asked = []

    def fake(prompt_text):              # right for the warranty, wrong for Canada, nonsense for the Chinese one
        asked.append(prompt_text)
        if "warranty" in prompt_text:
            return "VERDICT: right\nREASON: says two years"
        if "Canada" in prompt_text:
            return "VERDICT: wrong\nREASON: no yes"
        return "I cannot tell."

    rows = _evaluate(run, fake)[len(PROMPTS):]
    assert any("问题：保修多久？" in p for p in asked)           # the Chinese question asked in Chinese
    assert not any("Hello there" in p for p in asked)          # no reference: nothing to judge
    assert len(asked) <= 6                                     # each distinct answer once (tuned and base)
    assert rows[0]["judge"]["judged"]["reason"] == "says two years"
    totals = judge_totals_of(rows)
    expected = {"right": 1, "wrong": 1, "unclear": 1, "judged": 3}
    assert totals == {"base": expected, "judged": expected}
    assert read_summary(run)["judge"] == {"model": "custom", "tuned": expected, "base": expected}
    assert judge_line(totals) == "base 1 of 3 (1 unclear) · judged 1 of 3 (1 unclear)"


def test_a_stopped_judge_keeps_the_answers_without_verdicts(run):
    import threading

    from studio.evaluation import read_summary

    stop = threading.Event()

    def stop_after_one(prompt_text):
        stop.set()
        return "VERDICT: right"

    out = _evaluate(run, stop_after_one, stop=stop)
    assert len(out) == len(PROMPTS) + 1                        # all answered, one judged
    records = [json.loads(x) for x in (run / "eval.jsonl").read_text().splitlines()]
    assert len(records) == len(PROMPTS) and "judge" not in records[0]
    assert "judge" not in read_summary(run)


def test_a_run_folder_judges_with_its_tuned_model(run):
    from studio.device import DeviceLock
    from studio.judge import Judge

    judge = Judge.open(str(run), device_lock=DeviceLock())
    try:
        v = judge.grade("What is the warranty?", "Two years.", "Two years.")
    finally:
        judge.close()
    assert v["verdict"] in ("right", "wrong", "unclear") and "raw" in v


def test_a_judge_without_a_chat_template_is_refused_before_any_answer(run, tmp_path):
    from studio.errors import EvalError
    from tiny import tiny_model_dir

    plain = tiny_model_dir(tmp_path / "plain", with_template=False)
    before = (run / "eval.jsonl").read_text()
    with pytest.raises(EvalError) as e:
        _evaluate(run, str(plain))
    assert e.value.code == "eval.judge_no_template"
    assert (run / "eval.jsonl").read_text() == before


def test_the_cli_flag_reaches_the_engine_and_prints_the_judge_totals(run, monkeypatch, capsys):
    import studio.evaluation as evaluation
    from studio.cli import main

    seen = {}

    def fake_evaluate(run_dirs, prompts, max_new_tokens=None, stop=None, *, device_lock, generation=None, judge=None):
        seen["judge"] = judge
        row = {"prompt": "Q?", "reference": "R.", "base": "a", "judged": "b",
               "scores": {"base": None, "judged": None}, "settings": {}}
        yield row
        row["judge"] = {"base": {"verdict": "wrong", "reason": "no", "raw": ""},
                        "judged": {"verdict": "right", "reason": "yes", "raw": ""}}
        yield row

    monkeypatch.setattr(evaluation, "evaluate", fake_evaluate)
    assert main(["eval", "--runs", str(run), "--judge", "default"]) == 0
    out = capsys.readouterr().out
    assert seen["judge"] == "default"
    assert "✓ judged: yes" in out and "✗ base: no" in out
    assert "Judge (default): base 0 of 1 · judged 1 of 1" in out
    assert main(["eval", "--runs", str(run)]) == 0 and seen["judge"] is None       # off by default


def test_eval_help_shows_the_judge_prompt(capsys):
    from studio.cli import main

    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    out = capsys.readouterr().out
    assert "--judge SOURCE" in out and PROMPT.splitlines()[-2] in out


def test_a_prompt_longer_than_the_judge_reads_is_unclear_not_an_error(tiny_dir):
    from studio.device import DeviceLock
    from studio.judge import Judge

    judge = Judge.open(str(tiny_dir), device_lock=DeviceLock())      # the tiny model reads 512 tokens
    try:
        v = judge.grade("What is the warranty?", "Two years.", "Two years. " * 200)
    finally:
        judge.close()
    assert v["verdict"] == "unclear" and "512" in v["reason"] and v["raw"] == ""
    # The table gives the reason in the reader's language, not the English of the log.
    from studio.ui.eval_table import judge_cell
    row = {"reference": "Two years.", "judge": {"tuned": v}}
    assert "512" in judge_cell(row, ["tuned"], "en") and "reads at most" not in judge_cell(row, ["tuned"], "zh")
    assert "最多只能读取 512" in judge_cell(row, ["tuned"], "zh")
