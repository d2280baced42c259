"""Config: YAML round trip, type coercion and the messages people see when a setting is wrong."""

import pytest

from studio.config import StudioConfig, field_choices, field_help, merge
from studio.errors import ConfigError


def test_yaml_round_trip_keeps_every_field():
    cfg = merge(StudioConfig(), {
        "name": "x", "model": {"source": "some/model", "quantization": "4bit-nf4", "double_quant": False},
        "data": {"file": "a.csv", "format": "mapping", "prompt_column": "q", "answer_column": "a"},
        "lora": {"r": 64, "alpha": 16, "target_modules": ["q_proj", "v_proj"], "use_dora": True},
        "training": {"max_steps": 7, "learning_rate": 1e-4, "optimizer": "paged_adamw_8bit"},
        "generation": {"temperature": 0.3},
    })
    again = StudioConfig.from_yaml(cfg.to_yaml())
    assert again == cfg
    assert again.lora.target_modules == ["q_proj", "v_proj"]
    assert again.model.double_quant is False
    assert again != StudioConfig()


def test_save_and_load_file(tmp_path):
    cfg = merge(StudioConfig(), {"lora": {"r": 8}})
    cfg.save(tmp_path / "c.yaml")
    assert StudioConfig.load(tmp_path / "c.yaml").lora.r == 8


def test_values_from_widgets_are_coerced():
    cfg = merge(StudioConfig(), {"lora": {"r": "32", "target_modules": "q_proj, v_proj"},
                                 "training": {"gradient_checkpointing": "yes", "batch_size": 2.0}})
    assert cfg.lora.r == 32 and cfg.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.training.gradient_checkpointing == "on" and cfg.training.batch_size == 2


@pytest.mark.parametrize("overrides, words", [
    ({"lora": {"r": 0}}, "lora.r is 0; it must be between 1 and 4,096 (8-64 is typical)"),
    ({"lora": {"r": "many"}}, "lora.r must be a whole number"),
    ({"lora": {"dropout": 1.5}}, "dropout"),
    ({"model": {"quantization": "3bit"}}, "Choose one of: none, 8bit"),
    ({"training": {"learning_rate": 5}}, "learning rate"),
    ({"training": {"max_steps": 0, "epochs": -1}}, "epochs"),
    ({"data": {"format": "mapping"}}, "which column"),
    ({"data": {"validation": 2.5}}, "fraction"),
])
def test_bad_values_get_plain_messages(overrides, words):
    with pytest.raises(ConfigError) as e:
        merge(StudioConfig(), overrides).validate()
    assert words in str(e.value)


def test_unknown_settings_are_named():
    with pytest.raises(ConfigError, match="Unknown setting 'lora.rank'.*r, alpha"):
        merge(StudioConfig(), {"lora": {"rank": 8}})
    with pytest.raises(ConfigError, match="Unknown config section 'trainer'"):
        StudioConfig.from_yaml("trainer: {}")
    with pytest.raises(ConfigError, match="not valid YAML"):
        StudioConfig.from_yaml("model: [")


def test_target_modules_checked_against_the_model():
    cfg = merge(StudioConfig(), {"lora": {"target_modules": ["q_proj", "query_key_value"]}})
    with pytest.raises(ConfigError) as e:
        cfg.validate(linear_modules=["q_proj", "k_proj", "v_proj"])
    msg = str(e.value)
    assert "not in this model: query_key_value" in msg and "The model has: k_proj, q_proj, v_proj" in msg
    merge(StudioConfig(), {"lora": {"target_modules": ["q_proj"]}}).validate(linear_modules=["q_proj"])


def test_every_field_has_help_and_choices_are_valid_defaults():
    import dataclasses
    from studio.config import SECTIONS
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert len(field_help(section, f.name)) > 10, f"{section}.{f.name} has no help"
            choices = field_choices(section, f.name)
            if choices:
                assert getattr(cls(), f.name) in choices
    StudioConfig().validate()
