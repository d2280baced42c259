"""Chat tab: talk to a finished run, the untuned base and the tuned model side by side.

Side by side, one question goes to both: the base answer (adapter switched off) streams into the
left chat, then the tuned answer into the right one, from ONE loaded model. Single mode talks to
the tuned model only. Each side keeps its own history. The held-out demo questions are examples.
'Answer with: an exported GGUF' asks a .gguf file of the run (or any path) in llama.cpp instead
(``gguf_chat.GgufChatSession`` through the Services), tuned side only.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import gradio as gr

from studio import paths

from . import views
from .common import GPU, guarded, history_to_messages, warn
from .i18n import t


def held_out_questions(limit: int = 8) -> list[str]:
    out = []
    try:
        for line in paths.DEMO_HELD_OUT.read_text(encoding="utf-8").splitlines():
            if line.strip():
                q = json.loads(line).get("question")
                if q:
                    out.append(q)
    except (OSError, ValueError):
        pass  # no examples is better than no chat tab
    return out[:limit]


def example_label(question: str, width: int = 60) -> str:
    """The question as an example's label: whole words, with '…' when it is longer than Gradio shows."""
    if len(question) <= width:
        return question
    cut = question[:width - 1].rsplit(" ", 1)[0].rstrip(" ,;:—-")
    return cut + "…"


def build(ctx) -> SimpleNamespace:
    L, B = ctx.labels, ctx.bind
    ui = SimpleNamespace()
    with gr.Tab(label=L("tab.chat"), id="chat", elem_id="tab-chat") as ui.tab:
        L.add(ui.tab, label="tab.chat")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                ui.run = L.make(gr.Dropdown, label="chat.run", info="chat.run_info", choices=[], value=None,
                                elem_id="chat-run", allow_custom_value=True)
                ui.refresh = L.make(gr.Button, text="common.refresh", size="sm", elem_id="chat-refresh",
                                    elem_classes=["inline-btn"])
            ui.mode = L.make(gr.Radio, label="chat.mode", choices=[("chat.mode.compare", "compare"),
                                                                   ("chat.mode.tuned", "tuned")],
                             value="compare", elem_id="chat-mode", scale=2)
        with gr.Row(equal_height=False):
            ui.source = L.make(gr.Radio, label="chat.source", choices=[("chat.source.run", "run"),
                                                                       ("chat.source.gguf", "gguf")],
                               value="run", elem_id="chat-source", scale=2)
            ui.gguf = L.make(gr.Dropdown, label="chat.gguf", info="chat.gguf_info", choices=[], value=None,
                             allow_custom_value=True, visible=False, elem_id="chat-gguf", scale=3)
        ui.gguf_note = gr.Markdown("", elem_id="chat-gguf-note")
        ui.scored = gr.Markdown("", elem_id="chat-scored")     # the run's check after training, when it had one
        ui.system = L.make(gr.Textbox, value="", label="chat.system", info="chat.system_info", lines=1, max_lines=4,
                           placeholder="chat.system_placeholder", elem_id="chat-system")
        with gr.Row(equal_height=True):
            ui.base = L.make(gr.Chatbot, label="chat.base", elem_id="chat-base", height=420, scale=1,
                             buttons=["copy", "copy_all"])
            ui.tuned = L.make(gr.Chatbot, label="chat.tuned", elem_id="chat-tuned", height=420, scale=1,
                              buttons=["copy", "copy_all"])
        with gr.Row(equal_height=True):
            ui.input = L.make(gr.Textbox, label="chat.input", placeholder="chat.placeholder", lines=2,
                              elem_id="chat-input", scale=5, show_label=False)
            with gr.Column(scale=1, min_width=120):
                ui.send = L.make(gr.Button, text="chat.send", variant="primary", elem_id="chat-send")
                ui.clear = L.make(gr.Button, text="chat.clear", size="sm", elem_id="chat-clear")
        ui.status = gr.Markdown("", elem_id="chat-status")
        questions = held_out_questions()
        if questions:
            # Labels of their own: Gradio shows an example cut at 60 characters, mid-word ("kett..."); a click
            # still asks the whole question.
            ui.examples = gr.Examples([[q] for q in questions], inputs=[ui.input], label=L("chat.examples"),
                                      examples_per_page=8, example_labels=[example_label(q) for q in questions])
        with L.add(gr.Accordion(L("chat.generation"), open=False, elem_id="chat-generation"),
                   label="chat.generation"):
            with gr.Row():
                B.widget("generation", "max_new_tokens")
                B.widget("generation", "temperature")
                B.widget("generation", "top_p")
                B.widget("generation", "repetition_penalty")
    return ui


