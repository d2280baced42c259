"""Every preset loads, validates, and says what it changes."""

import pytest

from studio.config import StudioConfig
from studio.errors import ConfigError
from studio.presets import get_preset, list_presets, load_preset, save_preset


def test_every_preset_is_valid_and_described():
    presets = list_presets()
    names = {p.name for p in presets}
    assert {"cpu-demo", "qlora-paper", "low-memory-7b", "quality-lora-16bit"} <= names
    for p in presets:
        assert p.summary, f"{p.name} has no comment line"
        assert p.overrides(), f"{p.name} changes nothing"
        load_preset(p.name).validate()


def test_qlora_preset_is_the_papers_recipe():
    cfg = load_preset("qlora-paper")
    assert (cfg.model.quantization, cfg.model.double_quant, cfg.model.compute_dtype) == ("4bit-nf4", True, "bfloat16")
    assert (cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target_modules) == (64, 16, 0.1, "all-linear")
    assert cfg.training.optimizer == "paged_adamw_8bit" and cfg.training.learning_rate == 2e-4


def test_preset_applies_over_a_base_config():
    base = StudioConfig()
    base.model.source = "my/model"
    cfg = load_preset("quality-lora-16bit", base)
    assert cfg.model.source == "my/model" and cfg.lora.use_rslora is True
    assert base.lora.use_rslora is False  # the base is not modified


def test_save_current_settings_as_preset(tmp_path):
    cfg = load_preset("cpu-demo")
    cfg.lora.r = 24
    path = save_preset(cfg, "mine", "My recipe", folder=tmp_path)
    assert path.read_text().startswith("# My recipe")
    again = load_preset("mine", folder=tmp_path)
    assert again.lora.r == 24 and again.training.max_steps == cfg.training.max_steps
    with pytest.raises(ConfigError, match="preset name"):
        save_preset(cfg, "../evil", folder=tmp_path)
    with pytest.raises(ConfigError, match="no preset called 'nope'"):
        get_preset("nope", folder=tmp_path)


def test_presets_command_lists_one_line_each(capsys):
    from studio.cli import main
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(list_presets())
    assert any(line.startswith("qlora-paper") and "NF4" in line for line in lines)


def test_shipped_presets_are_read_only_and_the_users_live_in_the_workspace(studio_home):
    from studio.paths import PRESETS_DIR
    shipped = (PRESETS_DIR / "cpu-demo.yaml").read_bytes()
    cfg = load_preset("cpu-demo")
    cfg.lora.r = 3
    with pytest.raises(ConfigError, match="comes with the studio") as e:
        save_preset(cfg, "cpu-demo")
    assert e.value.code == "config.preset_shipped"
    assert (PRESETS_DIR / "cpu-demo.yaml").read_bytes() == shipped          # untouched
    path = save_preset(cfg, "mine")
    assert path == studio_home / "presets" / "mine.yaml" and not (PRESETS_DIR / "mine.yaml").exists()
    listed = {p.name: p for p in list_presets()}
    assert listed["mine"].shipped is False and listed["cpu-demo"].shipped is True
    assert load_preset("mine").lora.r == 3


def test_a_name_that_exists_is_replaced_only_when_asked(studio_home):
    cfg = load_preset("cpu-demo")
    cfg.lora.r = 3
    save_preset(cfg, "mine")
    cfg.lora.r = 5
    with pytest.raises(ConfigError, match="already have a preset called 'mine'") as e:
        save_preset(cfg, "mine")
    assert e.value.code == "config.preset_exists" and load_preset("mine").lora.r == 3
    save_preset(cfg, "mine", replace=True)
    assert load_preset("mine").lora.r == 5


def test_the_settings_tab_asks_before_replacing(studio_home):
    from studio.paths import PRESETS_DIR
    from studio.ui.app import AppOptions, build_app
    demo = build_app(AppOptions(config=StudioConfig()))
    save = next(f.fn for f in demo.fns.values() if f.api_name == "save_preset")
    values = [w.value for w in demo.studio_ctx.bind.inputs]
    shipped = (PRESETS_DIR / "cpu-demo.yaml").read_bytes()
    out = save("cpu-demo", "en", "", *values)
    assert (PRESETS_DIR / "cpu-demo.yaml").read_bytes() == shipped          # refused, the file is untouched
    first = save("mine", "en", "", *values)
    assert (studio_home / "presets" / "mine.yaml").is_file() and first[2] == ""
    before = (studio_home / "presets" / "mine.yaml").stat().st_mtime_ns
    asked = save("mine", "en", "", *values)                                # exists: warned, nothing written
    assert asked[2] == "mine" and (studio_home / "presets" / "mine.yaml").stat().st_mtime_ns == before
    replaced = save("mine", "en", "mine", *values)                         # saved again: replaced
    assert replaced[2] == "" and out is not None
