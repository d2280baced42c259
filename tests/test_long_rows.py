"""Long rows through the data path (no training): a row of about 131,072 tokens with data.max_length large enough is
kept with every token and its loss mask, through the pipeline, SFT's dataset and TRL's padding-free collator; a row
over data.max_length is never cut or left out without a message naming the row and its length."""

from __future__ import annotations

import json

import pytest

from tiny import tiny_tokenizer

IGNORE = -100
TARGET = 131_072


def _long_file(tmp_path, tok):
    """faq.jsonl: row 1 short; row 2 one question and an answer of about TARGET tokens (some over it)."""
    unit = "The Aurora kettle costs 79 dollars and ships to Canada. "
    from studio.data.render import encode_full
    from studio.data.types import Conversation
    from studio.data.render import resolve_template
    _, jinja = resolve_template(tok, "auto")

    def row(k):
        return [{"role": "user", "content": "Tell me everything about the kettle."},
                {"role": "assistant", "content": unit * k}]

    n = lambda k: len(encode_full(tok, Conversation(row=0, messages=row(k)), jinja)[0])  # noqa: E731
    per_unit = (n(400) - n(200)) // 200                 # the unit tokenises the same each time it repeats
    messages = row(-(-(TARGET - (n(200) - 200 * per_unit)) // per_unit))
    ids, labels, _, _ = encode_full(tok, Conversation(row=0, messages=messages), jinja)
    path = tmp_path / "faq.jsonl"
    path.write_text("\n".join(json.dumps({"messages": m}) for m in (row(1), messages)) + "\n", encoding="utf-8")
    return path, ids, labels


def _prepare(path, tok, **data):
    from studio.config import DataConfig
    from studio.data.pipeline import prepare
    return prepare(DataConfig(file=str(path), validation=0, **data), tok, seed=0)


@pytest.fixture(scope="module")
def long_row(tmp_path_factory):
    tok = tiny_tokenizer()
    path, ids, labels = _long_file(tmp_path_factory.mktemp("long"), tok)
    assert TARGET <= len(ids) < TARGET + 20
    return tok, path, ids, labels


def test_a_long_row_is_kept_whole_with_its_loss_mask(long_row):
    tok, path, ids, labels = long_row
    data = _prepare(path, tok, max_length=len(ids))
    long = max(data.train, key=lambda r: len(r.input_ids))
    assert long.input_ids == ids and long.labels == labels          # every token, every mask value
    assert not long.truncated and data.report.cut == 0 and data.report.cut_rows == []
    trained = sum(x != IGNORE for x in long.labels)
    assert trained > 0.99 * len(ids)                                 # the answer is nearly all of it
    assert long.labels[:5] == [IGNORE] * 5                          # the question is not trained on
    assert not any("longer than data.max_length" in n for n in data.report.notes)
    assert data.report.token_stats["max"] == len(ids)

    # SFT's dataset and TRL's padding-free collator hand the trainer all of it.
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling
    from studio.training.methods import sft
    ds = sft.dataset([long])
    assert len(ds[0]["input_ids"]) == len(ids) and ds[0]["labels"] == labels
    collate = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id, padding_free=True)
    batch, tokens = sft.worst_batch(data.train, 1, collate)
    assert tokens == len(ids) and batch["input_ids"][0].tolist() == ids
    assert batch["labels"][0].tolist() == labels
    assert batch["position_ids"][0].tolist() == list(range(len(ids)))     # one sequence, positions never restart


def test_a_row_over_max_length_is_named_with_its_length(long_row):
    from studio.data.pipeline import training_notes
    tok, path, ids, labels = long_row
    cut = _prepare(path, tok, max_length=TARGET)          # truncate (the default): cut, and said so
    row = next(r for r in cut.train if r.truncated)
    assert len(row.input_ids) == TARGET and row.input_ids == ids[:TARGET] and row.labels == labels[:TARGET]
    assert cut.report.cut_rows == [[row.row, len(ids)]]
    note = next(n for n in training_notes(cut.report) if "longer than data.max_length" in n)
    assert f"row {row.row} ({len(ids):,} tokens)" in note and f"({TARGET:,} tokens)" in note
    assert f"Set data.max_length to {len(ids):,}" in note

    dropped = _prepare(path, tok, max_length=TARGET, overlong="drop")
    assert all(len(r.input_ids) < 100 for r in dropped.train)
    notes = " ".join(training_notes(dropped.report))
    assert f"row {row.row}: the row is {len(ids)} tokens, longer than the maximum of {TARGET}" in notes


def test_the_data_check_names_cut_rows_too(long_row):
    from studio.config import DataConfig
    from studio.data.pipeline import inspect
    tok, path, ids, _ = long_row
    report = inspect(str(path), tokenizer=tok, data_cfg=DataConfig(file=str(path), validation=0, max_length=TARGET))
    assert report.cut == 1 and report.cut_rows[0][1] == len(ids)
    assert any(f"({len(ids):,} tokens)" in n for n in report.notes)
