"""Widgets <-> config: every field the studio draws turns back into the same config, with the
config's help text and plain messages for wrong values; the label table is complete."""

import ast
import dataclasses
from pathlib import Path

import gradio as gr
import pytest

from studio.config import SECTIONS, StudioConfig, field_help, merge
from studio.errors import ConfigError
from studio.ui import bindings as b
from studio.ui import i18n_text
from studio.ui.i18n import LANGS, Help, Labels, t
from studio.ui.i18n_text import TEXT


def build(cfg: StudioConfig, lang: str = "en"):
    labels = Labels(lang)
    bind = b.Bindings(cfg, labels)
    with gr.Blocks():
        for spec in b.SPECS:
            bind.widget(spec.section, spec.name)
    return bind, labels


def values_of(bind: b.Bindings) -> list:
    return [w.value for w in bind.inputs]


def test_every_config_field_the_ui_needs_is_bound_once():
    keys = [s.key for s in b.SPECS]
    assert len(keys) == len(set(keys))
    drawn = set(keys)
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert f"{section}.{f.name}" in drawn, f"{section}.{f.name} has no widget"


def test_widgets_round_trip_a_non_default_config():
    cfg = merge(StudioConfig(), {
        "name": "my run", "model": {"source": "Qwen/Qwen2.5-0.5B-Instruct", "quantization": "4bit-nf4",
                                    "trust_remote_code": True},
        "data": {"file": "/data/faq.csv", "format": "mapping", "prompt_column": "q", "answer_column": "a",
                 "max_length": 1024, "validation": 20},
        "lora": {"r": 64, "alpha": 16, "target_modules": ["q_proj", "v_proj"], "use_dora": True},
        "training": {"max_steps": 300, "learning_rate": 1e-4, "optimizer": "paged_adamw_8bit"},
        "generation": {"temperature": 0.7},
    })
    bind, _ = build(cfg)
    assert bind.to_config(values_of(bind)) == cfg


def test_built_in_choices_need_no_text_and_hide_the_box():
    bind, _ = build(StudioConfig())
    kind, text = bind.widgets["model.source"]
    assert kind.value == "default" and text.visible is False
    dkind, dtext = bind.widgets["data.file"]
    assert dkind.value == "demo" and dtext.visible is False
    assert bind.to_config(values_of(bind)).model.source == "default"


@pytest.mark.parametrize("source,kind", [("default", "default"), ("/models/x", "folder"), ("m.gguf", "gguf"),
                                         ("Qwen/Qwen2.5-0.5B", "hub")])
def test_model_kind_is_guessed_from_the_source(source, kind):
    assert b.model_kind(source) == kind
    text = "" if kind == "default" else source
    assert b.source_value("model", kind, text) == source


def test_target_module_selection():
    assert b.module_value(["q_proj", "all-linear"]) == "all-linear"
    assert b.module_value(["q_proj", "v_proj"]) == ["q_proj", "v_proj"]
    assert b.module_selection("all-linear") == ["all-linear"]
    cfg = merge(StudioConfig(), {"lora": {"target_modules": ["c_attn"]}})   # not a common name
    bind, _ = build(cfg)
    assert "c_attn" in [c[1] for c in bind.widgets["lora.target_modules"][0].choices]


def test_no_module_ticked_is_refused_with_a_plain_message():
    bind, _ = build(StudioConfig())
    values = values_of(bind)
    values[bind.inputs.index(bind.widgets["lora.target_modules"][0])] = []
    with pytest.raises(ConfigError, match="at least one target module"):
        bind.to_config(values).validate()


def test_a_number_typed_wrong_becomes_a_config_error():
    bind, _ = build(StudioConfig())
    values = values_of(bind)
    values[bind.inputs.index(bind.widgets["training.batch_size"][0])] = None
    with pytest.raises(ConfigError, match="training.batch_size"):
        bind.to_config(values)


def test_updates_show_another_config_and_keep_chosen_fields():
    bind, _ = build(StudioConfig())
    other = merge(StudioConfig(), {"model": {"source": "/m"}, "lora": {"r": 8}})
    ups = bind.to_updates(other, keep=lambda k: k == "model.source")
    assert len(ups) == len(bind.inputs)
    by_widget = dict(zip(map(id, bind.inputs), ups))
    assert by_widget[id(bind.widgets["lora.r"][0])]["value"] == 8
    assert by_widget[id(bind.widgets["model.source"][1])] == gr.skip()


