"""Data tab: choose or upload the training data and see exactly what the model will learn from.

Shows the detected format (with column mapping when it is unknown), the problems by row number,
a paged table of the raw rows, one example as the exact training text with the loss-carrying
tokens highlighted, the token-length histogram with the max-length cut, and the train/validation split.
"""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pandas as pd

from studio.config import merge
from studio.errors import DataError

from . import pair_view, plots, views
from .common import guarded
from .i18n import TEXT, t
from .services import Services

PAGE_SIZE = 20
FILE_TYPES = list(Services.data_extensions())


def build(ctx) -> SimpleNamespace:
    L, B = ctx.labels, ctx.bind
    ui = SimpleNamespace()
    with gr.Tab(label=L("tab.data"), id="data", elem_id="tab-data") as ui.tab:
        L.add(ui.tab, label="tab.data")
        L.make(gr.Markdown, text="intro.data", elem_classes=["intro"])
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                ui.kind, ui.file = B.widget("data", "file")
                ui.upload = L.make(gr.File, label="data.upload", file_types=FILE_TYPES, file_count="single",
                                   elem_id="data-upload")
                ui.format = B.widget("data", "format")
                ui.encoding = B.widget("data", "encoding")
                with L.add(gr.Accordion(L("data.mapping"), open=False, elem_id="data-mapping"),
                           label="data.mapping") as ui.mapping:
                    ui.prompt_col = B.widget("data", "prompt_column")
                    ui.answer_col = B.widget("data", "answer_column")
                    ui.system_col = B.widget("data", "system_column")
                ui.template = B.widget("data", "template")
                ui.train_on = B.widget("data", "train_on")
                with gr.Row():
                    ui.validation = B.widget("data", "validation")
                    ui.max_rows = B.widget("data", "max_rows")
                ui.check_btn = L.make(gr.Button, text="data.check", variant="primary", elem_id="data-check-btn")
            with gr.Column(scale=3, min_width=360):
                ui.summary = gr.Markdown(L("data.not_checked"), elem_id="data-summary", elem_classes=["card"])
                ui.problems = L.make(gr.Dataframe, label="data.problems", headers=["row", "problem"],
                                     interactive=False, visible=False, elem_id="data-problems", max_height=220,
                                     wrap=True)
                ui.hist = L.make(gr.Plot, label="data.histogram", elem_id="data-histogram")
        with L.add(gr.Accordion(L("data.formatted"), open=True, elem_id="data-formatted-box"),
                   label="data.formatted"):
            with gr.Row():
                ui.example = L.make(gr.Number, label="data.example", value=1, precision=0, minimum=1,
                                    elem_id="data-example", scale=0, min_width=160)
                ui.example_info = gr.Markdown("", elem_id="data-example-info")
            ui.formatted = L.make(gr.HighlightedText, label="data.formatted_label", elem_id="data-formatted",
                                  color_map={"loss": "#bbf7d0"}, combine_adjacent=True, show_legend=True,
                                  show_inline_category=False)
            # A preference file: the example's prompt with its chosen and rejected answers side by side.
            ui.pair = gr.HTML("", elem_id="data-pair", visible=False)
        with L.add(gr.Accordion(L("data.raw"), open=False, elem_id="data-raw-box"), label="data.raw"):
            with gr.Row():
                ui.prev_btn = L.make(gr.Button, text="data.prev", size="sm", scale=0, min_width=90)
                ui.page = L.make(gr.Number, label="data.page", value=1, precision=0, minimum=1, scale=0,
                                 min_width=120, elem_id="data-page")
                ui.next_btn = L.make(gr.Button, text="data.next", size="sm", scale=0, min_width=90)
                ui.page_info = gr.Markdown("")
            ui.rows = gr.Dataframe(pd.DataFrame(columns=[t("data.col_row", L.lang)]), interactive=False, wrap=True,
                                   max_height=420, elem_id="data-rows")
    return ui


def not_checked_words(current: str, lang: str):
    """The summary's 'not checked yet' in the new language; a check's report stays as it is."""
    if current in TEXT["data.not_checked"]:
        return t("data.not_checked", lang)
    return gr.skip()


