"""The studio's Gradio app: a header with the language switch and six tabs.

``build_app(options)`` returns the Blocks; ``launch.py`` queues and serves it. Each tab module
has ``build(ctx)`` (layout) and ``wire(ctx)`` (events); wiring runs after every tab exists, since
events cross tabs (loading a model fills the Settings tab's target modules, Start reads every tab).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from studio.config import StudioConfig

from . import tab_chat, tab_data, tab_model, tab_runs, tab_settings, tab_train
from .bindings import Bindings
from .i18n import DEFAULT_LANG, LANGS, Labels
from .services import Services

TABS = (tab_model, tab_data, tab_settings, tab_train, tab_chat, tab_runs)
CSS_PATH = Path(__file__).with_name("style.css")


@dataclass
class AppOptions:
    config: StudioConfig = field(default_factory=StudioConfig)   # what the widgets show at first
    preset: str | None = None                                     # the preset that config came from
    lang: str = DEFAULT_LANG


def build_app(options: AppOptions | None = None, services: Services | None = None) -> gr.Blocks:
    options = options or AppOptions()
    labels = Labels(options.lang)
    ctx = SimpleNamespace(options=options, initial=options.config, labels=labels,
                          bind=Bindings(options.config, labels), svc=services or Services(),
                          on_load=[], on_lang=[])
    with gr.Blocks(title="Fine-tune Studio", fill_width=False) as demo:
        with gr.Row(elem_id="header", equal_height=True):
            labels.make(gr.Markdown, text="app.title", elem_id="app-title")
            ctx.lang = gr.Radio(choices=[(v, k) for k, v in LANGS.items()], value=labels.lang, show_label=False,
                                elem_id="lang-select", container=False, scale=0, min_width=220)
        saved_lang = gr.BrowserState(labels.lang, storage_key="finetune-studio-lang")
        with gr.Tabs(elem_id="tabs") as ctx.tabs:
            for mod in TABS:
                setattr(ctx, mod.__name__.rsplit("_", 1)[1], mod.build(ctx))
        for mod in TABS:
            mod.wire(ctx)

        # Plotly sizes a chart drawn in a hidden tab to nothing; a resize event once the tab shows redraws it.
        ctx.tabs.select(None, None, None, js="() => { setTimeout(() => window.dispatchEvent(new Event('resize')), 60); }")
        # Switching language relabels every registered component; values stay as the user left them.
        ctx.lang.change(labels.updates, ctx.lang, labels.components, queue=False, show_progress="hidden",
                        api_visibility="private")
        ctx.lang.change(lambda lang: lang, ctx.lang, saved_lang, queue=False, api_visibility="private")
        for fn, inputs, outputs in ctx.on_lang:
            ctx.lang.change(fn, inputs, outputs, show_progress="hidden", api_visibility="private")
        demo.load(lambda lang: lang if lang in LANGS else gr.skip(), saved_lang, ctx.lang,
                  api_visibility="private")
        for fn, inputs, outputs in ctx.on_load:
            demo.load(fn, inputs, outputs, show_progress="hidden", api_visibility="private")
    demo.studio_ctx = ctx  # for tests: the labels, bindings and services behind this app
    return demo


def css() -> str:
    return CSS_PATH.read_text(encoding="utf-8")
