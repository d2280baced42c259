"""Runs tab: every run of this workspace in a table, their loss curves overlaid with the settings
that differ between them, an evaluation set answered by the base and each chosen run, and for one run:
its config, Resume, Extend, "Use these settings" and exports (adapter zip, merged model, GGUF)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from studio.config import METHODS

from . import eval_table, plots, views
from .bindings import source_value, source_picker
from .common import GPU, guarded
from .i18n import t
from .services import Services

CONTINUE_METHODS = tuple(m for m in METHODS if m != "sft")    # what a finished run may be trained further with

JUDGE_SUGGESTED = "Qwen/Qwen2.5-7B-Instruct"   # an instruction model of a size that can follow the prompt


def export_choices() -> list[tuple]:
    """The engine's exports as the Radio's (label key, value) pairs."""
    return [(("runs.export_gguf", {"type": type_}) if kind == "gguf" else f"runs.export_{kind}", choice)
            for choice, kind, type_ in Services.export_choices()]


def build(ctx) -> SimpleNamespace:
    L = ctx.labels
    ui = SimpleNamespace()
    with gr.Tab(label=L("tab.runs"), id="runs", elem_id="tab-runs") as ui.tab:
        L.add(ui.tab, label="tab.runs")
        with gr.Row():
            ui.refresh = L.make(gr.Button, text="common.refresh", size="sm", scale=0, min_width=120,
                                elem_id="runs-refresh")
        # Empty tables start with their own column names (Gradio shows "1 2 3" for a table without any).
        ui.table = gr.Dataframe(views.runs_frame([], L.lang), interactive=False, wrap=True, max_height=320,
                                elem_id="runs-table")
        ui.select = L.make(gr.CheckboxGroup, label="runs.select", choices=[], elem_id="runs-select")
        ui.plot = L.make(gr.Plot, label="runs.plot", elem_id="runs-plot")
        ui.diff = L.make(gr.Dataframe, label="runs.diff", value=pd.DataFrame(columns=[t("runs.col_setting", L.lang)]),
                         interactive=False, wrap=True, max_height=240, elem_id="runs-diff")
        with gr.Row(equal_height=False):
            ui.eval_prompts = L.make(gr.File, label="runs.eval_prompts", file_types=[".jsonl", ".csv", ".tsv"],
                                     elem_id="runs-eval-prompts", scale=2)
            with gr.Column(scale=1):
                with gr.Row():
                    ui.eval_btn = L.make(gr.Button, text="runs.evaluate", elem_id="runs-eval-btn")
                    ui.eval_stop_btn = L.make(gr.Button, text="runs.eval_stop", variant="stop",
                                              elem_id="runs-eval-stop-btn")
                ui.eval_csv = L.make(gr.File, label="runs.eval_csv", interactive=False, elem_id="runs-eval-csv")
        # The optional judge: off by default; its model picked as the Model tab picks one, its prompt shown. The
        # built-in model is not suggested: asked to grade 24 demo answers it wrote no verdict line to any.
        ui.judge_on = L.make(gr.Checkbox, label="runs.judge_on", info="runs.judge_on_info", value=False,
                             elem_id="runs-judge-on")
        with gr.Column(visible=False, elem_id="runs-judge-box") as ui.judge_box:
            ui.judge_kind, ui.judge_source = source_picker(
                L, "model", JUDGE_SUGGESTED, elem="runs-judge-source", label="field.judge.source",
                kind_label="field.judge.kind", placeholder="placeholder.judge.source")
            with L.add(gr.Accordion(L("runs.judge_prompt"), open=False, elem_id="runs-judge-prompt-box"),
                       label="runs.judge_prompt"):
                L.make(gr.Markdown, text="runs.judge_prompt_note", elem_classes=["note"])
                # Textboxes, not Code: the prompt's long lines wrap instead of running off the box.
                with gr.Row(equal_height=False):
                    ui.judge_prompt = gr.Textbox(ctx.svc.judge_prompt("en"), lines=12, max_lines=20,
                                                 interactive=False, label="English", elem_id="runs-judge-prompt")
                    ui.judge_prompt_zh = gr.Textbox(ctx.svc.judge_prompt("zh"), lines=12, max_lines=20,
                                                    interactive=False, label="中文", elem_id="runs-judge-prompt-zh")
        ui.eval_totals = gr.Markdown("", elem_id="runs-eval-totals")
        with L.add(gr.Accordion(L("runs.eval_table"), open=True, elem_id="runs-eval-box"), label="runs.eval_table"):
            ui.eval_table = gr.HTML("", elem_id="runs-eval-table", max_height=640)
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                ui.open = L.make(gr.Dropdown, label="runs.open", choices=[], elem_id="runs-open")
                ui.config = L.make(gr.Code, label="runs.config", language="yaml", interactive=False, lines=12,
                                   max_lines=24, elem_id="runs-config")
            with gr.Column(scale=2):
                with gr.Row():
                    ui.resume_btn = L.make(gr.Button, text="runs.resume", elem_id="runs-resume-btn")
                    ui.use_btn = L.make(gr.Button, text="runs.use_settings", elem_id="runs-use-btn")
                with gr.Row():
                    ui.extend_steps = L.make(gr.Number, label="runs.extend_steps", value=30, precision=0, minimum=1,
                                             elem_id="runs-extend-steps")
                    ui.extend_btn = L.make(gr.Button, text="runs.extend", elem_id="runs-extend-btn")
                # SFT, then preference training: the data and settings of the Data and Settings tabs, the method
                # picked here, starting from the chosen run's adapter.
                with gr.Row():
                    ui.continue_method = L.make(gr.Dropdown, label="runs.continue_method", value="dpo",
                                                choices=list(CONTINUE_METHODS), elem_id="runs-continue-method",
                                                scale=1, min_width=120)
                    ui.continue_btn = L.make(gr.Button, text="runs.continue", elem_id="runs-continue-btn", scale=2)
                ui.action_status = gr.Markdown("", elem_id="runs-action-status")
                ui.export_btn = L.make(gr.Button, text="runs.export", elem_id="runs-export-btn")
                with gr.Row():
                    ui.export_kind = L.make(gr.Radio, label="runs.export_kind", value="merged",
                                            choices=export_choices(), elem_id="runs-export-kind")
                    ui.export_other = L.make(gr.Button, text="runs.export_other", elem_id="runs-export-other")
                ui.export_pick = L.make(gr.Markdown, text="runs.export_pick", elem_id="runs-export-pick")
                ui.export_check = L.make(gr.Checkbox, label="runs.export_check", value=False,
                                         elem_id="runs-export-check")
                ui.export = L.make(gr.File, label="runs.export_file", interactive=False, elem_id="runs-export")
    return ui


def wire(ctx) -> None:
    ui, svc, B = ctx.runs, ctx.svc, ctx.bind

    @guarded(4)
    def list_runs(lang, selected=None, opened=None):
        """The runs table; the overlay and the single-run pickers keep what is still there."""
        runs = svc.all_runs()
        choices = [(views.run_label(r, lang), r["path"]) for r in runs]
        paths = {p for _, p in choices}
        keep = [p for p in (selected or []) if p in paths]
        if not keep and runs:
            keep = [runs[0]["path"]]
        opened = opened if opened in paths else (runs[0]["path"] if runs else None)
        return (views.runs_frame(runs, lang), gr.update(choices=choices, value=keep),
                gr.update(choices=choices, value=opened), svc.run_config_text(opened) if opened else "")

    outs = [ui.table, ui.select, ui.open, ui.config]
    ui.refresh.click(list_runs, [ctx.lang, ui.select, ui.open], outs, api_name="list_runs", show_progress="hidden")
    ui.tab.select(list_runs, [ctx.lang, ui.select, ui.open], outs, api_visibility="private",
                  show_progress="hidden")
    ctx.on_load.append((list_runs, [ctx.lang, ui.select, ui.open], outs))

    @guarded(1)
    def overlay(selected, lang):
        """The loss curves of the selected runs on one chart."""
        curves = {svc.run_name(p): svc.run_metrics(p) for p in (selected or [])}
        return plots.overlay_figure(curves, lang)

    ui.select.change(overlay, [ui.select, ctx.lang], ui.plot, api_name="overlay_runs", show_progress="hidden")

    @guarded(1)
    def differences(selected, lang):
        """The settings that are not the same in all the selected runs."""
        selected = selected or []
        rows = svc.settings_differences(selected)
        return pd.DataFrame(rows, columns=[t("runs.col_setting", lang), *[svc.run_name(p) for p in selected]])

    ui.select.change(differences, [ui.select, ctx.lang], ui.diff, api_name="run_differences", show_progress="hidden")
    # A language switch redraws them in the new words (the chart's axes, the table's first column).
    ctx.on_lang.append((overlay, [ui.select, ctx.lang], ui.plot))
    ctx.on_lang.append((differences, [ui.select, ctx.lang], ui.diff))

    ui.judge_on.change(lambda on: gr.update(visible=bool(on)), ui.judge_on, ui.judge_box, queue=False,
                       show_progress="hidden", api_visibility="private")

    def shown(rows, lang, judging=False):
        totals, judges = svc.eval_totals(rows), svc.eval_judge_totals(rows)
        return (eval_table.totals_line(totals, lang, judges),
                eval_table.table_html(rows, totals, lang, judges, judging=judging))

    @guarded(3)
    def evaluate(selected, prompts_file, lang, judge_on=False, judge_kind="default", judge_text=""):
        """Answer the prompts with the base and each selected run, scored; rows stream in as they are ready.
        ``judge_on``: then the judge model (kind and path / id, as the Model tab picks one) grades each answer."""
        judge = source_value("model", judge_kind or "default", judge_text) if judge_on else None
        rows = []
        for row in svc.evaluate(selected or [], prompts_file, judge=judge):
            if "judge" not in row:      # a judged row is one already shown, now with its verdicts
                rows.append(row)
            yield *shown(rows, lang, judging=bool(judge)), None
        csv = svc.eval_csv(rows, Path(selected[0]) / "eval.csv")
        yield *shown(rows, lang), str(csv)

    ui.eval_btn.click(evaluate, [ui.select, ui.eval_prompts, ctx.lang, ui.judge_on, ui.judge_kind, ui.judge_source],
                      [ui.eval_totals, ui.eval_table, ui.eval_csv], api_name="evaluate_runs", **GPU)

    @guarded(2)
    def last_scores(path, lang):
        """The opened run's last scored evaluation (the check after training, or an Evaluate)."""
        rows, _ = svc.run_scores(path)
        return shown(rows, lang) if rows else (shown(rows, lang)[0], "")

    ui.open.change(last_scores, [ui.open, ctx.lang], [ui.eval_totals, ui.eval_table], api_name="run_scores",
                   show_progress="hidden")
    # Not queued behind the evaluation it stops: the table keeps the rows answered so far.
    ui.eval_stop_btn.click(lambda: svc.eval_stop.set(), None, None, queue=False, api_name="stop_evaluation")

    @guarded(1)
    def resume(path, lang):
        """Resume the chosen run from its last complete checkpoint."""
        _, plan = svc.resume_run(path)
        return t("runs.resumed", lang).format(name=plan.run.name, step=plan.step)

    ui.resume_btn.click(resume, [ui.open, ctx.lang], ui.action_status, api_name="resume_run", **GPU)

    @guarded(1)
    def extend(path, steps, lang):
        """Train the chosen run further, in a new run folder starting from its adapter."""
        svc.extend_run(path, steps)
        return t("runs.extended", lang).format(name=svc.run_name(path))

    ui.extend_btn.click(extend, [ui.open, ui.extend_steps, ctx.lang], ui.action_status, api_name="extend_run",
                        **GPU)

    @guarded(1)
    def continue_with(path, method, lang, *values):
        """Train the chosen run further with another method (DPO on preference data...), from its adapter."""
        from studio.config import merge
        if not path:
            return t("runs.pick_first", lang)
        cfg = merge(B.to_config(values), {"training": {"method": method}})
        job = svc.continue_with(path, cfg)
        return t("runs.continued", lang, name=svc.run_name(path), method=method, new=job.status()["name"])

    B.named(continue_with, "path", "method", "lang")
    ui.continue_btn.click(continue_with, [ui.open, ui.continue_method, ctx.lang] + B.inputs, ui.action_status,
                          api_name="continue_run", **GPU)

    @guarded(len(B.inputs) + 1)
    def use_settings(path, lang, module_choices=None):
        """Load the chosen run's config into the Model, Data and Settings tabs."""
        from studio.config import merge
        # A new run gets a new folder: the old run's own folder is not carried over.
        cfg = merge(svc.run_config(path), {"training": {"output_dir": ""}})
        return (t("runs.settings_loaded", lang), *B.to_updates(cfg, module_choices=module_choices))

    ui.use_btn.click(use_settings, [ui.open, ctx.lang, ctx.model.module_choices], [ui.action_status] + B.inputs,
                     api_name="use_run_settings")

    @guarded(2)
    def export_other(path, kind, lang, check=False):
        """Export the chosen run as a merged model (zipped folder) or a GGUF file (with its Modelfile);
        ``check``: then ask the GGUF the evaluation questions in llama.cpp beside the trained model."""
        out = svc.export_run(path, kind)
        shown = out
        if out.is_dir():
            shown = svc.zip_export(out)
        if out.suffix != ".gguf":
            return str(shown), t("runs.export_done", lang).format(path=out)
        status = t("runs.export_gguf_done", lang).format(path=out, size=views.file_size(out.stat().st_size),
                                                         modelfile=out.with_name(out.stem + ".Modelfile"))
        if check:
            status += "\n\n" + views.export_check(svc.check_export(path, out), lang)
        return str(shown), status

    ui.export_other.click(export_other, [ui.open, ui.export_kind, ctx.lang, ui.export_check],
                          [ui.export, ui.action_status], api_name="export_run", **GPU)

    @guarded(1)
    def open_config(path, lang):
        return svc.run_config_text(path) if path else ""

    ui.open.change(open_config, [ui.open, ctx.lang], ui.config, api_name="run_config", show_progress="hidden")

    @guarded(1)
    def export_adapter(path, lang):
        """The chosen run's adapter folder as a zip file to download."""
        return str(svc.export_adapter(path, lang))

    ui.export_btn.click(export_adapter, [ui.open, ctx.lang], ui.export, api_name="export_adapter")
