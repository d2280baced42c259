"""Reading files, shape detection, normalisation and row-numbered problems."""

import json
import time
from pathlib import Path

import pytest

from studio.data.formats import detect_format, normalise, suggest_mapping
from studio.data.read import read_records, read_source
from studio.errors import DataError

FIX = Path(__file__).parent / "fixtures" / "data"


def _convs(name, fmt="auto", mapping=None):
    records, problems, kind = read_records(str(FIX / name))
    convs, more = normalise(records, fmt, mapping)
    return convs, problems + more, kind


@pytest.mark.parametrize("name, kind, fmt", [
    ("alpaca.json", "json", "alpaca"),
    ("sharegpt.jsonl", "jsonl", "sharegpt"),
    ("messages.jsonl", "jsonl", "messages"),
    ("prompt_completion.jsonl", "jsonl", "prompt_completion"),
    ("text.jsonl", "jsonl", "text"),
    ("qa.tsv", "tsv", "alpaca"),
    ("bom.csv", "csv", "prompt_completion"),
    ("qa.csv", "csv", "unknown"),
])
def test_each_shape_is_detected(name, kind, fmt):
    records, problems, got_kind = read_records(str(FIX / name))
    assert got_kind == kind
    assert not problems
    assert detect_format(records) == fmt
    assert all(isinstance(r["__row__"], int) and r["__row__"] >= 1 for r in records)


def test_alpaca_input_and_system_are_kept():
    convs, problems, _ = _convs("alpaca.json")
    assert not problems and len(convs) == 4
    assert convs[0].messages == [{"role": "user", "content": "What is the warranty?"},
                                 {"role": "assistant", "content": "Two years, and returns within 30 days."}]
    assert convs[1].messages[0]["content"] == "Translate to French.\n\nHello, how are you today?"
    assert convs[2].messages[0] == {"role": "system", "content": "You are a helpful assistant."}
    assert [c.row for c in convs] == [1, 2, 3, 4]


def test_sharegpt_roles_are_mapped():
    convs, problems, _ = _convs("sharegpt.jsonl")
    assert not problems
    assert [m["role"] for m in convs[0].messages] == ["system", "user", "assistant", "user", "assistant"]
    assert [m["role"] for m in convs[2].messages] == ["user", "assistant"]   # user/assistant spelled in 'from'
    assert convs[0].messages[2]["content"] == "Happy to help!"


def test_messages_prompt_completion_and_text():
    convs, _, _ = _convs("messages.jsonl")
    assert len(convs[1].messages) == 4 and convs[1].messages[-1] == {"role": "assistant", "content": "79 dollars."}
    convs, _, _ = _convs("prompt_completion.jsonl")
    assert convs[0].messages == [{"role": "user", "content": "What is the warranty?"},
                                 {"role": "assistant", "content": "Two years."}]
    convs, _, _ = _convs("text.jsonl")
    assert convs[1].messages == [{"role": "text", "content": "Happy to help! The Aurora kettle costs 79 dollars."}]


def test_utf8_bom_csv_header_is_clean():
    records, _, _ = read_records(str(FIX / "bom.csv"))
    assert set(records[0]) == {"prompt", "completion", "__row__"}
    assert records[0]["completion"] == "Two years — and returns within 30 days."
    assert records[1]["prompt"] == "Café?"


def test_gbk_file_is_decoded_with_a_note():
    result = read_source(str(FIX / "gbk.csv"))
    assert result.records[0]["question"] == "这个水壶的保修期是多久？"
    assert any("GB" in n and "UTF-8" in n for n in result.notes)


def test_undecodable_file_is_refused_with_advice(tmp_path):
    p = tmp_path / "noise.csv"
    p.write_bytes(b"a,b\n" + bytes(range(128, 256)) * 40)
    with pytest.raises(DataError, match="UTF-8") as e:
        read_records(str(p))
    assert "Traceback" not in str(e.value)


def test_utf16_file_is_read(tmp_path):
    p = tmp_path / "u16.jsonl"
    p.write_text(json.dumps({"prompt": "Grüße?", "completion": "Hallo."}, ensure_ascii=False) + "\n", encoding="utf-16")
    result = read_source(str(p))
    assert result.records[0]["prompt"] == "Grüße?"
    assert result.notes and "UTF-16" in result.notes[0]


def test_parquet_is_read(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    msgs = [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]]
    pq.write_table(pa.table({"messages": msgs}), tmp_path / "d.parquet")
    records, problems, kind = read_records(str(tmp_path / "d.parquet"))
    assert kind == "parquet" and detect_format(records) == "messages"
    convs, more = normalise(records, "auto")
    assert convs[0].messages[1] == {"role": "assistant", "content": "Hello!"}


def test_broken_jsonl_reports_every_bad_line():
    convs, problems, _ = _convs("broken.jsonl")
    assert [c.row for c in convs] == [1, 9]
    by_row = {p.row: p.message for p in problems}
    assert sorted(by_row) == [2, 3, 4, 5, 6, 7, 8, 10]
    assert "not valid JSON" in by_row[2]
    assert "does not end with an assistant" in by_row[3]
    assert "unknown role 'robot'" in by_row[4]
    assert "answer" in by_row[5] and "empty" in by_row[5]
    assert "both from the user" in by_row[6]
    assert "should be text" in by_row[7] and "list" in by_row[7]
    assert "should be a list" in by_row[8]


