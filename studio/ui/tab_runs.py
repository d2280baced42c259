"""Runs tab: every run of this workspace in a table, their loss curves overlaid, a run's config,
and its adapter exported as a zip."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from . import plots, views
from .common import guarded


def build(ctx) -> SimpleNamespace:
    L = ctx.labels
    ui = SimpleNamespace()
    with gr.Tab(label=L("tab.runs"), id="runs", elem_id="tab-runs") as ui.tab:
        L.add(ui.tab, label="tab.runs")
        with gr.Row():
            ui.refresh = L.make(gr.Button, text="common.refresh", size="sm", scale=0, min_width=120,
                                elem_id="runs-refresh")
        ui.table = gr.Dataframe(interactive=False, wrap=True, max_height=320, elem_id="runs-table")
        ui.select = L.make(gr.CheckboxGroup, label="runs.select", choices=[], elem_id="runs-select")
        ui.plot = L.make(gr.Plot, label="runs.plot", elem_id="runs-plot")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                ui.open = L.make(gr.Dropdown, label="runs.open", choices=[], elem_id="runs-open")
                ui.config = L.make(gr.Code, label="runs.config", language="yaml", interactive=False, lines=12,
                                   max_lines=24, elem_id="runs-config")
            with gr.Column(scale=2):
                ui.export_btn = L.make(gr.Button, text="runs.export", elem_id="runs-export-btn")
                ui.export = L.make(gr.File, label="runs.export_file", interactive=False, elem_id="runs-export")
    return ui


def wire(ctx) -> None:
    ui, svc = ctx.runs, ctx.svc

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
    def open_config(path, lang):
        return svc.run_config_text(path) if path else ""

    ui.open.change(open_config, [ui.open, ctx.lang], ui.config, api_name="run_config", show_progress="hidden")

    @guarded(1)
    def export_adapter(path, lang):
        """The chosen run's adapter folder as a zip file to download."""
        return str(svc.export_adapter(path, lang))

    ui.export_btn.click(export_adapter, [ui.open, ctx.lang], ui.export, api_name="export_adapter")
