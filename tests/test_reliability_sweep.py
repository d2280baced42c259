"""Many bad inputs and injected faults against the engine and the app's services, with one workspace that
holds a finished run: every case must end in a message for people (the engine's own error types, never a
traceback or a bare library error), and afterwards every file of the earlier run must be byte-for-byte
what it was ("nothing lost"), and the studio must still train and answer.

The counts are printed (pytest -s) and quoted in docs/reliability.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_training_job import make_cfg, write_data

REPO = Path(__file__).resolve().parents[1]


def _jsonl(*rows) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode("utf-8")


MSG = lambda u, a: {"messages": [{"role": "user", "content": u}, {"role": "assistant", "content": a}]}  # noqa: E731
# name -> file bytes. Each is read, checked and (when anything is usable) prepared for training.
BAD_DATA = {
    "empty.jsonl": b"",
    "blank.jsonl": b"   \n\n  ",
    "binary.jsonl": b"\x00\x01\x02PK\x03\x04" * 50,
    "sheet.xlsx": b"PK\x03\x04 not really a spreadsheet",
    "scalar.json": b"42",
    "empty-list.json": b"[]",
    "broken.json": b'[{"instruction": "Q", "output": ',
    "splits-no-train.json": b'{"a": [{"x": 1}], "b": [{"x": 2}]}',
    "strings.json": b'["one", "two"]',
    "header-only.csv": b"question,answer\n",
    "no-header.csv": b",\nQ,A\n",
    "ragged.csv": b"question,answer\nQ,A,extra,more\n",
    "unknown-columns.csv": b"foo,bar\n1,2\n",
    "latin1.csv": "question,answer\nCrème?,Brûlée.\n".encode("latin-1"),
    "utf16.jsonl": _jsonl({"instruction": "Q", "output": "A"}).decode().encode("utf-16-le"),
    "bad-lines.jsonl": _jsonl({"instruction": "Q", "output": "A"}, "{not json", "[1, 2]", "null"),
    "empty-answers.jsonl": _jsonl({"instruction": "Q", "output": ""}, {"instruction": "", "output": "A"}),
    "wrong-types.jsonl": _jsonl({"instruction": ["Q"], "output": {"a": 1}}, {"instruction": True, "output": None}),
    "unknown-role.jsonl": _jsonl({"messages": [{"role": "robot", "content": "x"}]}),
    "system-in-middle.jsonl": _jsonl({"messages": [{"role": "user", "content": "Q"},
                                                   {"role": "system", "content": "S"},
                                                   {"role": "assistant", "content": "A"}]}),
    "ends-with-user.jsonl": _jsonl({"messages": [{"role": "user", "content": "Q"}]}),
    "starts-with-assistant.jsonl": _jsonl({"messages": [{"role": "assistant", "content": "A"}]}),
    "same-role-twice.jsonl": _jsonl({"messages": [{"role": "user", "content": "Q"}, {"role": "user", "content": "Q"},
                                                  {"role": "assistant", "content": "A"}]}),
    "image-part.jsonl": _jsonl({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]},
                                             {"role": "assistant", "content": "A"}]}),
    "value-parts.jsonl": _jsonl({"messages": [{"role": "user", "content": [{"type": "text", "value": "Q"}]},
                                              {"role": "assistant", "content": "A"}]}),
    "tool-rows.jsonl": _jsonl({"conversations": [{"from": "human", "value": "Q"},
                                                 {"from": "function_call", "value": '{"name": "f", "arguments": {}}'},
                                                 {"from": "observation", "value": "r"},
                                                 {"from": "gpt", "value": "A"}]}),
    "bad-tool-call.jsonl": _jsonl({"conversations": [{"from": "human", "value": "Q"},
                                                     {"from": "function_call", "value": "not json"},
                                                     {"from": "gpt", "value": "A"}]}),
    "preference.jsonl": _jsonl({"prompt": "Q", "chosen": "A", "rejected": "B"}),
    "preference-no-prompt.jsonl": _jsonl({"chosen": "just text", "rejected": "other"}),
    "mixed-shapes.jsonl": _jsonl({"instruction": "Q", "output": "A"}, {"text": "T"}, {"instruction": "Q", "output": "A"}),
    "duplicate-keys.jsonl": b'{"instruction": "Q", "output": "A", "output": "B"}\n',
    "too-long.jsonl": _jsonl({"instruction": "word " * 3000, "output": "A"}),
    "text-rows.jsonl": _jsonl({"text": "plain text to learn"}),
    "deep-nesting.json": b"[" * 50 + b"]" * 50,
    "huge-number.jsonl": b'{"instruction": 1e999, "output": 12345678901234567890}\n',
    # issue 18: silently wrong, or blamed on the wrong thing, before (tests/test_data_silent_cases.py)
    **{f"fixture-{n}": (Path(__file__).parent / "fixtures" / "data" / n).read_bytes()
       for n in ("unbalanced-quote.csv", "repeated-column.csv", "huge-number.json", "bom-cp1252.csv",
                 "trailing-comma.json", "line-separators.jsonl", "empty-answers.jsonl", "tool-call-parts.jsonl")},
}
BAD_CONFIGS = {
    "latin1.yaml": "name: crème\n".encode("latin-1"),
    "not-yaml.yaml": b"model: [unclosed",
    "a-list.yaml": b"- 1\n- 2\n",
    "unknown-section.yaml": b"trainer: {x: 1}\n",
    "unknown-key.yaml": b"lora: {rank: 8}\n",
    "wrong-type.yaml": b"training: {max_steps: many}\n",
    "bool-as-int.yaml": b"training: {batch_size: true}\n",
    "nan.yaml": b"training: {learning_rate: .nan}\n",
    "too-many-steps.yaml": b"training: {max_steps: 100000000000000000000}\n",
    "too-long.yaml": b"data: {max_length: 10000000}\n",
    "negative-seed.yaml": b"training: {seed: -5}\n",
    "bad-choice.yaml": b"model: {quantization: 3bit}\n",
    "bad-encoding.yaml": b"data: {encoding: klingon}\n",
    "dropout-1.yaml": b"lora: {dropout: 1.5}\n",
    "no-modules.yaml": b"lora: {target_modules: []}\n",
    # issue 18: a RecursionError, or silently taken as something else, before
    **{f"fixture-{p.name}": p.read_bytes() for p in sorted((Path(__file__).parent / "fixtures" / "configs").glob("*.yaml"))},
}
APP_OUTPUT_DIRS = ["/etc", "/tmp/x", "../..", "a/b", "~/runs", "..", "C:\\runs"]


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_bad_inputs_and_faults_end_in_messages_and_lose_nothing(tmp_path, studio_home, tiny_dir, capsys):
    from studio.config import DataConfig, StudioConfig
    from studio.data.pipeline import inspect, prepare
    from studio.device import DeviceLock
    from studio.inference import ChatSession
    from studio.jobs import JobManager, workspace_output_dir
    from studio.errors import ChatError, ConfigError, DataError, DeviceBusy, JobBusy
    from tiny import tiny_tokenizer

    user_errors = (DataError, ConfigError, ChatError, JobBusy, DeviceBusy)
    manager = JobManager()
    cfg = make_cfg(write_data(tmp_path), max_steps=3)
    cfg.model.source = str(tiny_dir)
    first = manager.start(cfg)
    assert first.join(120) and first.state == "done"
    before = _hashes(first.run_dir)
    counts = {"bad data files": 0, "bad config files": 0, "app output folders": 0, "chat on bad runs": 0,
              "faults injected": 0}
    tok = tiny_tokenizer()

    data_dir = tmp_path / "bad-data"
    data_dir.mkdir()
    for name, raw in BAD_DATA.items():
        f = data_dir / name
        f.write_bytes(raw)
        counts["bad data files"] += 1
        try:
            report = inspect(str(f), tokenizer=tok)
        except DataError as e:
            assert str(e).strip(), name
            continue
        assert report.message.strip(), name
        if report.rows:
            try:
                prepare(DataConfig(file=str(f), validation=0, max_length=64), tok, seed=0)
            except DataError as e:
                assert str(e).strip(), name

    for name, raw in BAD_CONFIGS.items():
        f = tmp_path / name
        f.write_bytes(raw)
        counts["bad config files"] += 1
        with pytest.raises(ConfigError) as e:
            StudioConfig.load(f).validate()
        assert str(e.value).strip() and "Traceback" not in str(e.value), name

    for value in APP_OUTPUT_DIRS:
        counts["app output folders"] += 1
        with pytest.raises(ConfigError, match="is a path"):
            workspace_output_dir(value)

    not_a_run = tmp_path / "not-a-run"
    not_a_run.mkdir()
    broken_run = tmp_path / "broken-run"
    broken_run.mkdir()
    (broken_run / "config.yaml").write_text("model: [", encoding="utf-8")
    (broken_run / "adapter").mkdir()
    (broken_run / "adapter" / "adapter_config.json").write_text("{}", encoding="utf-8")
    for folder in (tmp_path / "missing", not_a_run, broken_run):
        counts["chat on bad runs"] += 1
        with pytest.raises(ChatError):
            ChatSession.from_run(folder, device_lock=DeviceLock())

    # Faults: a damaged model file, a run folder whose state.json is garbage, a run cut off by a killed
    # process, the device held by another process, a second start while one runs.
    damaged = tmp_path / "damaged-model"
    damaged.mkdir()
    for p in tiny_dir.iterdir():
        (damaged / p.name).write_bytes(p.read_bytes())
    (damaged / "model.safetensors").write_bytes((tiny_dir / "model.safetensors").read_bytes()[:1000])
    bad_cfg = make_cfg(write_data(tmp_path), max_steps=2)
    bad_cfg.model.source = str(damaged)
    job = manager.start(bad_cfg)
    assert job.join(120) and job.state == "failed" and "damaged or incomplete" in job.message
    counts["faults injected"] += 1

    garbage = studio_home / "runs" / "20000101-000000-garbage"
    garbage.mkdir(parents=True)
    (garbage / "state.json").write_text("{not json", encoding="utf-8")
    cut_off = studio_home / "runs" / "20000101-000001-cut-off"
    cut_off.mkdir()
    (cut_off / "state.json").write_text(json.dumps({"state": "training", "pid": 2**22 + 7}), encoding="utf-8")
    listed = {r["run_dir"]: r["state"] for r in manager.runs()}
    assert listed[str(cut_off)] == "interrupted" and str(garbage) not in listed
    counts["faults injected"] += 2

    holder = subprocess.Popen([sys.executable, "-c", "import time; from studio.device import DeviceLock; "
                               "DeviceLock().acquire('training', run='other'); print('held', flush=True); "
                               "time.sleep(600)"], cwd=REPO, env={**os.environ, "STUDIO_HOME": str(studio_home)},
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(user_errors):
            manager.start(cfg)
    finally:
        holder.kill()
        holder.wait()
    counts["faults injected"] += 1

    from transformers import TrainerCallback

    class Slow(TrainerCallback):
        def on_step_end(self, *a, **k):
            import time
            time.sleep(0.2)

    running = manager.start(cfg, callbacks=[Slow()])
    with pytest.raises(JobBusy):
        manager.start(cfg)
    manager.stop()
    assert running.join(120) and running.state in ("stopped", "done")
    counts["faults injected"] += 1

    # Nothing lost: the earlier run is byte-for-byte what it was, and the studio still trains and answers.
    assert _hashes(first.run_dir) == before
    again = manager.start(cfg)
    assert again.join(120) and again.state == "done"
    chat = ChatSession.from_run(again.run_dir, device_lock=DeviceLock())
    assert chat.reply([], "What is the warranty?") is not None
    with capsys.disabled():
        print("\nreliability sweep:", json.dumps(counts), "total", sum(counts.values()))
