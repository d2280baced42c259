"""Model tab: where the base model comes from, how it is loaded, and what it is.

"Check model" loads the model once to describe it (architecture, size, chat template, linear
layers, memory estimate) and then frees it: training loads the model itself, so the first click
on Start works without visiting this tab.
"""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from . import views
from .bindings import ALL_LINEAR, COMMON_MODULES
from .common import GPU, guarded
from .i18n import t


def build(ctx) -> SimpleNamespace:
    L, B = ctx.labels, ctx.bind
    ui = SimpleNamespace()
    with gr.Tab(label=L("tab.model"), id="model", elem_id="tab-model") as ui.tab:
        L.add(ui.tab, label="tab.model")
        L.make(gr.Markdown, text="intro.model", elem_classes=["intro"])
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                ui.kind, ui.source = B.widget("model", "source")
                has_gpu = bool(ctx.svc.gpus())
                ui.quant = B.widget("model", "quantization")
                # Without a GPU the choice above is not what happens: say what a CPU run does.
                cpu_bf16 = not has_gpu and bool(ctx.svc.device().get("bf16"))
                ui.cpu_note = L.make(gr.Markdown, text="model.cpu_precision_bf16" if cpu_bf16 else "model.cpu_precision",
                                     visible=not has_gpu,
                                     elem_id="model-cpu-note", elem_classes=["note"])
                with gr.Row():
                    ui.double_quant = B.widget("model", "double_quant",
                                               visible=ctx.initial.model.quantization.startswith("4bit"))
                    ui.dtype = B.widget("model", "compute_dtype")
                ui.trust = B.widget("model", "trust_remote_code")
                with gr.Row(visible=has_gpu):   # how many of this machine's GPUs train the run, and how
                    ui.gpus = B.widget("training", "gpus")        # they share it (nothing to choose without one)
                    ui.strategy = B.widget("training", "strategy")
                ui.trust_warning = L.make(gr.Markdown, text="warn.remote_code", visible=False,
                                          elem_id="remote-code-warning", elem_classes=["warning-box"])
                ui.load_btn = L.make(gr.Button, text="model.load", variant="primary", elem_id="model-load-btn")
                L.make(gr.Markdown, text="model.load_note", elem_classes=["note"])
            with gr.Column(scale=2):
                ui.device = gr.Markdown(elem_id="model-device", elem_classes=["card"])
                ui.gpus_found = gr.Markdown(elem_id="model-gpus", elem_classes=["card"], visible=has_gpu)
                ui.summary = gr.Markdown(L("model.not_loaded"), elem_id="model-summary", elem_classes=["card"])
                ui.memory = gr.Markdown("", elem_id="model-memory", elem_classes=["card"], visible=False)
        # This browser session's target-module choices: the checked model's linear layers (other tabs
        # read it when they redraw the modules). Per session: two people check two different models.
        ui.module_choices = gr.State(list(COMMON_MODULES))
    return ui


def wire(ctx) -> None:
    ui, B, svc = ctx.model, ctx.bind, ctx.svc
    modules = B.widgets["lora.target_modules"][0]

    ui.trust.change(lambda on: gr.update(visible=bool(on)), ui.trust, ui.trust_warning,
                    queue=False, show_progress="hidden", api_visibility="private")
    ui.quant.change(lambda q: gr.update(visible=str(q).startswith("4bit")), ui.quant, ui.double_quant,
                    queue=False, show_progress="hidden", api_visibility="private")

    @guarded(4)
    def load_model(lang, choices, *values):
        """Load the chosen base model, describe it, update the target-module choices, free it again."""
        cfg = B.to_config(values)
        summary = svc.inspect_model(cfg.model)
        choices = list(summary.get("linear_names") or choices)
        current = B.to_overrides(values)["lora"]["target_modules"]
        sel = [ALL_LINEAR] if current == ALL_LINEAR else [m for m in current if m in choices]
        mem = views.memory(svc.memory(cfg), lang)
        return (views.model_summary(summary, lang), gr.update(value=mem, visible=bool(mem)),
                gr.update(choices=[ALL_LINEAR] + choices, value=sel or [ALL_LINEAR]), choices)

    B.named(load_model, "lang", "module_choices")
    ui.load_btn.click(load_model, [ctx.lang, ui.module_choices] + B.inputs,
                      [ui.summary, ui.memory, modules, ui.module_choices], api_name="load_model", **GPU)

    @guarded(3)
    def describe(lang):
        """Device, the GPUs found and (if checked before, also from another tab or before a reload) the
        model summary."""
        summary = (t("model.not_loaded", lang) if svc.last_summary is None
                   else views.model_summary(svc.last_summary, lang))
        return views.device(svc.device(), lang), views.gpus_found(svc.gpus(), lang), summary

    shown = [ui.device, ui.gpus_found, ui.summary]
    ctx.on_load.append((describe, [ctx.lang], shown))
    ctx.on_lang.append((describe, [ctx.lang], shown))
