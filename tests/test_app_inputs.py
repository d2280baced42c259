"""What the app accepts from a browser or an API client: run folders only inside the workspace, out-of-range
numbers refused by setting name, rejected uploads deleted (the kept copy and Gradio's temp file)."""

import gradio as gr
import pytest

from studio.config import StudioConfig
from studio.errors import ConfigError
from studio.jobs import workspace_output_dir
from studio.ui.app import AppOptions, build_app
from studio.ui.services import Services
from test_training_job import make_cfg, prepared, write_data
from tiny import tiny_model, tiny_tokenizer


@pytest.mark.parametrize("value", ["/tmp/elsewhere", "../outside", "runs/../../x", "~/x", "..", "a\\b"])
def test_an_output_folder_path_is_refused_in_the_app(studio_home, value):
    with pytest.raises(ConfigError, match="is a path. In the studio app a run folder is a name inside"):
        workspace_output_dir(value)


def test_an_output_folder_name_lands_in_the_runs_folder_and_is_listed(tmp_path, studio_home):
    from studio.jobs import JobManager

    assert workspace_output_dir("") == ""
    assert workspace_output_dir("my run v2") == str(studio_home / "runs" / "my-run-v2")
    tok = tiny_tokenizer()
    cfg = make_cfg(write_data(tmp_path), max_steps=1)
    cfg.training.output_dir = "support bot"
    manager = JobManager()
    job = manager.start(cfg, model=tiny_model(tok), tokenizer=tok, data=prepared(cfg, tok), in_workspace=True)
    assert job.join(60) and job.run_dir == studio_home / "runs" / "support-bot"
    assert [r["run_dir"] for r in manager.runs()] == [str(job.run_dir)]
    cfg.training.output_dir = str(tmp_path / "anywhere")          # the CLI's --output stays free
    job = manager.start(cfg, model=tiny_model(tok), tokenizer=tok, data=prepared(cfg, tok))
    assert job.join(60) and job.run_dir == tmp_path / "anywhere"


@pytest.fixture(scope="module")
def app():
    demo = build_app(AppOptions(config=StudioConfig()), services=Services())
    return demo, {f.api_name: f.fn for f in demo.fns.values() if f.api_name}


@pytest.mark.parametrize("key, value, words", [
    ("lora.r", 0, "LoRA rank r (lora.r, API parameter 'lora_r') must be at least 1; 0 was given"),
    ("training.batch_size", 0, "Batch size (training.batch_size, API parameter 'training_batch_size') must be at least 1"),
    ("lora.dropout", 1.5, "LoRA dropout (lora.dropout, API parameter 'lora_dropout') must be at most 0.99; 1.5"),
    ("data.max_length", 0, "Max sequence length (data.max_length, API parameter 'data_max_length') must be at least 16"),
    ("training.max_steps", 10**20, "must be at most 1,000,000"),
])
def test_out_of_range_numbers_name_their_setting(app, key, value, words):
    demo, _ = app
    widget, = demo.studio_ctx.bind.widgets[key]
    with pytest.raises(gr.Error) as e:
        widget.preprocess(value)
    assert words in str(e.value)
    assert widget.preprocess(widget.minimum) == widget.minimum          # in range still passes


def test_a_rejected_upload_leaves_nothing_on_disk(app, tmp_path, studio_home, monkeypatch):
    demo, fns = app
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-tmp"))
    values = [w.value for w in demo.studio_ctx.bind.inputs]

    def upload(name, data):
        folder = tmp_path / "gradio-tmp" / f"hash-{len(list(tmp_path.glob('gradio-tmp/*')))}"
        folder.mkdir(parents=True)
        (folder / name).write_bytes(data)
        with pytest.warns(UserWarning):
            out = fns["upload_data"](str(folder / name), "en", *values)
        return folder / name, out

    temp, out = upload("sheet.jsonl", b"PK\x03\x04\x00\x00binary zip")     # unreadable: refused, removed
    assert not temp.exists() and not temp.parent.exists()
    assert list((studio_home / "uploads").iterdir()) == []
    assert all(o is gr.skip() or o == gr.skip() for o in out)                # nothing on screen changed

    with monkeypatch.context() as m:
        m.setattr("studio.data.read.DEFAULT_MAX_BYTES", 100)
        temp, _ = upload("big.jsonl", b'{"text": "x"}\n' * 20)              # over the reader's limit
    assert not temp.exists() and list((studio_home / "uploads").iterdir()) == []

    folder = tmp_path / "gradio-tmp" / "hash-ok"
    folder.mkdir(parents=True)
    (folder / "faq.jsonl").write_text('{"instruction": "Q", "output": "A"}\n', encoding="utf-8")
    out = fns["upload_data"](str(folder / "faq.jsonl"), "en", *values)
    kept = studio_home / "uploads" / "faq.jsonl"
    assert kept.is_file() and not (folder / "faq.jsonl").exists()           # moved, not copied
    assert "1 usable rows of 1" in out[2]
