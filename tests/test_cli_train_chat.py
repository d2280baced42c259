"""``studio train`` and ``studio chat`` end to end on a tiny model folder and a small data file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from studio.cli import main
from test_training_job import PAIRS, write_data


def write_config(folder: Path, tiny_dir: Path, data: Path) -> Path:
    cfg = {"model": {"source": str(tiny_dir)},
           "data": {"file": str(data), "validation": 2, "max_length": 128},
           "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
           "training": {"max_steps": 30, "batch_size": 4, "learning_rate": 0.01, "scheduler": "constant",
                        "warmup_ratio": 0.0, "logging_steps": 1, "seed": 0},
           "generation": {"max_new_tokens": 16, "repetition_penalty": 1.0}}
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def test_train_then_chat_compare(tmp_path, tiny_dir, studio_home, capsys):
    config = write_config(tmp_path, tiny_dir, write_data(tmp_path, n=10, pairs=PAIRS[:2]))
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--max-steps", "12", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "step 12/12" in printed
    for words in ("Done:", "train loss", "eval loss", "tokens/s", f"adapter        {out / 'adapter'}"):
        assert words in printed
    assert json.loads((out / "state.json").read_text())["state"] == "done"

    code = main(["chat", "--run", str(out), "--prompt", "What is the warranty?", "--compare"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    base = [line for line in lines if line.startswith("base: ")]
    tuned = [line for line in lines if line.startswith("tuned: ")]
    assert len(base) == 1 and len(tuned) == 1 and lines.index(base[0]) < lines.index(tuned[0])
    assert base[0][len("base: "):] != tuned[0][len("tuned: "):]

    assert main(["chat", "--run", str(out), "--prompt", "What is the warranty?"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == tuned[0]      # greedy: the same tuned answer again


def test_cli_errors_are_one_plain_line_and_a_hint(tmp_path, studio_home, capsys):
    assert main(["chat", "--run", str(tmp_path / "missing"), "--prompt", "hi"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2].startswith("error: There is no run folder") and "Traceback" not in "\n".join(err)
    assert err[-1].startswith("hint: ") and len(err[-1]) > len("hint: ")

    assert main(["train", "--preset", "no-such-preset"]) == 2
    assert "no preset called 'no-such-preset'" in capsys.readouterr().err

    assert main(["train", "--gpus", "2", "--output", str(tmp_path / "two")]) == 2
    assert "asks for 2 GPUs" in capsys.readouterr().err and not (tmp_path / "two").exists()

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    assert main(["train", "--output", str(tmp_path / "full")]) == 2
    assert "not empty" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["--isolate"]], ids=["thread", "own-process"])
def test_ctrl_c_stops_saves_and_exits_130(tmp_path, tiny_dir, studio_home, extra):
    """In its own process (--isolate) the run must hear the stop too: the CLI starts jobs with the stop
    signals blocked, and a blocked mask would be inherited by the training process."""
    config = write_config(tmp_path, tiny_dir, write_data(tmp_path, n=10))
    out = tmp_path / "run"
    env = {**os.environ, "STUDIO_HOME": str(studio_home), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "studio.cli", "train", "--config", str(config),
                             "--max-steps", "100000", "--output", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen = []
    try:
        deadline = time.time() + 300
        for line in proc.stdout:              # one line per logged step when not on a terminal
            seen.append(line)
            if line.startswith("step ") and not line.startswith("step 0/") or time.time() > deadline:
                break
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    stdout = "".join(seen) + stdout
    why = f"stdout:\n{stdout[-3000:]}\nstderr:\n{stderr[-3000:]}"
    assert proc.returncode == 130, why
    assert "Stopping after the current step" in stderr, why
    assert "Stopped:" in stdout, why
    state = json.loads((out / "state.json").read_text())
    assert state["state"] == "stopped" and 0 < state["step"] < 100000, why
    assert (out / "adapter" / "adapter_model.safetensors").is_file()


def _losses(run: Path) -> dict[int, float]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if r["type"] == "train"}


def test_repeat_resume_and_extend_from_the_command_line(tmp_path, tiny_dir, studio_home, capsys):
    config = write_config(tmp_path, tiny_dir, write_data(tmp_path, n=10, pairs=PAIRS[:2]))
    first = tmp_path / "first"
    assert main(["train", "--config", str(config), "--max-steps", "12", "--output", str(first)]) == 0
    fp = json.loads((first / "fingerprint.json").read_text())
    assert fp["train_rows"] == 8 and fp["validation_rows"] == 2 and fp["seed"] == 0
    assert fp["versions"]["torch"] and fp["device"]["device"] == "cpu" and "im_start" in fp["chat_template"]
    capsys.readouterr()

    # Repeat: the run's own config.yaml gives a new run folder with the same losses.
    assert main(["train", "--config", str(first / "config.yaml")]) == 0
    repeat = Path(next(line for line in capsys.readouterr().out.splitlines()
                       if line.startswith("Run folder: ")).split(": ", 1)[1])
    assert repeat != first and repeat.parent == studio_home / "runs"
    a, b = _losses(first), _losses(repeat)
    assert sorted(a) == sorted(b) == list(range(1, 13))
    assert all(b[s] == pytest.approx(a[s], rel=1e-5) for s in a)
    assert json.loads((repeat / "fingerprint.json").read_text())["data_hash"] == fp["data_hash"]

    # Resume: a crash after step 10's checkpoint (12's never written, state left at "training").
    import shutil
    shutil.rmtree(first / "checkpoints" / "checkpoint-12")
    state = json.loads((first / "state.json").read_text())
    (first / "state.json").write_text(json.dumps({**state, "state": "training", "pid": 0}))
    assert main(["train", "--resume", str(first)]) == 0
    out = capsys.readouterr().out
    assert "Resuming first from step 10." in out and "step 12/12" in out
    assert _losses(first) == pytest.approx(a, rel=1e-5)
    assert json.loads((first / "state.json").read_text())["state"] == "done"

    # A finished run cannot be resumed; it can be extended into a new folder.
    assert main(["train", "--resume", str(first)]) == 2
    assert "already finished" in capsys.readouterr().err
    more = tmp_path / "more"
    assert main(["train", "--extend", str(first), "--max-steps", "3", "--output", str(more)]) == 0
    assert sorted(_losses(more)) == [1, 2, 3]
    assert json.loads((more / "fingerprint.json").read_text())["extended_from"]["name"] == "first"
    assert main(["train", "--extend", str(first)]) == 2
    assert "training.max_steps" in capsys.readouterr().err      # the setting to give (key=value or --max-steps)
