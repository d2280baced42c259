"""The metrics log (cursor, file mirror, a follower of a file being written) and the batch collator."""

from __future__ import annotations

import json
import threading

import torch

from trl.trainer.sft_trainer import DataCollatorForLanguageModeling
from studio.runs.metrics import MetricsFollower, MetricsLog


def test_cursor_returns_every_row_exactly_once_while_a_writer_appends(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    n = 500

    def writer():
        for i in range(n):
            log.append({"type": "train", "step": i, "loss": 1.0 / (i + 1)})

    t = threading.Thread(target=writer)
    t.start()
    seen, cursor = [], 0
    while t.is_alive() or cursor < n:
        rows, cursor = log.since(cursor)
        seen += [r["step"] for r in rows]
    t.join()
    assert seen == list(range(n))
    assert log.since(cursor) == ([], cursor)
    # A second reader with its own cursor gets them all too; a stale cursor beyond the end is clamped.
    assert [r["step"] for r in log.since(0)[0]] == list(range(n))
    assert log.since(10**6) == ([], n)


def test_the_file_holds_the_same_rows_and_nan_becomes_null(tmp_path):
    log = MetricsLog(tmp_path / "m.jsonl")
    log.append({"type": "train", "step": 1, "loss": 2.5})
    log.append({"type": "train", "step": 2, "loss": float("nan")})
    log.append({"type": "eval", "step": 2, "eval_loss": 2.0})
    assert MetricsLog.read(tmp_path / "m.jsonl") == log.rows()
    assert log.rows()[1]["loss"] is None
    assert json.loads((tmp_path / "m.jsonl").read_text().splitlines()[1])["loss"] is None
    assert log.last("eval")["eval_loss"] == 2.0 and [r["step"] for r in log.rows("train")] == [1, 2]


def test_follower_reads_a_file_another_process_is_writing_and_waits_for_whole_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    follower = MetricsFollower(path)
    assert follower.since(0) == ([], 0)          # not there yet
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"step": 1}) + "\n" + '{"step": 2, "lo')
        f.flush()
        rows, cursor = follower.since(0)
        assert [r["step"] for r in rows] == [1] and cursor == 1
        f.write('ss": 0.5}\n' + json.dumps({"step": 3}) + "\n")
        f.flush()
        rows, cursor = follower.since(cursor)
        assert rows == [{"step": 2, "loss": 0.5}, {"step": 3}] and cursor == 3
    assert follower.since(3) == ([], 3)
    assert [r["step"] for r in MetricsFollower(path).since(1)[0]] == [2, 3]


def test_padded_batches_pad_to_the_longest_row_of_the_batch():
    batch = DataCollatorForLanguageModeling(pad_token_id=0)([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]},
                                             {"input_ids": [8], "labels": [8]}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_padding_free_rows_do_not_see_each_other():
    """A padding-free batch gives each row the same logits as the row alone (block-diagonal attention)."""
    from tiny import tiny_model, tiny_tokenizer

    tok = tiny_tokenizer()
    model = tiny_model(tok).eval()
    model.config.use_cache = False          # as in training: the trainer switches the cache off
    a = tok("Hello, how are you today?")["input_ids"]
    b = tok("The quick brown fox jumps")["input_ids"]
    batch = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id, padding_free=True)(
        [{"input_ids": a, "labels": a}, {"input_ids": b, "labels": b}])
    assert batch["input_ids"].shape == (1, len(a) + len(b)) and "attention_mask" not in batch
    assert batch["labels"][0, len(a)].item() == -100      # no learning across the seam
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
        alone_b = model(torch.tensor([b])).logits[0]
    assert torch.allclose(packed[len(a):], alone_b, atol=1e-5)
