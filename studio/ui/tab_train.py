"""Train tab: Start / Stop, the job's state, progress and numbers, the live loss chart and the log tail.

The training runs in the job manager's thread, not in a request: Start returns at once. A
``gr.Timer`` ticks about once a second and reads the job's metric rows since this page's cursor
(kept in ``gr.State``), so no event holds a queue slot for the whole run. A new page starts with
cursor 0 and therefore draws the running job's full curve.
"""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from . import eval_table, method_plot, plots, views
from .common import GPU, guarded, warn
from .i18n import t

TICK_S = 1.0


def build(ctx) -> SimpleNamespace:
    L, B = ctx.labels, ctx.bind
    ui = SimpleNamespace()
    with gr.Tab(label=L("tab.train"), id="train", elem_id="tab-train") as ui.tab:
        L.add(ui.tab, label="tab.train")
        L.make(gr.Markdown, text="intro.train", elem_classes=["intro"])
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                ui.name = B.widget("", "name")
            with gr.Column(scale=2, min_width=300):
                with gr.Row():
                    ui.start_btn = L.make(gr.Button, text="train.start", variant="primary", elem_id="start-btn",
                                          size="lg", min_width=140)
                    ui.stop_btn = L.make(gr.Button, text="train.stop", variant="stop", elem_id="stop-btn",
                                         size="lg", min_width=100)
        ui.memory = gr.Markdown("", elem_id="train-memory", elem_classes=["card"], visible=False)
        ui.status = gr.Markdown(L("train.idle"), elem_id="train-status", elem_classes=["card", "status"])
        ui.progress = gr.HTML(views.progress_html(None, L.lang), elem_id="train-progress")
        ui.scores = gr.HTML("", elem_id="train-scores", max_height=520)
        ui.plot = L.make(gr.Plot, label="train.plot", elem_id="loss-plot")
        # Rewards, margins and the share of pairs won: only for a method that logs more than the loss.
        ui.method_plot = L.make(gr.Plot, label="train.method_plot", elem_id="method-plot", visible=False)
        with L.add(gr.Accordion(L("train.log"), open=False, elem_id="train-log-box"), label="train.log"):
            ui.log = gr.Textbox(lines=12, max_lines=12, interactive=False, show_label=False, elem_id="train-log",
                                autoscroll=True)
        ui.track = gr.State({})
        ui.timer = gr.Timer(TICK_S)
    return ui


def wire(ctx) -> None:
    ui, B, svc = ctx.train, ctx.bind, ctx.svc

    def start_training(lang, *values):
        """Start a run with the settings shown (the model and data load inside the run)."""
        try:
            cfg = B.to_config(values)
            # Refused here, before the engine is asked; the manager's own check finds it already done.
            cfg.validate(svc.linear_names(cfg.model))
            job = svc.start(cfg)
        except Exception as e:  # refused before anything ran: say why, keep every field as it is
            return views.status_error(warn(e, lang), lang)
        for w in svc.warnings(cfg):    # allowed, but probably not what was meant (e.g. past the model's context)
            gr.Warning(w, duration=15)
        return views.job_status(job.status(), lang)

    B.named(start_training, "lang")
    ui.start_btn.click(start_training, [ctx.lang] + B.inputs, ui.status, api_name="start_training", **GPU)

    def stop_training(lang):
        """Ask the running job to stop; it saves the adapter trained so far."""
        job = svc.stop()
        if job is None:
            gr.Info(t("train.nothing_to_stop", lang))
            return gr.skip()
        return views.job_status(job.status(), lang)

    # Not on the GPU slot: stopping must never wait behind the work it stops.
    ui.stop_btn.click(stop_training, ctx.lang, ui.status, api_name="stop_training", concurrency_limit=None)

    @guarded(7)     # every output of poll_outputs, the cursor state included
    def poll_training(lang, track):
        """New metric rows of the current job since this page's cursor; the chart is redrawn only when
        something changed. Returns status, progress, chart, log tail and the updated cursor state."""
        job = svc.current_job()
        if job is None:
            if track.get("run") == "":
                return (gr.skip(),) * 6 + (track,)
            return (t("train.idle", lang), views.progress_html(None, lang), plots.loss_figure([], lang),
                    gr.update(visible=False), "", "", {"run": ""})
        status = job.status()
        key = status["run_dir"]
        if track.get("run") != key or track.get("lang") != lang:
            track = {"run": key, "cursor": 0, "rows": [], "sig": None, "lang": lang}
        rows, cursor = job.metrics.since(track["cursor"])
        track = {**track, "cursor": cursor, "rows": track["rows"] + rows}
        sig = (status["state"], status["message"], status["progress"].get("step"), cursor)
        if sig == track["sig"]:
            return (gr.skip(),) * 6 + (track,)
        track["sig"] = sig
        last = track["rows"][-1] if track["rows"] else None
        train_rows = [r for r in track["rows"] if r.get("type") == "train"]
        redraw = bool(rows) or cursor == 0
        total = status["progress"].get("total_steps")
        plot = plots.loss_figure(track["rows"], lang, total) if redraw else gr.skip()
        return (views.job_status(status, lang),
                views.progress_html(status, lang, train_rows[-1] if train_rows else last),
                plot, method_chart(job, track["rows"], lang, total) if redraw else gr.skip(),
                svc.log_tail(key), scores_table(status, lang), track)

    def method_chart(job, rows: list, lang: str, total):
        """The method's own curves (DPO's rewards and margins...), hidden for a method that logs only the loss."""
        names = svc.method_metrics(job.cfg.training.method)
        if not method_plot.plotted(rows, names):
            return gr.update(visible=False)
        return gr.update(value=method_plot.method_figure(rows, names, lang, total), visible=True)

    def scores_table(status: dict, lang: str) -> str:
        """The held-out questions the finished run was asked, scored (empty while it trains)."""
        if not (status.get("result") or {}).get("scores"):
            return ""
        rows, totals = svc.run_scores(status["run_dir"])
        return (f'<details open><summary><b>{t("train.scores_box", lang)}</b></summary>'
                f'{eval_table.table_html(rows, totals, lang)}</details>') if rows else ""

    poll_outputs = [ui.status, ui.progress, ui.plot, ui.method_plot, ui.log, ui.scores, ui.track]
    ui.timer.tick(poll_training, [ctx.lang, ui.track], poll_outputs, api_name="poll_training",
                  show_progress="hidden", concurrency_limit=None)
    ctx.on_load.append((poll_training, [ctx.lang, ui.track], poll_outputs))