def test_api_names_are_unique_and_readable():
    bind, _ = build(StudioConfig())
    names = bind.api_names()
    assert len(names) == len(bind.inputs) == len(set(names))
    assert {"model_source_kind", "model_source", "training_max_steps", "run_name"} <= set(names)


def test_help_text_comes_from_the_config():
    bind, _ = build(StudioConfig())
    assert bind.widgets["lora.r"][0].info == field_help("lora", "r")
    zh, _ = build(StudioConfig(), "zh")
    assert zh.widgets["lora.r"][0].info == field_help("lora", "r", "zh") != field_help("lora", "r")


def test_label_table_has_both_languages_and_no_duplicates():
    bind, labels = build(StudioConfig())
    missing = sorted(k for k in labels.keys() if k not in TEXT)
    assert missing == []
    for key, (en, zh) in TEXT.items():
        assert en.strip() and zh.strip(), key
    pairs = list(TEXT.values())
    assert len(pairs) == len(set(pairs)), "the same words under two keys: reuse one key"
    # every field's help in both languages, beside the field (studio/config.py)
    assert all(field_help(s, f.name, "zh") for s, c in SECTIONS.items() for f in dataclasses.fields(c))


def test_every_field_label_lives_only_in_the_config():
    # A label in both languages beside each field (studio/config.py) ...
    for s, c in SECTIONS.items():
        for f in dataclasses.fields(c):
            en, zh = f.metadata["label"]
            assert en.strip() and zh.strip() and f.metadata.get("help_zh", "").strip(), f"{s}.{f.name}"
            assert TEXT[f"field.{s}.{f.name}"] == (en, zh)
    # ... and no second one in the table's source: its field.* keys name controls that are not config fields.
    tree = ast.parse(Path(i18n_text.__file__).read_text(encoding="utf-8"))
    table = next(n.value for n in tree.body if isinstance(n, ast.AnnAssign) and n.target.id == "TEXT")
    keys = {k.value for k in table.keys}
    in_config = {f"field.{s}.{f.name}" for s, c in SECTIONS.items() for f in dataclasses.fields(c)}
    assert sorted(keys & in_config) == []


def test_switching_language_relabels_every_component_but_no_value():
    bind, labels = build(StudioConfig())
    ups = labels.updates("zh")
    assert len(ups) == len(labels.components)
    for up in ups:
        assert "value" not in up or isinstance(up["value"], str) and up["value"] in {v[1] for v in TEXT.values()}
    r = bind.widgets["lora.r"][0]
    up = ups[labels.components.index(r)]
    assert up["label"] == TEXT["field.lora.r"][1] and up["info"] == Help("lora", "r").text("zh")
    quant = bind.widgets["model.quantization"][0]
    assert ("4 位 QLoRA（NF4）", "4bit-nf4") in ups[labels.components.index(quant)]["choices"]


def test_t_fills_placeholders_and_falls_back_to_english():
    assert t("data.page_of", "zh", page=2, pages=3, rows=9) == "第 2 / 3 页 · 共 9 行"
    assert t("data.page_of", "xx", page=2, pages=3, rows=9).startswith("Page 2 of 3")
    assert set(LANGS) == {"en", "zh"}


def test_switching_language_leaves_choices_filled_at_run_time_alone():
    """A list of runs (or of columns) starts empty and is filled from the engine; relabelling the page
    must not send it back to empty, or the chosen run is refused as 'not in the list of choices'."""
    labels = Labels("en")
    with gr.Blocks():
        runs = labels.make(gr.Dropdown, label="runs.open", choices=[])
        mode = labels.make(gr.Radio, label="chat.mode", choices=[("chat.mode.compare", "compare")])
    ups = dict(zip(map(id, labels.components), labels.updates("zh")))
    assert "choices" not in ups[id(runs)] and ups[id(runs)]["label"] == t("runs.open", "zh")
    assert ups[id(mode)]["choices"] == [(t("chat.mode.compare", "zh"), "compare")]