def wire(ctx) -> None:
    ui, B, svc = ctx.data, ctx.bind, ctx.svc
    ctx.on_lang.append((not_checked_words, [ui.summary, ctx.lang], ui.summary))
    cols = [ui.prompt_col, ui.answer_col, ui.system_col]
    outputs = [ui.summary, ui.problems, ui.hist, ui.rows, ui.page, ui.page_info, ui.mapping,
               *cols, ui.format, ui.example, ui.example_info, ui.formatted, ui.pair]

    def report_outputs(cfg, lang):
        report = svc.inspect_data(cfg)
        mapping = report.suggested_mapping or {}
        fmt_update = gr.skip()
        if report.format == "unknown" and report.columns:
            # A table of unknown shape: switch to the column mapping, with the columns the engine suggests
            # (if any), so the next check - or this one, when both are suggested - reads it.
            fmt_update = "mapping"
            cfg = merge(cfg, {"data": {"format": "mapping",
                                       "prompt_column": cfg.data.prompt_column or mapping.get("prompt", ""),
                                       "answer_column": cfg.data.answer_column or mapping.get("answer", ""),
                                       "system_column": cfg.data.system_column or mapping.get("system", "")}})
            if cfg.data.prompt_column and cfg.data.answer_column:
                report = svc.inspect_data(cfg)
        col_choices = [""] + list(report.columns)
        known = report.format not in ("unknown", "mapping") and report.rows > 0
        stats = report.token_stats or {}
        hist = (plots.length_histogram(stats.get("lengths") or [], cfg.data.max_length, lang)
                if stats.get("lengths") else None)
        table, pg, page_text = views.rows_page(svc.records(cfg.data.file, cfg.data.encoding), 1, PAGE_SIZE, lang)
        current = {"prompt": cfg.data.prompt_column, "answer": cfg.data.answer_column,
                   "system": cfg.data.system_column}
        col_updates = [gr.update(choices=col_choices, value=current[k] or mapping.get(k, "") or "")
                       for k in ("prompt", "answer", "system")]
        segments, info = _example(cfg, 1, lang)
        shown = max(len(report.preview_marked), len(getattr(report, "preview_pairs", None) or []))
        return (views.data_summary(report, cfg.data, lang),
                gr.update(value=views.problems_frame(report.problems, lang), visible=bool(report.problems)),
                hist, table, pg, page_text, gr.update(open=not known), *col_updates, fmt_update,
                gr.update(value=1, maximum=max(1, shown)), info, segments, _pair(cfg, 1, lang))

    def _pair(cfg, n, lang):
        """The n-th previewed pair as HTML, hidden when the data has none."""
        pair = svc.pair_example(cfg, int(n or 1) - 1)
        return gr.update(value=pair_view.pair_html(pair, lang), visible=pair is not None)

    def _example(cfg, n, lang):
        try:
            ex = svc.formatted_example(cfg, int(n or 1) - 1)
        except Exception as e:  # the preview is a bonus; its failure must not hide the report
            return None, t("data.example_failed", lang, detail=str(e))
        if ex is None:
            return None, ""
        return ex["segments"], views.example_info(ex, lang)

    @guarded(len(outputs))
    def check_data(lang, *values):
        """Read the chosen data, detect its format, list problems, tokenize it for the preview."""
        return report_outputs(B.to_config(values), lang)

    B.named(check_data, "lang")
    ui.check_btn.click(check_data, [ctx.lang] + B.inputs, outputs, api_name="check_data")
    for col in (ui.prompt_col, ui.answer_col, ui.encoding):   # picking a column or an encoding re-checks at once
        col.input(check_data, [ctx.lang] + B.inputs, outputs, api_visibility="private")

    @guarded(len(outputs) + 2)
    def upload_data(file, lang, *values):
        """Keep an uploaded file in the workspace, select it and check it."""
        if not file:
            return tuple(gr.skip() for _ in range(len(outputs) + 2))
        saved = svc.save_upload(file)
        values = list(values)
        i = B.inputs.index(ui.kind)
        values[i], values[i + 1] = "file", str(saved)
        try:
            outputs_now = report_outputs(B.to_config(values), lang)
        except Exception as e:
            if isinstance(e, DataError):   # the file cannot be read at all: do not keep it
                svc.discard_upload(saved)
            raise
        return ("file", gr.update(value=str(saved), visible=True), *outputs_now)

    B.named(upload_data, "file", "lang")
    ui.upload.upload(upload_data, [ui.upload, ctx.lang] + B.inputs, [ui.kind, ui.file] + outputs,
                     api_name="upload_data")

    @guarded(3)
    def show_example(n, lang, *values):
        cfg = B.to_config(values)
        segments, info = _example(cfg, n, lang)
        return segments, info, _pair(cfg, n, lang)

    B.named(show_example, "example", "lang")
    ui.example.change(show_example, [ui.example, ctx.lang] + B.inputs, [ui.formatted, ui.example_info, ui.pair],
                      api_name="show_example", trigger_mode="always_last", show_progress="hidden")

    @guarded(3)
    def page(n, step, lang, *values):
        cfg = B.to_config(values)
        return views.rows_page(svc.records(cfg.data.file, cfg.data.encoding), int(n or 1) + step, PAGE_SIZE, lang)

    for btn, step in ((ui.prev_btn, -1), (ui.next_btn, 1)):
        btn.click(lambda n, lang, *v, s=step: page(n, s, lang, *v), [ui.page, ctx.lang] + B.inputs,
                  [ui.rows, ui.page, ui.page_info], api_visibility="private", show_progress="hidden")
    ui.page.submit(lambda n, lang, *v: page(n, 0, lang, *v), [ui.page, ctx.lang] + B.inputs,
                   [ui.rows, ui.page, ui.page_info], api_visibility="private", show_progress="hidden")
