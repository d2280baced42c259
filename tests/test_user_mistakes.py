"""A user's mistake is said as such, naming the file or the value, never as "internal error ... a bug in
the studio" (each case below was answered that way, or with the wrong cause, before)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from test_export import train_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_dir):
    return train_run(tmp_path_factory.mktemp("mistakes"), tiny_dir, steps=2)


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "internal error" not in err and "a bug in the studio" not in err and "Traceback" not in err, err
    return err


# ---- studio eval ----------------------------------------------------------------------------------

def test_eval_csv_into_a_missing_or_unwritable_folder_is_refused_before_answering(run_dir, tmp_path, capsys):
    from studio.cli import main
    missing = tmp_path / "no-such-folder" / "t.csv"
    assert main(["eval", "--runs", str(run_dir), "--csv", str(missing)]) == 2
    err = _err(capsys)
    assert f"the folder {missing.parent} does not exist" in err
    assert not (run_dir / "eval.jsonl.partial").exists()
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        assert main(["eval", "--runs", str(run_dir), "--csv", str(locked / "t.csv")]) == 2
        assert "no permission to write" in _err(capsys)
    finally:
        locked.chmod(0o700)


def test_eval_csv_that_cannot_be_written_names_it(tmp_path):
    from studio.errors import EvalError
    from studio.evaluation import write_csv
    with pytest.raises(EvalError, match="cannot be written"):
        write_csv([{"prompt": "p", "reference": "", "base": "a", "scores": {"base": None}}], tmp_path / "gone" / "t.csv")


def test_a_json_array_of_prompts_is_read_and_a_non_object_row_named(tmp_path):
    from studio.errors import EvalError
    from studio.evaluation import load_prompts
    arr = tmp_path / "p.json"
    arr.write_text(json.dumps([{"prompt": "Hi?", "reference": "Hello."}, {"question": "Two?"}]), encoding="utf-8")
    assert load_prompts(arr) == [{"prompt": "Hi?", "reference": "Hello."}, {"prompt": "Two?", "reference": ""}]
    arr.write_text(json.dumps([{"prompt": "Hi?"}, "just text"]), encoding="utf-8")
    with pytest.raises(EvalError, match="Row 2 of .* is not an object") as e:
        load_prompts(arr)
    assert e.value.code == "eval.not_object"


def test_eval_of_a_folder_that_is_not_a_run_or_a_failed_run(tmp_path, capsys):
    from studio.cli import main
    plain = tmp_path / "plain"
    plain.mkdir()
    assert main(["eval", "--runs", str(plain)]) == 2
    assert "is not a run folder" in _err(capsys)
    failed = tmp_path / "failed"
    failed.mkdir()
    (failed / "config.yaml").write_text("training: {max_steps: 2}\n", encoding="utf-8")
    (failed / "state.json").write_text(json.dumps({"state": "failed"}), encoding="utf-8")
    assert main(["eval", "--runs", str(failed)]) == 2
    err = _err(capsys)
    assert "failed before it saved an adapter" in err and "wait" not in err.lower()


# ---- studio chat ----------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, words", [(["--max-new-tokens", "0"], "generation.max_new_tokens"),
                                          (["--temperature", "-1"], "generation.temperature"),
                                          (["--temperature", "nan"], "generation.temperature must be a finite")])
def test_chat_options_out_of_range_are_named(run_dir, capsys, flags, words):
    from studio.cli import main
    assert main(["chat", "--run", str(run_dir), "--prompt", "Hi?", *flags]) == 2
    assert words in _err(capsys)


def test_a_prompt_past_the_models_context_is_refused_at_once(run_dir):
    from studio.device import DeviceLock
    from studio.errors import ChatError
    from studio.inference import ChatSession
    chat = ChatSession.from_run(run_dir, device_lock=DeviceLock())
    limit = chat.context_length()
    assert limit == 512
    with pytest.raises(ChatError, match=r"tokens long .* at most 512") as e:
        chat.reply(None, "warranty " * 2000)
    assert e.value.code == "chat.prompt_too_long"
    assert chat.reply(None, "What is the warranty?") is not None       # the lock was released


# ---- studio export --output -----------------------------------------------------------------------

def test_export_output_mistakes_are_named(run_dir, tmp_path, capsys):
    from studio.cli import main
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["export", str(run_dir), "--to", "adapter", "--output", str(empty)]) == 2
    err = _err(capsys)
    assert "is an existing folder" in err and str(empty / f"{run_dir.name}-adapter.zip") in err
    assert "earlier" not in err
    assert main(["export", str(run_dir), "--to", "merged", "--output", str(empty)]) == 2
    assert "is an existing folder" in _err(capsys)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine", encoding="utf-8")
    assert main(["export", str(run_dir), "--to", "merged", "--output", str(a_file)]) == 2
    assert "is an existing file" in _err(capsys) and a_file.read_text(encoding="utf-8") == "mine"
    assert main(["export", str(run_dir), "--to", "adapter", "--output", str(a_file / "x.zip")]) == 2
    assert f"{a_file} is a file" in _err(capsys)
    assert main(["export", str(run_dir), "--to", "adapter", "--output", "/proc/studio-export-test.zip"]) == 2
    assert "/proc/studio-export-test.zip cannot be written" in _err(capsys)   # /proc refuses files, even to root
    assert not list(tmp_path.glob("**/*.partial"))


def test_export_of_a_failed_or_damaged_run_says_so(run_dir, tmp_path, capsys):
    import shutil

    from studio.cli import main
    failed = tmp_path / "failed"
    failed.mkdir()
    shutil.copy(run_dir / "config.yaml", failed / "config.yaml")
    (failed / "state.json").write_text(json.dumps({"state": "failed"}), encoding="utf-8")
    assert main(["export", str(failed), "--to", "adapter"]) == 2
    err = _err(capsys)
    assert "failed before it saved an adapter" in err and "wait" not in err.lower()

    cut = tmp_path / "cut"
    shutil.copytree(run_dir, cut)
    weights = cut / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    for kind in ("adapter", "merged"):
        assert main(["export", str(cut), "--to", kind, "--output", str(tmp_path / f"out-{kind}")]) == 2
        err = _err(capsys)
        assert "damaged or incomplete" in err and "adapter_model.safetensors" in err
        assert not (tmp_path / f"out-{kind}").exists()
    assert main(["chat", "--run", str(cut), "--prompt", "Hi?"]) == 1
    assert "damaged or incomplete" in _err(capsys)
    weights.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}xx")      # a damaged header
    assert main(["chat", "--run", str(cut), "--prompt", "Hi?"]) == 1
    assert "damaged or incomplete" in _err(capsys)
    failed_chat = main(["chat", "--run", str(failed), "--prompt", "Hi?"])
    assert failed_chat == 1 and "failed before it saved an adapter" in _err(capsys)


# ---- the Settings tab's YAML, launch.py -------------------------------------------------------------

def test_a_deeply_nested_yaml_is_a_config_error_not_a_bug():
    from studio.config import StudioConfig
    from studio.errors import ConfigError
    for text in ("[" * 5000 + "]" * 5000, "lora:\n" + "".join("  " * i + "x:\n" for i in range(1, 3000))):
        with pytest.raises(ConfigError) as e:
            StudioConfig.from_yaml(text)
        assert e.value.code == "config.yaml_too_deep"


def test_launch_refuses_a_port_out_of_range_and_a_workspace_that_is_a_file(tmp_path, monkeypatch, capsys):
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import launch
    for port in ("70000", "0", "http"):
        with pytest.raises(SystemExit) as e:
            launch.build_parser().parse_args(["--port", port])
        assert e.value.code == 2
        assert "port number" in capsys.readouterr().err
    a_file = tmp_path / "ws.txt"
    a_file.write_text("x", encoding="utf-8")
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "before"))
    with pytest.raises(SystemExit, match="is a file, not a folder"):
        launch.set_workspace(str(a_file))
    monkeypatch.setenv("STUDIO_HOME", str(a_file))
    with pytest.raises(SystemExit, match="is a file, not a folder"):
        launch.set_workspace(None)


def test_the_studio_command_with_studio_home_naming_a_file(tmp_path, monkeypatch, capsys):
    from studio.cli import main
    a_file = tmp_path / "ws.txt"
    a_file.write_text("x", encoding="utf-8")
    monkeypatch.setenv("STUDIO_HOME", str(a_file))
    assert main(["train", "--preset", "cpu-demo", "--max-steps", "1"]) in (1, 2)
    assert "is a file, not a folder" in _err(capsys)


def test_eval_checks_every_prompts_length_before_the_first_answer(run_dir, tmp_path, capsys):
    from studio.cli import main
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "Hi?"}) + "\n" + json.dumps({"prompt": "warranty " * 20000}) + "\n")
    assert main(["eval", "--runs", str(run_dir), "--prompts", str(prompts)]) == 2
    captured = capsys.readouterr()
    assert "Prompt 2 is" in captured.err and "at most 512" in captured.err and "[1/2]" not in captured.out
    assert not (run_dir / "eval.jsonl.partial").exists()
