"""Data files that gave a wrong result without a word, or blamed the wrong thing (issue 18), each on a
fixture file in tests/fixtures/data/: the studio now names what it found."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.config import DataConfig
from studio.data.pipeline import inspect, prepare
from studio.errors import DataError
from tiny import tiny_tokenizer

DATA = Path(__file__).parent / "fixtures" / "data"


def _texts(name: str, **cfg) -> list[str]:
    tok = tiny_tokenizer()
    data = prepare(DataConfig(file=str(DATA / name), validation=0, max_length=128, **cfg), tok, seed=0)
    return [tok.decode(r.input_ids) for r in data.train]


def test_an_unbalanced_quote_in_a_csv_is_named_with_its_lines():
    report = inspect(str(DATA / "unbalanced-quote.csv"))
    assert report.rows == 3                               # rows 1-3; row 4 swallowed rows 5-10
    (problem,) = report.problems
    assert problem.row == 4 and "opens a cell on line 5" in problem.message and "lines 6-11" in problem.message
    assert "missing" not in problem.message


def test_a_quoted_cell_with_line_breaks_is_still_one_cell(tmp_path):
    f = tmp_path / "multi.csv"
    f.write_text('instruction,output\n"Two lines,\nwith a comma",Yes.\nQ,"A ""quoted"" word"\n', encoding="utf-8")
    report = inspect(str(f))
    assert report.rows == 2 and not report.problems


def test_a_column_named_twice_in_a_csv_header_is_refused():
    with pytest.raises(DataError) as e:
        inspect(str(DATA / "repeated-column.csv"))
    assert e.value.code == "data.repeated_column" and "'answer' (columns 2, 3)" in e.value.message


def test_1e999_is_not_trained_as_the_text_inf():
    report = inspect(str(DATA / "huge-number.json"))
    assert report.rows == 1
    (problem,) = report.problems
    assert problem.row == 1 and "too large" in problem.message
    assert not any("inf" in t for t in _texts("huge-number.json"))


def test_a_bom_before_cp1252_text_is_read_as_cp1252_with_a_note():
    report = inspect(str(DATA / "bom-cp1252.csv"))
    assert report.encoding == "cp1252"
    assert any("byte-order mark" in n and "not UTF-8" in n for n in report.notes)
    texts = " ".join(_texts("bom-cp1252.csv"))
    assert "Café" in texts and "€" in texts and "\ufffd" not in texts


def test_a_trailing_comma_in_pretty_printed_json_is_named():
    with pytest.raises(DataError) as e:
        inspect(str(DATA / "trailing-comma.json"))
    assert e.value.code == "data.trailing_comma"
    assert "line 21" in e.value.message and "no comma after the last item" in e.value.message


def test_jsonl_lines_end_only_at_newline():
    report = inspect(str(DATA / "line-separators.jsonl"))
    assert report.rows == report.total == 6 and not report.problems
    texts = " ".join(_texts("line-separators.jsonl"))
    assert "\u2028" in texts and "\u0085" in texts and "\u2029" in texts


def test_more_validation_rows_than_the_data_has_is_refused():
    with pytest.raises(DataError) as e:
        prepare(DataConfig(file=str(DATA / "empty-answers.jsonl"), validation=1000, max_length=128),
                tiny_tokenizer(), seed=0)
    assert e.value.code == "data.validation_too_many" and "1000" in e.value.message and "10 usable" in e.value.message
    # A count that leaves fewer training rows than it holds back is said.
    data = prepare(DataConfig(file=str(DATA / "empty-answers.jsonl"), validation=6, max_length=128),
                   tiny_tokenizer(), seed=0)
    assert len(data.train) == 4 and any("holds back 6 of the 10" in n for n in data.report.notes)


def test_tool_call_content_parts_are_read_as_tool_calls():
    """LLaMA-Factory's current shape: the call is a content part {"type": "tool_call", "value": "<JSON>"} beside
    a reasoning part; the tool message after it was refused as 'not a tool call'."""
    from test_data_real_world import TOOL_CHATML
    tok = tiny_tokenizer()
    tok.chat_template = TOOL_CHATML
    f = str(DATA / "tool-call-parts.jsonl")
    report = inspect(f, tokenizer=tok)
    assert report.rows == 2 and report.problems == [], report.problems
    row = prepare(DataConfig(file=f, validation=0), tok, seed=0).train[0]
    learned = tok.decode([t for t in row.labels if t != -100])
    assert '"name": "get_price"' in learned and '"product": "Aurora"' in learned
    assert "The Aurora costs 79 dollars." in learned and '{"price": 79}' not in learned


def test_the_encoding_sample_is_whole_words():
    """The Data tab's encoding sample was a slice cut mid-word."""
    from studio.data.encodings import sample_of
    text = ("The quick brown fox jumps over the lazy dog and then some more words follow here until the crème "
            "brûlée arrives at the table with friends and family gathered around it.")
    sample = sample_of(text)
    assert "crème brûlée" in sample and sample.startswith("…") and sample.endswith("…")
    words = set(text.replace(".", " ").split())
    assert all(w in words for w in sample.strip("…").split()), sample
