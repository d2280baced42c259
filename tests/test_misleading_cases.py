"""Messages that pointed at the wrong cause (issue 18), through the real ``studio`` entry point on the tiny
model: a run's own truncated adapter is named (it was blamed on the base model or on a mismatch)."""

from __future__ import annotations

import pytest

from studio.cli import main
from test_cli_train_chat import write_config
from test_training_job import write_data


@pytest.fixture()
def damaged_run(tmp_path, tiny_dir, studio_home, capsys):
    config = write_config(tmp_path, tiny_dir, write_data(tmp_path, n=8))
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--max-steps", "2", "--output", str(run)]) == 0
    weights = run / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:300])
    capsys.readouterr()
    return run


@pytest.mark.parametrize("command", [["chat", "--run", "{run}", "--prompt", "hi"],
                                     ["train", "--extend", "{run}", "--max-steps", "1"],
                                     ["export", "{run}", "--to", "merged", "--output", "{run}-merged"]],
                         ids=["chat", "extend", "export"])
def test_a_truncated_adapter_is_named_not_the_base_model(damaged_run, command, capsys):
    code = main([part.format(run=damaged_run) for part in command])
    err = capsys.readouterr().err
    assert code != 0
    assert f"The adapter of the run {damaged_run.name} is damaged or incomplete" in err
    assert str(damaged_run / "adapter" / "adapter_model.safetensors") in err and "base model is not affected" in err
    assert "does not fit" not in err and "built-in" not in err and "Traceback" not in err


def test_target_modules_in_brackets_on_the_command_line(tmp_path, tiny_dir, studio_home, capsys):
    config = write_config(tmp_path, tiny_dir, write_data(tmp_path, n=8))
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--max-steps", "1", "--output", str(run),
                 "lora.target_modules=[q_proj, 'v_proj']"]) == 0
    from studio.config import StudioConfig
    assert StudioConfig.load(run / "config.yaml").lora.target_modules == ["q_proj", "v_proj"]
    assert "not in this model" not in capsys.readouterr().err
