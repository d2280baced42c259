"""Settings tab: presets, LoRA and training settings, and the exact config as YAML and as a command.

A preset fills every field except the model and the data the user picked in their own tabs.
The YAML view is editable: "Apply YAML" sets every widget from it, so a config file from
``studio train --config`` and the studio stay one and the same thing.
"""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from studio.config import StudioConfig
from studio.errors import ConfigError

from . import views
from .common import guarded, warn
from .i18n import t
from .services import Services

KEEP_ON_PRESET = ("model.source", "data.file")   # chosen in the Model and Data tabs, not by a recipe
PREFERENCE_METHODS = ("dpo", "kto", "orpo", "simpo")    # the methods the preference section's settings are for


def preset_choices() -> list[str]:
    return [p.name for p in Services.presets()]


def build(ctx) -> SimpleNamespace:
    L, B = ctx.labels, ctx.bind
    ui = SimpleNamespace()
    with gr.Tab(label=L("tab.settings"), id="settings", elem_id="tab-settings") as ui.tab:
        L.add(ui.tab, label="tab.settings")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                ui.preset = L.make(gr.Dropdown, label="settings.preset", choices=preset_choices(),
                                   value=ctx.options.preset, info="settings.preset_info", elem_id="settings-preset")
                ui.preset_summary = gr.Markdown(views.preset_summary(ctx.options.preset, L.lang),
                                                elem_id="settings-preset-summary")
            with gr.Column(scale=2, min_width=260):
                ui.save_name = L.make(gr.Textbox, label="settings.save_name",
                                      placeholder="settings.save_placeholder", elem_id="settings-save-name")
                ui.save_btn = L.make(gr.Button, text="settings.save", size="sm", elem_id="settings-save-btn")
                ui.save_pending = gr.State("")     # the name the last save warned exists: saving it again replaces
        with gr.Row(equal_height=False):
            with gr.Column(scale=4):
                ui.memory = gr.Markdown("", elem_id="settings-memory", elem_classes=["card"], visible=False)
            with gr.Column(scale=1, min_width=200, visible=bool(ctx.svc.gpus())):   # a GPU's button
                ui.fit_btn = L.make(gr.Button, text="settings.fit", size="sm", elem_id="settings-fit-btn")
                ui.fit_note = gr.Markdown("", elem_id="settings-fit-note")
        with L.add(gr.Accordion(L("settings.method"), open=True, elem_id="settings-method-box"),
                   label="settings.method"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=2, min_width=240):
                    ui.method = B.widget("training", "method")
                with gr.Column(scale=3):
                    ui.method_note = gr.Markdown(views.method_note(ctx.initial.training.method, L.lang),
                                                 elem_id="settings-method-note")
            # Each method's own settings, shown only while that method is picked.
            with gr.Group(visible=ctx.initial.training.method in PREFERENCE_METHODS,
                          elem_id="settings-preference") as ui.preference:
                with gr.Row():
                    B.widget("preference", "beta")
                    B.widget("preference", "loss")
                    B.widget("preference", "sft_weight")
                    B.widget("preference", "simpo_gamma")
                with gr.Row():
                    B.widget("preference", "balance")
                    B.widget("preference", "desirable_weight")
                    B.widget("preference", "undesirable_weight")
            with gr.Group(visible=ctx.initial.training.method == "grpo", elem_id="settings-grpo") as ui.grpo:
                with gr.Row():
                    B.widget("grpo", "rewards")
                    B.widget("grpo", "reward_weights")
                    B.widget("grpo", "generations")
                    B.widget("grpo", "max_answer_tokens")
                with gr.Row():
                    B.widget("grpo", "format_pattern")
                    B.widget("grpo", "length_min_words")
                    B.widget("grpo", "length_max_words")
                    B.widget("grpo", "kl_beta")
        with L.add(gr.Accordion(L("settings.lora"), open=True), label="settings.lora"):
            with gr.Row():
                B.widget("lora", "adapter")
                B.widget("lora", "init")
                B.widget("lora", "virtual_tokens")
                B.widget("lora", "adapter_layers")
            with gr.Row():
                B.widget("lora", "r")
                B.widget("lora", "alpha")
                B.widget("lora", "dropout")
            B.widget("lora", "target_modules")
            with gr.Row():
                B.widget("lora", "use_dora")
                B.widget("lora", "use_rslora")
                B.widget("lora", "bias")
        with L.add(gr.Accordion(L("settings.training"), open=True), label="settings.training"):
            with gr.Row():
                B.widget("training", "epochs")
                B.widget("training", "max_steps")
                B.widget("training", "batch_size")
                B.widget("training", "grad_accum")
            with gr.Row():
                ui.gpus_found = gr.Markdown(elem_id="settings-gpus")
                ui.global_batch = gr.Markdown(elem_id="settings-global-batch")
                B.widget("training", "isolate")
            with gr.Row():
                B.widget("training", "learning_rate")
                B.widget("training", "scheduler")
                B.widget("training", "warmup_ratio")
                B.widget("training", "optimizer")
            with gr.Row():
                B.widget("data", "max_length")
                B.widget("data", "overlong")
                B.widget("training", "gradient_checkpointing")
                B.widget("training", "packing")
            with gr.Row():
                B.widget("training", "eval_steps")
                B.widget("training", "save_steps")
                B.widget("training", "logging_steps")
                B.widget("training", "seed")
        with L.add(gr.Accordion(L("settings.advanced"), open=False), label="settings.advanced"):
            with gr.Row():
                B.widget("training", "weight_decay")
                B.widget("training", "max_grad_norm")
                B.widget("training", "neftune_noise_alpha")
                B.widget("training", "output_dir")
            with gr.Row():
                B.widget("training", "attention")
                B.widget("training", "fused_kernels")
                B.widget("training", "report_to")
        with L.add(gr.Accordion(L("settings.machines"), open=ctx.initial.training.nnodes > 1,
                                elem_id="settings-machines-box"), label="settings.machines"):
            with gr.Row():
                B.widget("training", "nnodes")
                B.widget("training", "node_rank")
                B.widget("training", "master")
            ui.machine_commands = L.make(gr.Code, label="settings.machines_commands",
                                         value=views.machine_commands(ctx.svc.machine_commands(ctx.initial), L.lang),
                                         language="shell", interactive=False, lines=2,
                                         elem_id="settings-machine-commands")
        with L.add(gr.Accordion(L("settings.yaml"), open=False, elem_id="settings-yaml-box"), label="settings.yaml"):
            ui.yaml = L.make(gr.Code, label="settings.yaml", value=ctx.initial.to_yaml(), language="yaml",
                             interactive=True, lines=12, max_lines=24, elem_id="settings-yaml")
            # (the code box has its own copy and download buttons)
            ui.apply_yaml = L.make(gr.Button, text="settings.apply_yaml", size="sm", elem_id="settings-apply-yaml")
        with L.add(gr.Accordion(L("settings.command"), open=False, elem_id="settings-command-box"),
                   label="settings.command"):
            ui.command = L.make(gr.Code, label="settings.command", value=views.command_text(L.lang),
                                language="shell", interactive=False, lines=3, elem_id="settings-command")
    return ui


