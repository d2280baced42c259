"""The app's handlers against a stand-in engine: the live curve reads rows since a cursor, a new
page gets the whole curve, refusals and failures become plain messages that keep the user's input."""

import gradio as gr
import pytest

from studio.config import StudioConfig
from studio.errors import ConfigError
from studio.runs import MetricsLog
from studio.ui import plots
from studio.ui.app import AppOptions, build_app
from studio.ui.services import Services


class FakeJob:
    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.metrics = MetricsLog()
        self.state, self.step = "training", 0
        self.cfg = StudioConfig()

    def status(self):
        return {"state": self.state, "message": "Training.", "hint": "", "name": "run-1", "run_dir": str(self.run_dir),
                "progress": {"step": self.step, "total_steps": 10, "fraction": self.step / 10}}

    def log(self, step, loss):
        self.step = step
        self.metrics.append({"type": "train", "step": step, "loss": loss})


class FakeServices(Services):
    def __init__(self):
        super().__init__()
        self.job = None
        self.start_error = None
        self.chat_error = None

    def current_job(self):
        return self.job

    def start(self, cfg):
        if self.start_error:
            raise self.start_error
        return self.job

    def continue_with(self, path, cfg):
        self.continued = (path, cfg)
        return self.job

    def device(self):
        return {"device": "cpu", "name": "CPU (2 cores)", "free_gb": 4.0, "total_gb": 8.0}

    def chat_session(self, run_dir, lang="en"):
        raise self.chat_error

    def memory(self, cfg):
        return None


@pytest.fixture(scope="module")
def app():
    svc = FakeServices()
    demo = build_app(AppOptions(config=StudioConfig()), services=svc)
    fns = {f.api_name: f.fn for f in demo.fns.values() if f.api_name}
    return demo, svc, fns


def points(fig) -> int:
    return sum(len(tr.x or []) for tr in fig.data)


def test_no_job_shows_idle_once_then_skips(app):
    _, svc, fns = app
    svc.job = None
    status, _, fig, _, _, _, track = fns["poll_training"]("en", {})
    assert "No training yet" in status and points(fig) == 0
    again = fns["poll_training"]("en", track)
    assert all(x == gr.skip() for x in again[:4])


def test_the_curve_grows_by_the_rows_since_the_cursor(app, tmp_path):
    _, svc, fns = app
    svc.job = job = FakeJob(tmp_path)
    for s in (1, 2, 3):
        job.log(s, 3.0 - s * 0.1)
    status, progress, fig, _, _, _, track = fns["poll_training"]("en", {})
    assert track["cursor"] == 3 and points(fig) == 3 and "Training" in status and "3 / 10" in progress

    quiet = fns["poll_training"]("en", track)          # nothing new: nothing is redrawn
    assert all(x == gr.skip() for x in quiet[:4])

    job.log(4, 2.5)
    job.log(5, 2.4)
    _, _, fig, _, _, _, track = fns["poll_training"]("en", quiet[6])
    assert track["cursor"] == 5 and points(fig) == 5
    assert list(fig.data[0].y) == [2.9, 2.8, 2.7, 2.5, 2.4]

    # A reloaded page (empty state) draws the full curve at once.
    _, _, fig, _, _, _, fresh = fns["poll_training"]("en", {})
    assert fresh["cursor"] == 5 and points(fig) == 5


def test_a_new_run_resets_the_curve(app, tmp_path):
    _, svc, fns = app
    svc.job = FakeJob(tmp_path / "a")
    svc.job.log(1, 2.0)
    *_, track = fns["poll_training"]("en", {})
    svc.job = FakeJob(tmp_path / "b")
    _, _, fig, _, _, _, track = fns["poll_training"]("en", track)
    assert track["cursor"] == 0 and points(fig) == 0


def test_a_refused_start_is_a_plain_message(app):
    _, svc, fns = app
    svc.start_error = ConfigError("A training run is already going.")
    with pytest.warns(UserWarning):
        out = fns["start_training"]("en", *[w.value for w in app[0].studio_ctx.bind.inputs])
    assert "already going" in out and "Traceback" not in out
    svc.start_error = None


def test_a_bad_setting_is_refused_before_the_engine_is_asked(app):
    demo, svc, fns = app
    bind = demo.studio_ctx.bind
    values = [w.value for w in bind.inputs]
    values[bind.inputs.index(bind.widgets["training.learning_rate"][0])] = 5.0
    svc.start_error = AssertionError("the engine must not be reached")
    with pytest.warns(UserWarning):
        out = fns["start_training"]("en", *values)
    assert "learning rate" in out.lower()
    svc.start_error = None


def test_a_chat_failure_puts_the_question_back(app):
    demo, svc, fns = app
    svc.chat_error = ConfigError("The run has no adapter yet.")
    values = [w.value for w in demo.studio_ctx.bind.inputs]
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    with pytest.warns(UserWarning):
        outs = list(fns["chat"]("What is the warranty?", history, [], "/runs/x", "compare", "", "en", *values))
    base, tuned, box, status = outs[-1]
    assert base == history and tuned == [] and box == "What is the warranty?"
    assert "no adapter" in status


