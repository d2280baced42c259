"""training.report_to: the trainer sends its curves to the tracker named, TensorBoard's event files land in the
run folder, a tracker that is not installed is refused with its pip line, and resuming ignores the choice."""

from __future__ import annotations

import importlib.util

import pytest

from test_training_job import make_cfg, write_data


def test_a_tracker_that_is_not_installed_is_refused_with_its_pip_line(tmp_path, monkeypatch):
    from studio.errors import ConfigError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    cfg = make_cfg(write_data(tmp_path))
    cfg.training.report_to = "wandb"
    with pytest.raises(ConfigError) as e:
        cfg.validate()
    assert e.value.code == "config.report_to_missing" and "pip install wandb" in str(e.value)
    cfg.training.report_to = "none"
    cfg.validate()


def test_an_unknown_tracker_is_refused_by_its_choices(tmp_path):
    from studio.errors import ConfigError
    cfg = make_cfg(write_data(tmp_path))
    cfg.training.report_to = "comet"
    with pytest.raises(ConfigError):
        cfg.validate()


def test_the_trainer_is_asked_to_report_to_the_choice(tmp_path):
    import torch
    from transformers import TrainingArguments

    from studio.training.args import build_training_args

    cfg = make_cfg(write_data(tmp_path))
    for choice, want in (("none", []), ("tensorboard", ["tensorboard"])):
        cfg.training.report_to = choice
        args = build_training_args(cfg, str(tmp_path / "out"), False, torch.float32, False, 8, TrainingArguments, {}).args
        assert list(args.report_to) == want


def test_resume_ignores_report_to(tmp_path):
    from studio.training.resume import IGNORED_SETTINGS, relevant_settings
    cfg = make_cfg(write_data(tmp_path))
    before = relevant_settings(cfg)
    cfg.training.report_to = "tensorboard"
    assert "training.report_to" in IGNORED_SETTINGS and relevant_settings(cfg) == before


def test_tensorboard_writes_event_files_into_the_run_folder(tmp_path, tiny_dir):
    pytest.importorskip("tensorboard")
    from studio.training import TrainingJob

    cfg = make_cfg(write_data(tmp_path, n=8), max_steps=3)
    cfg.model.source = str(tiny_dir)
    cfg.training.report_to = "tensorboard"
    job = TrainingJob(cfg, tmp_path / "run", keep_model=False)
    job.run_sync()
    assert job.state == "done", job.message
    events = list((job.run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert events and sum(e.stat().st_size for e in events) > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(job.run_dir / "tensorboard"))
    acc.Reload()
    assert any("loss" in tag for tag in acc.Tags()["scalars"])     # the curve itself, not only the header
    assert not list((job.run_dir / "checkpoints").glob("runs"))    # not where transformers would put them
