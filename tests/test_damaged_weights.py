"""A damaged or truncated model.safetensors is named as such, with the file, wherever a model is loaded:
a training run, the Model tab's check, chat. The studio keeps working afterwards."""

import shutil

import pytest

from studio.models.weights_check import check_file, damaged_files
from test_training_job import make_cfg, write_data


@pytest.fixture()
def damaged_model(tmp_path, tiny_dir):
    folder = tmp_path / "model"
    shutil.copytree(tiny_dir, folder)
    weights = folder / "model.safetensors"
    raw = weights.read_bytes()
    weights.write_bytes(raw[: len(raw) // 2])          # an interrupted copy
    return folder


def test_the_check_names_what_is_wrong(tmp_path, tiny_dir, damaged_model):
    assert damaged_files(tiny_dir) == []
    (path, why), = damaged_files(damaged_model)
    assert path.name == "model.safetensors" and "ends after" in why and "should be" in why
    tiny = tmp_path / "x.safetensors"
    tiny.write_bytes(b"\x01\x02")
    assert "only 2 bytes" in check_file(tiny)


def test_training_on_a_damaged_model_says_which_file(tmp_path, studio_home, damaged_model, tiny_dir):
    from studio.jobs import JobManager

    cfg = make_cfg(write_data(tmp_path), max_steps=2)
    cfg.model.source = str(damaged_model)
    manager = JobManager()
    job = manager.start(cfg)
    assert job.join(120) and job.state == "failed"
    assert "damaged or incomplete" in job.message and str(damaged_model / "model.safetensors") in job.message
    assert "looks like a bug" not in job.hint
    cfg.model.source = str(tiny_dir)                    # the studio still trains afterwards
    again = manager.start(cfg)
    assert again.join(120) and again.state == "done"


def test_the_model_tab_check_says_which_file(damaged_model):
    from studio.config import ModelConfig
    from studio.errors import ModelError
    from studio.ui.services import Services

    with pytest.raises(ModelError, match="damaged or incomplete: .*model.safetensors"):
        Services().inspect_model(ModelConfig(source=str(damaged_model)))