def test_chat_asks_for_a_run_first(app):
    demo, _, fns = app
    values = [w.value for w in demo.studio_ctx.bind.inputs]
    outs = list(fns["chat"]("hello", [], [], None, "compare", "", "en", *values))
    assert "train one" in outs[-1][3]


def test_event_names_for_automation_exist(app):
    _, _, fns = app
    assert {"load_model", "check_data", "upload_data", "start_training", "stop_training", "poll_training",
            "chat", "clear_chat", "list_runs", "overlay_runs", "export_adapter", "apply_preset",
            "save_preset", "apply_yaml"} <= set(fns)


def test_gpu_events_share_one_slot(app):
    demo, _, _ = app
    gpu = {f.api_name: f for f in demo.fns.values() if f.api_name in ("load_model", "start_training", "chat")}
    assert len(gpu) == 3
    assert {f.concurrency_id for f in gpu.values()} == {"gpu"}
    assert {f.concurrency_limit for f in gpu.values()} == {1}


def test_loss_figure_splits_train_and_eval():
    rows = [{"type": "train", "step": 1, "loss": 2.0}, {"type": "eval", "step": 1, "eval_loss": 2.1},
            {"type": "train", "step": 2, "loss": None}, {"type": "train", "step": 3, "loss": 1.5}]
    fig = plots.loss_figure(rows)
    assert [list(tr.x) for tr in fig.data] == [[1, 3], [1]]
    hist = plots.length_histogram([10, 20, 300], 256)
    assert any(getattr(s, "x0", None) == 256 for s in hist.layout.shapes)


def test_chat_during_training_is_refused_before_any_model_loads(tmp_path):
    class Busy(Services):
        def current_job(self):
            job = FakeJob(tmp_path)
            job.active = True
            return job

    from studio.errors import DeviceBusy
    with pytest.raises(DeviceBusy) as e:
        Busy().chat_session(str(tmp_path), "zh")
    assert "正在训练" in e.value.render("zh")[0]         # the app shows engine errors in its language


def test_continue_with_preference_data_trains_the_picked_method_from_the_chosen_run(app, tmp_path):
    demo, svc, fns = app
    svc.job = FakeJob(tmp_path / "dpo-run")
    event = next(f for f in demo.fns.values() if f.api_name == "continue_run")
    values = [c.value for c in event.inputs[3:]]       # the settings widgets as the page starts
    said = fns["continue_run"]("/runs/sft-1", "orpo", "en", *values)
    path, cfg = svc.continued
    assert path == "/runs/sft-1" and cfg.training.method == "orpo"
    assert said.startswith("orpo from sft-1 started as run-1") and "Train tab" in said
    assert fns["continue_run"](None, "dpo", "en", *values) == "Pick a run above first."


def test_the_judge_control_is_off_by_default_and_its_handler_passes_the_judge_to_the_service(app, monkeypatch, tmp_path):
    demo, svc, fns = app
    by_id = {getattr(b, "elem_id", None): b for b in demo.blocks.values()}
    assert by_id["runs-judge-on"].value is False and by_id["runs-judge-box"].visible is False
    assert "VERDICT: right or wrong" in by_id["runs-judge-prompt"].value
    assert "待评分的回答" in by_id["runs-judge-prompt-zh"].value
    calls = []

    def evaluate(paths_, prompts_file=None, judge=None):
        calls.append(judge)
        row = {"prompt": "Q?", "reference": "R.", "base": "a", "run": "b", "scores": {"base": None, "run": None}}
        yield row
        if judge:
            row["judge"] = {"base": {"verdict": "wrong", "reason": "says a", "raw": ""},
                            "run": {"verdict": "right", "reason": "says R", "raw": ""}}
            yield row

    monkeypatch.setattr(svc, "evaluate", evaluate)
    monkeypatch.setattr(svc, "eval_csv", lambda rows, path: tmp_path / "eval.csv")
    outs = list(fns["evaluate_runs"]([str(tmp_path)], None, "en", False, "default", ""))
    assert calls == [None] and "Judge" not in outs[-1][1]               # off: no judge, no column
    outs = list(fns["evaluate_runs"]([str(tmp_path)], None, "en", True, "hub", " Qwen/Qwen2.5-1.5B-Instruct "))
    assert calls[-1] == "Qwen/Qwen2.5-1.5B-Instruct"
    totals, table, csv = outs[-1]
    assert "Judge" in table and "✓" in table and "says R" in table and "✗" in table
    assert "**Judge:** **base** 0 of 1 right · **run** 1 of 1 right" in totals and csv.endswith("eval.csv")
    assert "…" in outs[0][1]                                            # waiting for the judge
    list(fns["evaluate_runs"]([str(tmp_path)], None, "zh", True, "default", "ignored"))
    assert calls[-1] == "default"