def wire(ctx) -> None:
    ui, B, svc = ctx.settings, ctx.bind, ctx.svc
    modules = ctx.model.module_choices      # this session's target-module choices (a gr.State)

    @guarded(len(B.inputs) + 1)
    def apply_preset(name, lang, modules, *values):
        """Fill every setting from a preset (the model and data chosen in their tabs stay)."""
        if not name:
            return tuple(gr.skip() for _ in range(len(B.inputs) + 1))
        cfg = svc.load_preset(name, base=B.to_config(values))
        return (views.preset_summary(name, lang),
                *B.to_updates(cfg, keep=lambda k: k in KEEP_ON_PRESET, module_choices=modules))

    B.named(apply_preset, "preset", "lang", "module_choices")
    ui.preset.input(apply_preset, [ui.preset, ctx.lang, modules] + B.inputs, [ui.preset_summary] + B.inputs,
                    api_name="apply_preset")

    @guarded(len(B.inputs))
    def apply_yaml(text, lang, modules, *values):
        cfg = StudioConfig.from_yaml(text)
        gr.Info(t("settings.yaml_applied", lang))
        return tuple(B.to_updates(cfg, module_choices=modules))

    B.named(apply_yaml, "yaml", "lang", "module_choices")
    ui.apply_yaml.click(apply_yaml, [ui.yaml, ctx.lang, modules] + B.inputs, B.inputs, api_name="apply_yaml")

    def show_config(lang, *values):
        """The YAML, the command and the memory estimate of what the widgets show now."""
        try:
            cfg = B.to_config(values)
        except Exception as e:  # a half-typed number: say so where the YAML would be
            return (f"# {e}", *[gr.skip()] * 7)
        est = svc.memory(cfg)
        text = views.memory(est, lang)
        gpus = svc.gpus()
        # One update object for each output: gradio consumes (pops from) the dict it is given.
        return (cfg.to_yaml(), views.command_text(lang),
                *(gr.update(value=text, visible=bool(est)) for _ in range(3)),
                views.gpus_found(gpus, lang), views.global_batch(cfg, len(gpus), lang),
                views.machine_commands(svc.machine_commands(cfg), lang))

    # The estimate is shown where each decision is made: the model, the settings and the Start button.
    shown = [ui.yaml, ui.command, ctx.model.memory, ui.memory, ctx.train.memory, ui.gpus_found, ui.global_batch,
             ui.machine_commands]
    triggers = [w.change for w in B.inputs] + [ctx.lang.change, ctx.model.load_btn.click]
    gr.on(triggers, show_config, [ctx.lang] + B.inputs, shown,
          trigger_mode="always_last", show_progress="hidden", api_visibility="private", queue=False)

    ctx.on_load.append((show_config, [ctx.lang] + B.inputs, shown))

    def show_method(method, lang):
        """What the picked method learns from, and only its own settings."""
        return (views.method_note(method, lang), gr.update(visible=method in PREFERENCE_METHODS),
                gr.update(visible=method == "grpo"))

    ui.method.change(show_method, [ui.method, ctx.lang], [ui.method_note, ui.preference, ui.grpo],
                     api_visibility="private", show_progress="hidden", queue=False)
    ctx.on_lang.append((lambda m, lang: views.method_note(m, lang), [ui.method, ctx.lang], [ui.method_note]))

    @guarded(len(B.inputs) + 1)
    def fit_to_my_gpu(lang, modules, *values):
        """Largest micro-batch and checkpointing that the estimate says fit the GPU found."""
        cfg = B.to_config(values)
        dev, facts = svc.device(), svc.facts(cfg.model)
        if dev["device"] != "cuda":
            return (t("settings.fit_no_gpu", lang), *[gr.skip()] * len(B.inputs))
        if not facts:
            return (t("settings.fit_no_model", lang), *[gr.skip()] * len(B.inputs))
        fitted, changes, fits = svc.fit_to_gpu(cfg, facts, dev["free_gb"])
        note = ("✓ " if fits else "⚠ ") + "; ".join(changes)
        return (note, *B.to_updates(fitted, module_choices=modules))

    B.named(fit_to_my_gpu, "lang", "module_choices")
    ui.fit_btn.click(fit_to_my_gpu, [ctx.lang, modules] + B.inputs, [ui.fit_note] + B.inputs, api_name="fit_to_gpu")


    @guarded(3)
    def save_as_preset(name, lang, pending, *values):
        """Save the current settings (without model and data) as one of the user's presets (in the
        workspace; the shipped ones are never written). A name that exists is replaced only when saved
        twice in a row: the first save says it exists."""
        name = (name or "").strip()
        try:
            path = svc.save_preset(B.to_config(values), name, summary=t("settings.saved_summary", lang),
                                   replace=bool(name) and name == pending)
        except ConfigError as e:
            if e.code != "config.preset_exists":
                raise
            warn(e, lang)
            return gr.skip(), gr.skip(), name
        gr.Info(t("settings.saved", lang, path=path))
        return gr.update(choices=preset_choices(), value=path.stem), gr.update(value=""), ""

    B.named(save_as_preset, "name", "lang", "pending")
    ui.save_btn.click(save_as_preset, [ui.save_name, ctx.lang, ui.save_pending] + B.inputs,
                      [ui.preset, ui.save_name, ui.save_pending], api_name="save_preset")
    ctx.on_lang.append((lambda name, lang: views.preset_summary(name, lang), [ui.preset, ctx.lang],
                        [ui.preset_summary]))
