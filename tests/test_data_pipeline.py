"""inspect / prepare, splits, token statistics and the ``studio data`` command."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import tiny_tokenizer

from studio.cli import main
from studio.config import DataConfig
from studio.data.pipeline import inspect, prepare, validation_count
from studio.data.render import IGNORE
from studio.data.stats import token_stats
from studio.errors import DataError

FIX = Path(__file__).parent / "fixtures" / "data"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def fx(name):
    return str(FIX / name)


def test_inspect_reports_shape_preview_and_stats(tok):
    r = inspect(fx("messages.jsonl"), tokenizer=tok)
    assert (r.format, r.rows, r.total, r.kind, r.template) == ("messages", 2, 2, "jsonl", "model")
    assert r.problems == [] and len(r.preview) == 2
    assert r.preview[0] == tok.apply_chat_template([
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the warranty?"},
        {"role": "assistant", "content": "Two years, and returns within 30 days."}], tokenize=False)
    marked = r.preview_marked[0]
    assert "".join(t for t, _ in marked) == r.preview[0]
    assert [t for t, on in marked if on] == ["Two years, and returns within 30 days.<|im_end|>"]
    convs = [json.loads(line)["messages"] for line in (FIX / "messages.jsonl").read_text().splitlines()]
    lengths = [len(tok(tok.apply_chat_template(m, tokenize=False), add_special_tokens=False)["input_ids"])
               for m in convs]
    s = r.token_stats
    assert s["lengths"] == lengths and s["max"] == max(lengths) and s["count"] == 2


def test_inspect_without_tokenizer_still_previews():
    r = inspect(fx("alpaca.json"))
    assert r.format == "alpaca" and r.rows == 4 and r.token_stats is None
    assert r.preview[0].startswith("<|im_start|>user\nWhat is the warranty?")
    assert [t for t, on in r.preview_marked[0] if on] == ["Two years, and returns within 30 days.<|im_end|>"]


def test_inspect_broken_rows_listed_good_rows_kept(tok):
    r = inspect(fx("broken.jsonl"), tokenizer=tok)
    assert r.rows == 2 and r.total == 10
    assert [p.row for p in r.problems] == [2, 3, 4, 5, 6, 7, 8, 10]
    assert "8 rows with problems" in r.message


def test_inspect_unknown_shape_suggests_mapping_then_mapping_works(tok):
    r = inspect(fx("qa.csv"), tokenizer=tok)
    assert r.format == "unknown" and r.rows == 0
    assert r.suggested_mapping == {"prompt": "Question", "answer": "Answer", "system": ""}
    assert "mapping" in r.message
    cfg = DataConfig(file=fx("qa.csv"), format="mapping", prompt_column="Question", answer_column="Answer")
    r = inspect(cfg.file, tokenizer=tok, data_cfg=cfg)
    assert r.format == "mapping" and r.rows == 2 and "What is the warranty?" in r.preview[0]


def test_inspect_gbk_mapping_has_note(tok):
    r = inspect(fx("gbk.csv"), mapping={"prompt": "question", "answer": "answer"}, fmt="mapping", tokenizer=tok)
    assert r.rows == 3 and any("GB" in n for n in r.notes)
    assert "这个水壶的保修期是多久？" in r.preview[0]


def test_inspect_overlong_drop_is_reported(tok):
    cfg = DataConfig(file="demo", max_length=40, overlong="drop")
    r = inspect("demo", tokenizer=tok, data_cfg=cfg)
    over = r.token_stats["over_max"]
    assert over > 0 and r.rows == r.total - over
    assert sum("longer than the maximum of 40" in p.message for p in r.problems) == over


def test_prepare_demo_split_sizes_and_determinism(tok):
    cfg = DataConfig(file="demo", validation=0.1, max_length=256)
    a = prepare(cfg, tok, seed=1)
    n = a.report.rows
    assert n == a.report.total and len(a.validation) == round(n * 0.1) and len(a.train) + len(a.validation) == n
    assert a.template_name == "model" and a.chat_template == tok.chat_template
    b = prepare(cfg, tok, seed=1)
    c = prepare(cfg, tok, seed=2)
    assert [r.row for r in a.validation] == [r.row for r in b.validation]
    assert [r.row for r in a.train] != [r.row for r in c.train]
    assert not {r.row for r in a.train} & {r.row for r in a.validation}
    row = a.train[0]
    assert any(lab != IGNORE for lab in row.labels) and row.labels[0] == IGNORE

    counted = prepare(DataConfig(file="demo", validation=20, max_rows=50), tok, seed=0)
    assert len(counted.validation) == 20 and len(counted.train) == 30


def test_prepare_broken_keeps_good_rows_and_refuses_when_none(tok, tmp_path):
    d = prepare(DataConfig(file=fx("broken.jsonl"), validation=0), tok, seed=0)
    assert sorted(r.row for r in d.train) == [1, 9] and d.validation == []
    assert [p.row for p in d.report.problems] == [2, 3, 4, 5, 6, 7, 8, 10]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "x", "output": ""}\n{"instruction": "y"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="row 1.*empty.*row 2.*missing"):
        prepare(DataConfig(file=str(bad)), tok, seed=0)
    with pytest.raises(DataError, match="mapping"):
        prepare(DataConfig(file=fx("qa.csv")), tok, seed=0)


def test_prepare_drops_everything_too_long(tok):
    with pytest.raises(DataError, match="longer than the maximum of 16"):
        prepare(DataConfig(file=fx("messages.jsonl"), max_length=16, overlong="drop"), tok, seed=0)
    d = prepare(DataConfig(file="demo", max_length=64, overlong="truncate", validation=0), tok, seed=0)
    assert all(len(r.input_ids) <= 64 for r in d.train) and any(r.truncated for r in d.train)
    assert d.report.token_stats["over_max"] > 0 and d.report.token_stats["max"] > 64


@pytest.mark.parametrize("n, validation, expected", [
    (100, 0.05, 5), (100, 0, 0), (10, 0.01, 1), (100, 20, 20), (5, 20, 4), (1, 0.5, 0), (3, 0.99, 2)])
def test_validation_count(n, validation, expected):
    assert validation_count(n, validation) == expected


def test_token_stats():
    s = token_stats([5, 1, 3, 9, 7], max_length=6)
    assert (s["min"], s["median"], s["max"], s["over_max"], s["count"]) == (1, 5, 9, 2, 5)
    assert s["p95"] == 9 and s["lengths"] == [5, 1, 3, 9, 7]
    assert token_stats([2, 4], 10)["median"] == 3
    assert token_stats([], 10)["count"] == 0


def run_cli(argv, capsys):
    code = main(["data", *argv])
    return code, capsys.readouterr().out


def test_cli_json_good_file(capsys):
    code, out = run_cli([fx("sharegpt.jsonl"), "--json"], capsys)
    data = json.loads(out)
    assert code == 0 and data["format"] == "sharegpt" and data["rows"] == 3 and data["problems"] == []
    assert len(data["preview"]) == 3


def test_cli_json_broken_file_lists_problems(capsys):
    code, out = run_cli([fx("broken.jsonl"), "--json"], capsys)
    data = json.loads(out)
    assert code == 0 and data["rows"] == 2
    assert [p["row"] for p in data["problems"]] == [2, 3, 4, 5, 6, 7, 8, 10]


@pytest.mark.parametrize("name", ["empty.jsonl", "qa.csv", "missing.jsonl"])
def test_cli_json_nothing_usable_exits_nonzero(capsys, name):
    code, out = run_cli([fx(name), "--json"], capsys)
    data = json.loads(out)
    assert code == 1 and data["rows"] == 0 and data.get("error")


def test_cli_mapping_and_text_output(capsys):
    code, out = run_cli([fx("qa.csv"), "--format", "mapping", "--prompt-column", "Question",
                         "--answer-column", "Answer"], capsys)
    assert code == 0 and "Usable:    2 of 2 rows" in out and "What is the warranty?" in out
    code, out = run_cli([fx("qa.csv")], capsys)
    assert code == 1 and "--prompt-column Question --answer-column Answer" in out


def test_cli_with_model_folder_prints_token_stats(capsys, tiny_dir):
    pytest.importorskip("studio.models")
    code, out = run_cli([fx("messages.jsonl"), "--model", str(tiny_dir)], capsys)
    assert code == 0 and "Tokens per row: min" in out and "template: model" in out


def test_cli_subprocess_prints_one_json_object(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "studio.cli", "data", fx("broken_alpaca.json"), "--json"],
                          capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["format"] == "alpaca" and [p["row"] for p in data["problems"]] == [2, 3, 4, 5]
    assert "Traceback" not in proc.stderr


def test_inspect_lengths_match_prepare(tok):
    for name in ("text.jsonl", "sharegpt.jsonl", "alpaca.json"):
        cfg = DataConfig(file=fx(name), validation=0)
        r = inspect(cfg.file, tokenizer=tok, data_cfg=cfg)
        d = prepare(cfg, tok, seed=0)
        by_row = {row.row: len(row.input_ids) for row in d.train}
        assert sorted(r.token_stats["lengths"]) == sorted(by_row.values())
