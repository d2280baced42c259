"""Config files that PyYAML reads without a word but the studio must not take as they come (issue 18):
runaway nesting and self-references (a RecursionError before), keys and sections given twice (the later
silently replaced the earlier), an empty file (taken as "all defaults", and a run started). Each through
the real ``studio train --config`` and through ``StudioConfig.load``."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.cli import main

CONFIGS = Path(__file__).parent / "fixtures" / "configs"

CASES = {
    "deep-nesting.yaml": ("config.yaml_too_deep", "nested more than 20 levels deep (at line 3)"),
    "self-reference.yaml": ("config.yaml_recursive", "the alias *loop on line 3 is inside the &loop"),
    "duplicate-key.yaml": ("config.duplicate_key", "'r' is given twice in"),
    "duplicate-section.yaml": ("config.duplicate_key", "'training' is given twice in"),
    "empty.yaml": ("config.empty_file", "is empty (it holds no settings)"),
    "comments-only.yaml": ("config.empty_file", "is empty (it holds no settings)"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_bad_config_file_is_refused_by_name(name, tmp_path, studio_home, capsys):
    from studio.config import StudioConfig
    from studio.errors import ConfigError

    code, words = CASES[name]
    path = CONFIGS / name
    with pytest.raises(ConfigError) as e:
        StudioConfig.load(path)
    assert e.value.code == code and words in e.value.message
    out = tmp_path / "run"
    assert main(["train", "--config", str(path), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and "internal error" not in err
    assert not out.exists()


def test_the_lines_of_both_keys_are_named_and_chinese_is_there():
    from studio.config import StudioConfig
    from studio.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        StudioConfig.load(CONFIGS / "duplicate-section.yaml")
    assert "(lines 1 and 6)" in e.value.message
    zh, hint = e.value.render("zh")
    assert "第 1 行和第 6 行" in zh and hint


def test_an_alias_of_an_earlier_value_still_works():
    from studio.config import StudioConfig

    cfg = StudioConfig.from_yaml("training: {max_steps: &n 6, save_steps: *n}\n")
    assert cfg.training.max_steps == cfg.training.save_steps == 6
    text = "model: {source: default}\nlora:\n  target_modules: &mods [q_proj, v_proj]\n"
    assert StudioConfig.from_yaml(text).lora.target_modules == ["q_proj", "v_proj"]
