"""`studio train` takes every config field as KEY=VALUE or --section.name, and its help lists them all, made
from studio/config.py's own help, defaults and choices."""

import dataclasses

import pytest

from studio.cli import build_parser, main
from studio.commands.train import build_config
from studio.config import SECTIONS, field_help


def parse(*argv):
    return build_parser().parse_args(["train", *argv])


def test_key_value_settings_override_the_preset():
    cfg = build_config(parse("--preset", "cpu-demo", "lora.r=32", "training.learning_rate=1e-4", "data.file=x.jsonl",
                             "lora.target_modules=q_proj,v_proj", "training.packing=false", "name=demo"))
    assert (cfg.lora.r, cfg.training.learning_rate, cfg.data.file) == (32, 1e-4, "x.jsonl")
    assert cfg.lora.target_modules == ["q_proj", "v_proj"] and cfg.training.packing is False and cfg.name == "demo"


def test_options_and_the_old_short_flags_set_the_same_fields():
    cfg = build_config(parse("--lora.alpha", "64", "--model", "m", "--data", "d.csv", "--max-steps", "7",
                             "--output", "./out", "training.neftune_noise_alpha=5"))
    assert (cfg.lora.alpha, cfg.model.source, cfg.data.file, cfg.training.max_steps) == (64, "m", "d.csv", 7)
    assert cfg.training.output_dir == "./out" and cfg.training.neftune_noise_alpha == 5.0


@pytest.mark.parametrize("argv, words", [
    (["lora.rr=3"], "Unknown setting 'lora.rr'"),
    (["lora.r=many"], "lora.r must be a whole number"),
    (["lora.r"], "write KEY=VALUE"),
    (["lora.r=0"], "lora.r is 0; it must be between 1 and 4,096"),  # validated once, when the run starts
])
def test_bad_settings_are_refused_with_exit_code_2(studio_home, capsys, argv, words):
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert words in err and "hint: " in err


def test_help_lists_every_field_with_its_help_default_and_choices(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert f"--{section}.{f.name}" in text
            assert " ".join(field_help(section, f.name).split()).replace("%%", "%")[:40] in text
    assert "(default: 16; 1 to 4096)" in text                                   # lora.r
    assert "choices: none, 8bit, 4bit-nf4, 4bit-fp4" in text                    # model.quantization


def test_studio_data_options_come_from_the_config(capsys):
    with pytest.raises(SystemExit):
        main(["data", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert " ".join(field_help("data", "template").split())[:40] in text and "(default: 512; 16 to 1048576)" in text


def test_the_readme_shows_the_current_help(capsys, monkeypatch):
    """README.md carries `studio train --help` (made with COLUMNS=110); a new or changed field must update it."""
    from pathlib import Path
    monkeypatch.setenv("COLUMNS", "110")
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert capsys.readouterr().out.rstrip() in readme