def wire(ctx) -> None:
    ui, B, svc = ctx.chat, ctx.bind, ctx.svc
    if getattr(ui, "examples", None) is not None:      # the examples' heading, in the language chosen
        ctx.on_lang.append((lambda lang: gr.update(label=t("chat.examples", lang)), [ctx.lang], ui.examples.dataset))

    @guarded(1)
    def run_choices(lang, current=None):
        runs = svc.chat_runs()
        choices = [(views.run_label(r, lang), r["path"]) for r in runs]
        paths_ = [p for _, p in choices]
        value = current if current in paths_ else (paths_[0] if paths_ else None)
        return gr.update(choices=choices, value=value)

    ui.refresh.click(run_choices, [ctx.lang, ui.run], ui.run, api_name="chat_runs", show_progress="hidden")
    ctx.on_load.append((run_choices, [ctx.lang, ui.run], [ui.run]))
    ctx.train.tab.select(run_choices, [ctx.lang, ui.run], ui.run, api_visibility="private",
                         show_progress="hidden")
    ui.tab.select(run_choices, [ctx.lang, ui.run], ui.run, api_visibility="private", show_progress="hidden")

    ui.mode.change(lambda m: gr.update(visible=m == "compare"), ui.mode, ui.base, queue=False,
                   show_progress="hidden", api_visibility="private")

    @guarded(3)
    def gguf_choices(source, run, current, lang):
        """The GGUF picker shown for source 'gguf', with the run's exported files; what to install when
        llama-cpp-python is missing (said here, before anyone asks a question)."""
        if source != "gguf":
            return gr.update(visible=False), "", gr.update(visible=True)
        # (the mode goes to 'tuned only': a GGUF has no base to answer beside it, and the base chat hides)
        files = svc.chat_ggufs(run)
        value = current if current and (current in files or not run) else (files[0] if files else current)
        note = "" if svc.gguf_chat_available() else "⚠ " + t("chat.gguf_missing", lang)
        return gr.update(visible=True, choices=files, value=value), note, gr.update(visible=False, value="tuned")

    for event in (ui.source.change, ui.run.change):
        event(gguf_choices, [ui.source, ui.run, ui.gguf, ctx.lang], [ui.gguf, ui.gguf_note, ui.mode],
              api_visibility="private", show_progress="hidden")

    @guarded(1)
    def training_prompt(run):
        """The system prompt the chosen run was trained with (what the chat sends unless changed)."""
        return svc.training_system_prompt(run) if run else ""

    ui.run.change(training_prompt, ui.run, ui.system, api_name="training_system_prompt", show_progress="hidden")

    gen_keys = [k for k in B.widgets if k.startswith("generation.")]
    gen_widgets = [B.widgets[k][0] for k in gen_keys]

    @guarded(1 + len(gen_widgets))
    def run_settings(run, lang):
        """The chosen run's own generation settings into the widgets (so the Chat tab asks as Evaluate and
        `studio chat` ask, and the same question gets the same greedy answer), and its scored check."""
        if not run:
            return ("",) + (gr.skip(),) * len(gen_widgets)
        own = svc.run_generation(run)
        values = [getattr(own, k.split(".", 1)[1]) for k in gen_keys]
        return (views.scores_line(svc.run_summary(run), lang, key="chat.scored"), *values)

    ui.run.change(run_settings, [ui.run, ctx.lang], [ui.scored, *gen_widgets], api_name="run_generation",
                  show_progress="hidden")

    def chat(message, base_hist, tuned_hist, run, mode, system_prompt, lang, *rest):
        """Answer ``message`` with the tuned model, and with the base model too in side-by-side mode.
        Streams; returns (base chat, tuned chat, cleared input, status). On any error the chats go
        back to how they were and the message returns to the input box, with the reason shown."""
        # the settings' values, then the source and the GGUF file (last, so callers that send no source
        # ask the run, as before)
        values, extra = rest[:len(B.inputs)], list(rest[len(B.inputs):]) + ["run", None]
        source, gguf = extra[0] or "run", extra[1]
        try:
            yield from answer(message, base_hist, tuned_hist, run, mode, system_prompt, lang, source, gguf, *values)
        except Exception as e:  # noqa: BLE001 - never a traceback; nothing typed is lost
            msg = warn(e, lang)
            yield list(base_hist or []), list(tuned_hist or []), message, "✗ " + msg

    def answer(message, base_hist, tuned_hist, run, mode, system_prompt, lang, source, gguf, *values):
        message = (message or "").strip()
        if not message:
            yield gr.skip(), gr.skip(), gr.skip(), t("chat.empty", lang)
            return
        from_gguf = source == "gguf"
        if from_gguf and not (gguf or "").strip():
            yield gr.skip(), gr.skip(), gr.skip(), t("chat.no_gguf", lang)
            return
        if not run and not from_gguf:
            yield gr.skip(), gr.skip(), gr.skip(), t("chat.no_run", lang)
            return
        gen = B.to_config(values).generation
        yield gr.skip(), gr.skip(), gr.skip(), t("chat.loading", lang)
        # The loaded model is shared by every browser session; these settings are this request's only.
        # Empty system prompt: the one the run was trained with (also for API callers that leave it out).
        loaded = svc.gguf_chat_session(gguf.strip(), run) if from_gguf else svc.chat_session(run, lang)
        session = loaded.using(   # the question stays in the box until this worked
            gen, (system_prompt or "").strip() or (svc.training_system_prompt(run) if run else None))
        # a GGUF has no base beside it: its answer goes in the tuned chat
        sides = [("tuned", True)] if mode == "tuned" or from_gguf else [("base", False), ("tuned", True)]
        hist = {"base": list(base_hist or []), "tuned": list(tuned_hist or [])}
        prior = {k: history_to_messages(v) for k, v in hist.items()}
        for side, _ in sides:
            hist[side] = hist[side] + [{"role": "user", "content": message}, {"role": "assistant", "content": ""}]
        yield hist["base"], hist["tuned"], "", t("chat.thinking", lang)
        for side, use_adapter in sides:
            text = ""
            for piece in session.stream(prior[side], message, use_adapter=use_adapter):
                text += piece
                hist[side][-1] = {"role": "assistant", "content": text}
                yield hist["base"], hist["tuned"], gr.skip(), gr.skip()
            if not text.strip():
                hist[side][-1] = {"role": "assistant", "content": t("chat.no_answer", lang)}
        yield hist["base"], hist["tuned"], gr.skip(), settings_note(gen, run, lang) if run else ""

    def settings_note(gen, run, lang) -> str:
        """'' when the answer used the run's own settings, else which ones differ (Evaluate uses the run's)."""
        own = svc.run_generation(run)
        diff = [f"{k} {getattr(gen, k)} ≠ {getattr(own, k)}" for k in (key.split(".", 1)[1] for key in gen_keys)
                if getattr(gen, k) != getattr(own, k)]
        return "ⓘ " + t("chat.settings_differ", lang, diff=", ".join(diff)) if diff else ""

    inputs = [ui.input, ui.base, ui.tuned, ui.run, ui.mode, ui.system, ctx.lang] + B.inputs + [ui.source, ui.gguf]
    outputs = [ui.base, ui.tuned, ui.input, ui.status]
    B.named(chat, "message", "base_history", "tuned_history", "run", "mode", "system_prompt", "lang")
    import inspect
    sig = inspect.signature(chat)           # the API names the two last inputs too
    chat.__signature__ = sig.replace(parameters=[*sig.parameters.values(), *(
        inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d)    # not required: the run answers
        for n, d in (("source", "run"), ("gguf_file", None)))])
    ui.send.click(chat, inputs, outputs, api_name="chat", **GPU)
    ui.input.submit(chat, inputs, outputs, api_visibility="private", **GPU)
    if getattr(ui, "examples", None) is not None:    # clicking an example asks it (it only filled the box)
        ui.examples.load_input_event.then(chat, inputs, outputs, api_visibility="private", **GPU)
    ui.clear.click(lambda: ([], [], ""), None, [ui.base, ui.tuned, ui.status], api_name="clear_chat",
                   queue=False)
