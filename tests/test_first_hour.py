"""A first hour without friction (issue 18), the engine and command-line parts: train.log in words, the CPU
threads explained, a resumed run's speed over its own session, no library deprecation notes printed by
`studio export` and `studio eval`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from studio.cli import main
from test_cli_train_chat import write_config
from test_training_job import write_data
from tiny import tiny_tokenizer

REPO = Path(__file__).resolve().parents[1]


def test_train_log_shows_steps_in_words(tmp_path, tiny_dir, studio_home):
    config = write_config(tmp_path, tiny_dir, write_data(tmp_path, n=8))
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--max-steps", "3", "--output", str(run)]) == 0
    log = (run / "train.log").read_text(encoding="utf-8")
    assert "{'type'" not in log and "metrics {" not in log
    assert "step 3/3 (epoch" in log and "loss " in log and "learning rate " in log
    assert "thread(s)" not in log and "processor core" in log


def test_a_resumed_run_reports_the_speed_of_its_own_steps(tmp_path):
    from test_resume import _run, _stopped_run
    from studio.training.resume import plan_resume

    tok = tiny_tokenizer()
    _, stopped = _stopped_run(tmp_path, tok, at=4, save_steps=100)
    plan = plan_resume(stopped.run_dir, tokenizer=tok)
    before = json.loads((plan.checkpoint / "trainer_state.json").read_text())["num_input_tokens_seen"]
    assert before > 0
    resumed = _run(plan.cfg, stopped.run_dir, tok, data=plan.data, resume_from=plan.checkpoint)
    r = resumed.result
    assert r["tokens_trained"] == r["tokens_seen"] - before
    # The rate is this session's tokens over this session's time (it was all the run's tokens over it). The
    # runtime is rounded to 0.1 s, so compare which of the two the rate times the runtime is nearer to.
    counted = r["tokens_per_sec"] * r["train_runtime_s"]
    assert r["tokens_trained"] < r["tokens_seen"] * 0.8
    assert abs(counted - r["tokens_trained"]) < abs(counted - r["tokens_seen"])


def test_export_and_eval_print_no_deprecation_notes(tmp_path, tiny_dir, studio_home):
    config = write_config(tmp_path, tiny_dir, write_data(tmp_path, n=8))
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--max-steps", "2", "--output", str(run)]) == 0
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "What is the warranty?", "reference": "Two years."}) + "\n")
    env = {**os.environ, "STUDIO_HOME": str(studio_home), "PYTHONWARNINGS": "default"}
    for command in (["export", str(run), "--to", "merged", "--output", str(tmp_path / "merged")],
                    ["eval", "--runs", str(run), "--prompts", str(prompts), "--max-new-tokens", "4"]):
        done = subprocess.run([sys.executable, "-m", "studio.cli", *command], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "is_gradient_checkpointing" not in done.stderr and "FutureWarning" not in done.stderr, done.stderr


def test_the_package_metadata_builds_without_a_license_deprecation(tmp_path):
    """setuptools warned four times during the install that ``license = {text = ...}`` is deprecated."""
    import shutil
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / "studio").mkdir()
    (tmp_path / "studio" / "__init__.py").write_text("")
    out = tmp_path / "meta"
    out.mkdir()
    done = subprocess.run([sys.executable, "-W", "default", "-c",
                           f"import setuptools.build_meta as b; print(b.prepare_metadata_for_build_wheel({str(out)!r}))"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    printed = done.stdout + done.stderr
    assert "project.license" not in printed and "deprecated" not in printed.lower(), printed[-2000:]
    metadata = next(out.glob("*.dist-info")) / "METADATA"
    assert "License-Expression: Apache-2.0" in metadata.read_text()


def test_a_run_named_on_the_command_line_is_in_the_workspace_and_found_by_name(tmp_path, tiny_dir, studio_home,
                                                                                capsys, monkeypatch):
    """`--output runs/demo` (the README's) made a folder the app never listed; a name now goes where the app
    looks, and every command that takes a run folder takes the name."""
    from studio.jobs import JobManager

    monkeypatch.chdir(tmp_path)
    config = write_config(tmp_path, tiny_dir, write_data(tmp_path, n=8))
    assert main(["train", "--config", str(config), "--max-steps", "2", "--output", "demo"]) == 0
    run = studio_home / "runs" / "demo"
    assert (run / "adapter" / "adapter_config.json").is_file() and not (tmp_path / "demo").exists()
    assert str(run) in {r["run_dir"] for r in JobManager().runs()}          # what the Runs tab lists
    capsys.readouterr()
    assert main(["chat", "--run", "demo", "--prompt", "What is the warranty?"]) == 0
    assert main(["train", "--config", "demo", "--output", "again"]) == 0      # repeat the run by its name
    assert (studio_home / "runs" / "again" / "adapter").is_dir()
    assert main(["train", "--extend", "demo", "--max-steps", "1", "--output", "more"]) == 0
    assert main(["export", "demo", "--to", "adapter", "--output", str(tmp_path / "demo.zip")]) == 0
    assert (tmp_path / "demo.zip").is_file()
    # A path stays a path.
    assert main(["train", "--config", str(config), "--max-steps", "1", "--output", "./here"]) == 0
    assert (tmp_path / "here" / "adapter").is_dir()


def test_studio_data_checks_with_the_presets_settings(tiny_dir, studio_home, capsys):
    """`studio data … --model default` checked against a maximum length of 512 while the demo preset trains at
    256; --preset checks as that preset trains."""
    assert main(["data", "demo", "--model", str(tiny_dir), "--preset", "cpu-demo"]) == 0
    assert "over the maximum of 256" in capsys.readouterr().out
    assert main(["data", "demo", "--model", str(tiny_dir), "--preset", "cpu-demo", "--max-length", "128"]) == 0
    assert "over the maximum of 128" in capsys.readouterr().out


def test_the_train_tab_says_the_engines_messages_in_chinese(tmp_path, studio_home):
    """"Finished 30 steps …" stayed English in the Chinese app."""
    from test_training_job import run_job
    from studio.ui.views import job_status

    job = run_job(tmp_path, max_steps=3)
    assert job.state == "done"
    zh, en = job_status(job.status(), "zh"), job_status(job.status(), "en")
    assert "已完成 3 步" in zh and "Finished" not in zh and str(job.run.adapter_dir) in zh
    assert "Finished 3 steps" in en
    state = json.loads((job.run_dir / "state.json").read_text())     # what a run in its own process hands over
    assert state["message_key"] == "done" and state["message_params"]["steps"] == 3


def test_preset_descriptions_are_there_in_chinese():
    """The cpu-demo preset's description stayed English in the Chinese app."""
    import re

    from studio.presets import list_presets
    from studio.ui.views import preset_summary

    for p in list_presets():
        assert re.search(r"[\u4e00-\u9fff]", p.summary_zh), p.name
        assert not re.search(r"[\u4e00-\u9fff]", p.summary), p.name
    assert "内置模型的演示" in preset_summary("cpu-demo", "zh")
    assert "SmolLM2-135M learns the demo support FAQ" in preset_summary("cpu-demo", "en")


def test_the_memory_estimate_is_there_before_the_builtin_model_is_converted(tmp_path, monkeypatch):
    """No memory estimate on any tab until the first training had converted the built-in model."""
    from studio.models import sources as ms
    from studio.config import StudioConfig
    from studio.models.size import config_facts
    from studio.ui.services import Services

    converted = ms.default_model_dir()
    monkeypatch.setenv("STUDIO_CACHE", str(tmp_path / "empty-cache"))
    assert not ms.is_converted(ms.default_model_dir())
    svc = Services()
    cfg = StudioConfig()
    facts = svc.facts(cfg.model)
    assert facts and facts["num_layers"] == 30 and facts["hidden_size"] == 576 and facts["tied_embeddings"]
    assert svc.memory(cfg)["total_gb"] > 0
    assert not ms.is_converted(ms.default_model_dir())          # nothing was converted for it
    if ms.is_converted(converted):                            # the same sizes as the converted model's config.json
        assert facts["num_params"] == config_facts(converted)["num_params"]


def test_the_chinese_app_words_that_stayed_english(studio_home):
    """'Not checked yet', the chat examples' heading, 'merged model (transformers)', the 'setting' column and
    the Runs chart's axes stayed English after switching to Chinese."""
    from studio.config import StudioConfig
    from studio.ui.app import AppOptions, build_app
    from studio.ui.i18n import t
    from studio.ui.services import Services

    ctx = build_app(AppOptions(config=StudioConfig()), services=Services()).studio_ctx
    on_lang = {id(outputs): fn for fn, _, outputs in ctx.on_lang}
    assert on_lang[id(ctx.data.summary)](t("data.not_checked", "en"), "zh") == t("data.not_checked", "zh")
    assert on_lang[id(ctx.data.summary)]("9 usable rows of 10", "zh") != t("data.not_checked", "zh")   # a report stays
    assert on_lang[id(ctx.chat.examples.dataset)]("zh")["label"] == "留出的演示问题（不在训练数据中）"
    kind = next(u for c, u in zip(ctx.labels.components, ctx.labels.updates("zh")) if c is ctx.runs.export_kind)
    assert ("合并后的模型（transformers）", "merged") in kind["choices"]
    assert list(on_lang[id(ctx.runs.diff)]([], "zh").columns) == ["设置项"]
    assert on_lang[id(ctx.runs.plot)]([], "zh").layout.xaxis.title.text == t("plot.step", "zh") != t("plot.step", "en")


def test_a_computer_without_a_gpu_is_not_shown_gpu_controls(studio_home, monkeypatch):
    """'GPUs to use', DDP/FSDP, 'Fit to my GPU' and the 24/48/80 GB verdicts were shown on a CPU machine, and
    '16-bit LoRA' was selected while the log said fp32."""
    from studio.config import StudioConfig
    from studio.ui import views
    from studio.ui.app import AppOptions, build_app
    from studio.ui.services import Services

    def build(gpus):
        svc = Services()
        monkeypatch.setattr(svc, "gpus", lambda: gpus)
        return build_app(AppOptions(config=StudioConfig()), services=svc).studio_ctx

    def shown(c) -> bool:          # visible, and every layout around it too
        while c is not None:
            if getattr(c, "visible", True) is False:
                return False
            c = getattr(c, "parent", None)
        return True

    cpu = build([])
    assert shown(cpu.model.cpu_note) and "32-bit floats" in cpu.model.cpu_note.value
    assert not shown(cpu.model.gpus) and not shown(cpu.model.strategy) and not shown(cpu.model.gpus_found)
    assert not shown(cpu.settings.fit_btn)
    gpu = build([{"index": 0, "name": "NVIDIA H100", "total_gb": 80.0, "free_gb": 79.0}])
    assert not shown(gpu.model.cpu_note) and shown(gpu.model.gpus) and shown(gpu.settings.fit_btn)
    est = {"parts": {"weights": 0.5}, "total_gb": 1.0, "free_gb": 4.0, "fits": True}
    assert "24 GB" not in views.memory({**est, "device": "cpu"}, "en")
    assert "24 GB" in views.memory({**est, "device": "cuda"}, "en")


def test_clicking_a_chat_example_sends_it(studio_home):
    """Clicking an example only filled the box."""
    from studio.config import StudioConfig
    from studio.ui.app import AppOptions, build_app
    from studio.ui.services import Services

    demo = build_app(AppOptions(config=StudioConfig()), services=Services())
    ex = demo.studio_ctx.chat.examples
    fill = next(d for d in demo.fns.values() if (ex.dataset._id, "click") in d.targets)   # fills the box
    then = [d for d in demo.fns.values() if d.trigger_after == fill._id]                   # ... and then
    assert then and getattr(then[0].fn, "__name__", "") == "chat"


def test_the_system_prompt_placeholder_does_not_say_there_is_none(studio_home):
    """The placeholder said the data had no system prompt, while an empty box sends the run's own one."""
    from studio.config import StudioConfig
    from studio.ui.app import AppOptions, build_app
    from studio.ui.services import Services

    box = build_app(AppOptions(config=StudioConfig()), services=Services()).studio_ctx.chat.system
    assert "had no system prompt" not in box.placeholder and "own system prompt is sent" in box.placeholder


def test_empty_tables_show_their_column_names(studio_home):
    """Empty tables showed '1 2 3' headers."""
    from studio.config import StudioConfig
    from studio.ui.app import AppOptions, build_app
    from studio.ui.services import Services

    ctx = build_app(AppOptions(config=StudioConfig()), services=Services()).studio_ctx
    for table in (ctx.runs.table, ctx.runs.diff, ctx.data.rows):
        headers = table.value["headers"]
        assert headers and not any(str(h).isdigit() for h in headers), (table.elem_id, headers)
    assert ctx.runs.table.value["headers"][0] == "Name"


def test_the_histograms_max_length_words_are_inside_the_chart():
    """The histogram's 'max length' label was cut at the chart's right edge."""
    from studio.ui.plots import length_histogram

    at_the_edge = length_histogram([20, 40, 60, 80], max_length=256)       # the line near the right end
    assert at_the_edge.layout.annotations[0].xanchor == "right"            # the words left of the line
    far_left = length_histogram([20, 400, 900, 1000], max_length=64)
    assert far_left.layout.annotations[0].xanchor == "left"


def test_chat_example_labels_are_whole_words(studio_home):
    """Gradio cut the example texts at 60 characters, mid-word ('…buildup out of my kett...')."""
    from studio.config import StudioConfig
    from studio.ui.app import AppOptions, build_app
    from studio.ui.services import Services
    from studio.ui.tab_chat import held_out_questions

    ex = build_app(AppOptions(config=StudioConfig()), services=Services()).studio_ctx.chat.examples
    questions = held_out_questions()
    assert any(len(q) > 60 for q in questions) and len(ex.example_labels) == len(questions)
    for q, label in zip(questions, ex.example_labels):
        assert len(label) <= 60
        assert label == q or (label.endswith("…") and q.startswith(label[:-1]) and q[len(label) - 1] == " ")


def test_the_evaluation_table_gives_every_column_a_width():
    """The answer columns were off screen at 1,400 px (looked at in the browser test's runs-evaluate.png)."""
    import re

    from studio.ui.eval_table import table_html

    score = {"right": True, "explanation": "states $129", "similarity": 80.0}
    rows = [{"prompt": "Q", "reference": "R", "base": "B", "run-1": "A", "run-2": "A2",
             "scores": {"base": score, "run-1": score, "run-2": score}}]
    page = table_html(rows, {}, "en")
    widths = [float(w) for w in re.findall(r"<th[^>]*width:([0-9.]+)%", page)]
    assert len(widths) == 4 and sum(widths) <= 100             # the question and one column a model
    assert "table-layout:fixed" in page and "overflow-wrap:anywhere" in page   # long answers wrap, none hides
