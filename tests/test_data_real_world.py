"""Data shapes from public fine-tuning projects: content parts, reasoning, tool calls, preference data,
mixed shapes, split objects, duplicated keys; and the check applying exactly training's length rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny import tiny_tokenizer

from studio.config import DataConfig
from studio.data.pipeline import inspect, prepare
from studio.data.read import read_source
from studio.data.render import IGNORE
from studio.errors import DataError

# A chatml template that renders tools the way Qwen2.5's does (definitions in the system turn, calls in
# <tool_call> tags, results as a tool turn); the tiny tokenizer's own CHATML has no tool support.
TOOL_CHATML = (
    "{%- if tools %}{{ '<|im_start|>system\\n' }}{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}"
    "{% endif %}{{ '\\n# Tools\\n' }}{% for t in tools %}{{ t | tojson }}{{ '\\n' }}{% endfor %}{{ '<|im_end|>\\n' }}"
    "{%- elif messages[0]['role'] == 'system' %}{{ '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for m in messages %}{% if m['role'] == 'system' %}{% continue %}{% endif %}"
    "{%- if m['role'] == 'tool' %}{{ '<|im_start|>user\\n<tool_response>\\n' + m['content'] + '\\n</tool_response><|im_end|>\\n' }}"
    "{%- else %}{{ '<|im_start|>' + m['role'] + '\\n' }}{% if m.get('reasoning_content') %}"
    "{{ '<think>\\n' + m['reasoning_content'] + '\\n</think>\\n\\n' }}{% endif %}{{ m['content'] }}"
    "{%- if m.get('tool_calls') %}{% for c in m['tool_calls'] %}{{ '<tool_call>\\n' }}"
    "{{ {'name': c['function']['name'], 'arguments': c['function']['arguments']} | tojson }}{{ '\\n</tool_call>' }}"
    "{% endfor %}{% endif %}{{ '<|im_end|>\\n' }}{% endif %}{% endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def tool_tok():
    t = tiny_tokenizer()
    t.chat_template = TOOL_CHATML
    return t


def jsonl(path: Path, rows: list) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def trained_text(report_or_row, tok) -> str:
    return tok.decode([t for t in report_or_row.labels if t != IGNORE])


# ---- content parts ------------------------------------------------------------------------------
def test_text_parts_under_value_and_reasoning_parts(tmp_path, tok):
    f = jsonl(tmp_path / "parts.jsonl", [
        {"messages": [{"role": "user", "content": [{"type": "text", "value": "What is the warranty?"}]},
                      {"role": "assistant", "content": [{"type": "reasoning", "reasoning": "Check the policy."},
                                                        {"type": "text", "text": "Two years."}]}]},
        {"messages": [{"role": "user", "content": [{"type": "image", "image": "cat.png"},
                                                   {"type": "text", "text": "What is this?"}]},
                      {"role": "assistant", "content": "A cat."}]}])
    r = inspect(f, tokenizer=tok)
    assert r.rows == 1 and [p.row for p in r.problems] == [2]
    assert "picture" in r.problems[0].message and "not supported, only text" in r.problems[0].message
    # The tiny template has no place for thinking: the reasoning is kept in the answer, in <think>, and said so.
    assert any("no place for thinking" in n for n in r.notes)
    data = prepare(DataConfig(file=f, validation=0), tok, seed=0)
    learned = trained_text(data.train[0], tok)
    assert "<think>\nCheck the policy.\n</think>" in learned and "Two years." in learned
    assert "What is the warranty?" in data.train[0].text


def test_reasoning_goes_where_the_template_puts_thinking(tmp_path, tool_tok):
    f = jsonl(tmp_path / "think.jsonl", [{"messages": [
        {"role": "user", "content": "What is the warranty?"},
        {"role": "assistant", "content": "Two years.", "reasoning_content": "Check the policy."}]}])
    data = prepare(DataConfig(file=f, validation=0), tool_tok, seed=0)
    row = data.train[0]
    assert "<think>\nCheck the policy.\n</think>\n\nTwo years." in row.text
    learned = trained_text(row, tool_tok)
    assert "Check the policy." in learned and "Two years." in learned and "warranty" not in learned
    assert any("shows it as the model's thinking" in n for n in data.report.notes)


# ---- tool calls ---------------------------------------------------------------------------------
TOOLS = [{"name": "get_price", "description": "Price of a product",
          "parameters": {"type": "object", "properties": {"product": {"type": "string"}}}}]
SHAREGPT_TOOLS = {"conversations": [
    {"from": "human", "value": "How much is the Aurora?"},
    {"from": "function_call", "value": json.dumps({"name": "get_price", "arguments": {"product": "Aurora"}})},
    {"from": "observation", "value": "{\"price\": 79}"},
    {"from": "gpt", "value": "The Aurora costs 79 dollars."}], "tools": json.dumps(TOOLS)}
OPENAI_TOOLS = {"messages": [
    {"role": "user", "content": "How much is the Aurora?"},
    {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {
        "name": "get_price", "arguments": "{\"product\": \"Aurora\"}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "{\"price\": 79}"},
    {"role": "assistant", "content": "The Aurora costs 79 dollars."}],
    "tools": [{"type": "function", "function": TOOLS[0]}]}
PLAIN = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}


@pytest.mark.parametrize("row", [SHAREGPT_TOOLS, OPENAI_TOOLS], ids=["sharegpt", "openai"])
def test_tool_calls_train_the_calls_and_answers(tmp_path, tool_tok, row):
    f = jsonl(tmp_path / "tools.jsonl", [row, row])
    r = inspect(f, tokenizer=tool_tok)
    assert r.rows == 2 and r.problems == [], r.problems
    data = prepare(DataConfig(file=f, validation=0), tool_tok, seed=0)
    enc = data.train[0]
    assert "get_price" in enc.text.split("<|im_start|>user")[0]           # the definitions reach the template
    learned = trained_text(enc, tool_tok)
    assert '"name": "get_price"' in learned and '"product": "Aurora"' in learned   # the call is learned
    assert "The Aurora costs 79 dollars." in learned                            # and the answer
    assert '{"price": 79}' not in learned and "How much" not in learned         # not the tool's result


def test_tool_rows_without_template_support_are_one_problem(tmp_path, tok):
    f = jsonl(tmp_path / "tools.jsonl", [SHAREGPT_TOOLS, PLAIN, SHAREGPT_TOOLS, PLAIN, SHAREGPT_TOOLS])
    r = inspect(f, tokenizer=tok)
    assert r.rows == 2 and len(r.problems) == 1
    msg = r.problems[0].message
    assert "rows 1, 3, 5" in msg and "no tool support" in msg and "unknown role" not in msg
    data = prepare(DataConfig(file=f, validation=0), tok, seed=0)
    assert sorted(x.row for x in data.train) == [2, 4]


# ---- preference data ----------------------------------------------------------------------------
def test_preference_data_trains_on_the_chosen_answers(tmp_path, tok):
    f = jsonl(tmp_path / "dpo.jsonl", [
        {"prompt": "How much is the Aurora?", "chosen": "79 dollars.", "rejected": "No idea."},
        {"chosen": [{"role": "user", "content": "Warranty?"}, {"role": "assistant", "content": "Two years."}],
         "rejected": [{"role": "user", "content": "Warranty?"}, {"role": "assistant", "content": "None."}]},
        {"chosen": "\n\nHuman: Ships to Canada?\n\nAssistant: Yes, it does.",
         "rejected": "\n\nHuman: Ships to Canada?\n\nAssistant: No."}])
    r = inspect(f, tokenizer=tok)
    assert r.format == "preference" and r.rows == 3 and r.problems == []
    note = " ".join(r.notes)
    assert "preference data" in note and "chosen answers" in note and "not what this run does" in note
    data = prepare(DataConfig(file=f, validation=0), tok, seed=0)
    learned = {trained_text(x, tok) for x in data.train}
    assert any("79 dollars." in t for t in learned) and any("Two years." in t for t in learned)
    assert any("Yes, it does." in t for t in learned)
    assert not any(w in t for t in learned for w in ("No idea.", "None.", "No.<"))


def test_kto_rows_marked_undesirable_are_left_out_with_a_note(tmp_path, tok):
    f = jsonl(tmp_path / "kto.jsonl", [
        {"prompt": "Price?", "completion": "79 dollars.", "label": True},
        {"prompt": "Price?", "completion": "Free!", "label": False}])
    r = inspect(f, tokenizer=tok)
    assert r.format == "preference" and r.rows == 1 and r.problems == []
    assert any("KTO" in n and "1 rows marked undesirable" in n for n in r.notes)


# ---- mixed shapes, split objects, duplicate keys ------------------------------------------------
def test_mixed_shapes_are_named_with_their_rows(tmp_path, tok):
    rows = [{"instruction": f"Q{i}", "output": f"A{i}"} for i in range(3)] + [{"text": "plain"}] + \
           [{"instruction": "Q9", "output": "A9"}, {"text": "more plain"}]
    r = inspect(jsonl(tmp_path / "mixed.jsonl", rows), tokenizer=tok)
    assert r.format == "alpaca" and r.rows == 4
    by_row = {p.row: p.message for p in r.problems}
    assert sorted(by_row) == [4, 6]
    assert "mixes shapes" in by_row[4] and "plain text" in by_row[4] and "text is missing" not in by_row[4]
    note = next(n for n in r.notes if "mixes shapes" in n)
    assert "rows 1-3, 5" in note and "rows 4, 6" in note


def test_json_object_with_splits_uses_train(tmp_path, tok):
    f = tmp_path / "splits.json"
    f.write_text(json.dumps({"train": [{"instruction": "Q", "output": "A"}] * 3,
                             "test": [{"instruction": "T", "output": "B"}]}), encoding="utf-8")
    r = inspect(str(f), tokenizer=tok)
    assert r.format == "alpaca" and r.rows == 3 and r.total == 3
    assert any("'train' list is used" in n and "'test' (1 rows)" in n for n in r.notes)
    f.write_text(json.dumps({"a": [{"x": 1}], "b": [{"x": 2}]}), encoding="utf-8")
    with pytest.raises(DataError, match="none is called 'train'"):
        read_source(str(f))


def test_duplicate_keys_are_warned_with_the_row(tmp_path):
    f = tmp_path / "dup.jsonl"
    f.write_text('{"instruction": "Q", "output": "A"}\n{"instruction": "Q", "output": "first", "output": "second"}\n',
                 encoding="utf-8")
    r = read_source(str(f))
    assert r.records[1]["output"] == "second"
    assert any("line 2: 'output'" in n and "only its last value is used" in n for n in r.notes)
    g = tmp_path / "dup.json"
    g.write_text('[{"instruction": "Q", "output": "A"}, {"instruction": "Q", "input": "x", "input": "y", '
                 '"output": "A"}]', encoding="utf-8")
    assert any("row 2: 'input'" in n for n in read_source(str(g)).notes)


# ---- encodings ----------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_is_recognised(tmp_path, tok, encoding):
    f = tmp_path / "wide.jsonl"
    f.write_bytes('{"instruction": "Quelle crème?", "output": "Oui."}\n'.encode(encoding) * 2)
    r = inspect(str(f), tokenizer=tok)
    assert r.rows == 2 and r.problems == [] and "without a byte-order mark" in " ".join(r.notes)


def test_latin1_csv_is_read_as_western_european_and_can_be_overridden(tmp_path, tok):
    f = tmp_path / "fr.csv"
    f.write_bytes("question,answer\nQuelle crème?,La crème brûlée.\n".encode("latin-1"))
    r = inspect(str(f), fmt="mapping", mapping={"prompt": "question", "answer": "answer"}, tokenizer=tok)
    assert r.encoding == "cp1252" and "crème" in r.encoding_sample and r.rows == 1
    forced = read_source(str(f), encoding="cp1250")           # the user's choice wins, and shows
    assert "crčme" in forced.sample and forced.encoding == "cp1250"
    with pytest.raises(DataError, match="cannot be read as UTF-8"):
        read_source(str(f), encoding="utf-8")


# ---- the check applies training's length rule --------------------------------------------------
def test_check_and_training_agree_on_long_rows(tmp_path, tok):
    long_q = "The quick brown fox jumps over the lazy dog. " * 150
    rows = [{"instruction": long_q, "output": "Answer."}] * 3 + [{"instruction": "Short?", "output": "Yes."}]
    cfg = DataConfig(file=jsonl(tmp_path / "long.jsonl", rows), max_length=256, validation=0)
    r = inspect(cfg.file, tokenizer=tok, data_cfg=cfg)
    data = prepare(cfg, tok, seed=0)
    assert r.rows == len(data.train) == 1
    assert r.left_out_long == 3 and r.cut == 0
    assert [p.message for p in r.problems] == [p.message for p in data.report.problems]
    assert "nothing of the answer is left after cutting" in r.problems[0].message
    assert "1 usable row of 4" in r.message and "3 longer than 256 tokens will be left out" in r.message


def test_max_length_past_the_model_context_is_warned(tmp_path, tok):
    cfg = DataConfig(file=jsonl(tmp_path / "d.jsonl", [{"instruction": "Q", "output": "A"}]), max_length=100_000)
    r = inspect(cfg.file, tokenizer=tok, data_cfg=cfg, context_length=8192)
    assert any("longer than this model reads (8,192 tokens)" in n for n in r.notes)
    assert not any("longer than this model" in n for n in inspect(cfg.file, tokenizer=tok, data_cfg=cfg,
                                                                    context_length=200_000).notes)
