"""The Runs tab's actions on real tiny runs through the app's own handlers: settings that differ,
evaluation rows streamed, export, "Use these settings", and a refused resume shown as a message."""

from __future__ import annotations

import gradio as gr
import pytest

from test_export import train_run


@pytest.fixture()
def app_and_runs(tmp_path, tiny_dir, studio_home):
    from studio.config import StudioConfig
    from studio.ui.app import AppOptions, build_app
    from studio.ui.services import Services

    a = train_run(tmp_path, tiny_dir, "a", steps=3)
    b = train_run(tmp_path, tiny_dir, "b", steps=5)
    demo = build_app(AppOptions(config=StudioConfig()), services=Services())
    fns = {f.api_name: f.fn for f in demo.fns.values() if f.api_name}
    return demo, fns, str(a), str(b)


def test_runs_tab_actions(app_and_runs, tmp_path, monkeypatch):
    demo, fns, a, b = app_and_runs
    diff = fns["run_differences"]([a, b], "en")
    assert list(diff.columns) == ["setting", "a", "b"]
    assert dict(zip(diff["setting"], diff["b"]))["training.max_steps"] == "5"
    assert "lora.r" not in set(diff["setting"])                   # the same in both: not shown

    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "What is the warranty?", "reference": "Two years."}\n{"prompt": "Hi?"}\n')
    outs = list(fns["evaluate_runs"]([a, b], str(prompts), "en"))       # (totals, table html, csv) per row
    assert len(outs) == 3 and outs[0][1].count("<tr>") == 2 and outs[1][1].count("<tr>") == 3   # rows stream in
    totals, table, csv = outs[-1]
    assert "What is the warranty?" in table and "Reference: Two years." in table and csv.endswith("eval.csv")
    assert "**a**" in totals and "**b**" in totals and "**base**" in totals

    path, status = fns["export_run"](a, "gguf-f16", "en")
    assert path.endswith(".gguf") and "Written:" in status
    path2, _ = fns["export_run"](a, "gguf-f16", "en")
    assert path2 != path                                            # the earlier export is kept
    assert path.endswith("-F16.gguf") and ".Modelfile" in status and " MB)" in status
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        llama_cpp = None
    if llama_cpp is not None:                                       # the export check, as a table in the status
        path3, status = fns["export_run"](a, "gguf-q8_0", "en", True)
        assert path3.endswith("-Q8_0.gguf") and "Export check" in status and "| question |" in status

    outs = fns["use_run_settings"](b, "en")
    assert "Settings tabs" in outs[0]
    bind = demo.studio_ctx.bind
    values = {spec_input: out for spec_input, out in zip(bind.inputs, outs[1:])}
    assert any(isinstance(v, dict) and v.get("value") == 5 for v in values.values())   # max_steps 5

    warnings = []
    monkeypatch.setattr(gr, "Warning", lambda msg, **kw: warnings.append(msg))
    assert fns["resume_run"](a, "en") == gr.skip()
    assert "already finished" in warnings[-1]


def test_export_merged_never_replaces_an_earlier_zip(app_and_runs, studio_home):
    """The merged folder is offered as <folder>.zip: an earlier zip of that name (its folder deleted) stays."""
    from pathlib import Path
    _, fns, a, _ = app_and_runs
    exports = studio_home / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    earlier = exports / f"{Path(a).name}-merged.zip"
    earlier.write_bytes(b"an earlier export")
    path, status = fns["export_run"](a, "merged", "en")
    assert path.endswith(".zip") and Path(path) != earlier and Path(path).is_file()
    assert earlier.read_bytes() == b"an earlier export"
    again, _ = fns["export_run"](a, "merged", "en")
    assert again not in (path, str(earlier)) and Path(path).is_file()
    assert not list(exports.glob("*.partial*"))