def test_broken_json_array_reports_elements():
    convs, problems, _ = _convs("broken_alpaca.json")
    by_row = {p.row: p.message for p in problems}
    assert sorted(by_row) == [2, 3, 4, 5]
    assert "empty" in by_row[2] and "list" in by_row[3] and "number" in by_row[4] and "instruction" in by_row[5]
    assert [c.row for c in convs] == [1, 6]
    assert convs[1].messages[-1]["content"] == "3"    # a number answer is read as text


def test_empty_and_header_only_files_are_refused(tmp_path):
    with pytest.raises(DataError, match="empty"):
        read_records(str(FIX / "empty.jsonl"))
    (tmp_path / "h.csv").write_text("question,answer\n", encoding="utf-8")
    with pytest.raises(DataError, match="no rows"):
        read_records(str(tmp_path / "h.csv"))
    (tmp_path / "blank.jsonl").write_text("\n  \n", encoding="utf-8")
    with pytest.raises(DataError, match="empty"):
        read_records(str(tmp_path / "blank.jsonl"))


def test_size_limit_and_missing_file():
    with pytest.raises(DataError, match="limit"):
        read_records(str(FIX / "alpaca.json"), max_bytes=100)
    with pytest.raises(DataError, match="not found"):
        read_records(str(FIX / "nope.jsonl"))


def test_invalid_json_array_gives_line_and_column(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('[{"instruction": "a", "output": "b"},\n {"instruction": "c" "output": "d"}]', encoding="utf-8")
    with pytest.raises(DataError, match="line 2"):
        read_records(str(p))


def test_hub_id_offline_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(DataError, match="offline") as e:
        read_records("someone/some-dataset-that-is-not-cached")
    assert time.monotonic() - start < 20
    assert "upload" in e.value.hint           # what to do instead: the error's hint


def test_hub_id_without_network_fails_fast(monkeypatch):
    import studio.data.read as read
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(read, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(DataError, match="offline"):
        read_records("someone/dataset")


def test_demo_is_the_bundled_file():
    records, problems, kind = read_records("demo")
    assert kind == "jsonl" and len(records) >= 10 and not problems
    convs, more = normalise(records, "auto")
    assert not more and all(c.messages[-1]["role"] == "assistant" for c in convs)


@pytest.mark.parametrize("columns, expected", [
    (["question", "answer"], {"prompt": "question", "answer": "answer", "system": ""}),
    (["Query", "Response", "Context"], {"prompt": "Query", "answer": "Response", "system": "Context"}),
    (["id", "user_question", "bot_reply", "system_prompt"],
     {"prompt": "user_question", "answer": "bot_reply", "system": "system_prompt"}),
    (["input", "output"], {"prompt": "input", "answer": "output", "system": ""}),
    (["id", "score"], {"prompt": "", "answer": "", "system": ""}),
])
def test_suggest_mapping(columns, expected):
    assert suggest_mapping(columns) == expected


def test_mapping_normalises_and_checks_columns():
    records, _, _ = read_records(str(FIX / "qa.csv"))
    mapping = suggest_mapping(list(records[0].keys() - {"__row__"}))
    convs, problems = normalise(records, "mapping", mapping)
    assert not problems
    assert convs[0].messages == [{"role": "user", "content": "What is the warranty?"},
                                 {"role": "assistant", "content": "Two years, and returns within 30 days."}]
    with pytest.raises(DataError, match="'Reply'"):
        normalise(records, "mapping", {"prompt": "Question", "answer": "Reply"})
    with pytest.raises(DataError, match="mapping"):
        normalise(records, "auto")      # unknown shape: the message points to the mapping


def test_chatterbot_corpus_converts_to_messages(tmp_path, monkeypatch):
    from studio.data import chatterbot
    monkeypatch.setenv("STUDIO_CACHE", str(tmp_path / "cache"))
    path = chatterbot.corpus_file()
    assert path.parent == tmp_path / "cache"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) > 100
    records, problems, _ = read_records("chatterbot")
    convs, more = normalise(records, "auto")
    assert not problems and not more and len(convs) == len(lines)
    for c in convs:
        roles = [m["role"] for m in c.messages]
        assert roles[0] == "user" and roles[-1] == "assistant"
        assert all(a != b for a, b in zip(roles, roles[1:]))
        assert all(isinstance(m["content"], str) and m["content"] for m in c.messages)
    mtime = path.stat().st_mtime_ns
    chatterbot.corpus_file()
    assert path.stat().st_mtime_ns == mtime      # written once, then reused


def test_semicolon_csv_and_spreadsheet_files(tmp_path):
    (tmp_path / "semi.csv").write_text("question;answer\nWhat is the warranty?;Two years, and 30 days.\n", encoding="utf-8")
    records, _, _ = read_records(str(tmp_path / "semi.csv"))
    assert records[0]["answer"] == "Two years, and 30 days."
    (tmp_path / "book.xlsx").write_bytes(b"PK\x03\x04" + bytes(200))
    with pytest.raises(DataError, match="spreadsheet") as e:
        read_records(str(tmp_path / "book.xlsx"))
    assert "CSV UTF-8" in e.value.hint


def test_csv_row_numbers_and_extra_cells(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("prompt,completion\nA?,Yes.\nB?,\n\nC?,No,extra\nD?,Fine.\n", encoding="utf-8")
    records, problems, _ = read_records(str(p))
    assert [r["__row__"] for r in records] == [1, 2, 5] and [x.row for x in problems] == [4]
    convs, more = normalise(records, "auto")
    assert [c.row for c in convs] == [1, 5] and [x.row for x in more] == [2]
