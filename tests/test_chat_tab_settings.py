"""The Chat tab asks a run as Evaluate and `studio chat` do: choosing a run puts its own generation settings
into the widgets (the same greedy answer everywhere), shows its scored check after training, and an answer
given with other settings says which ones differ."""

from __future__ import annotations

import json


def _app(tmp_path):
    from studio.config import StudioConfig, merge
    from studio.inference import ChatSession
    from studio.ui.app import AppOptions, build_app
    from studio.ui.services import Services

    class Session(ChatSession):       # the engine's session without a model: answers with its settings
        has_adapter = True
        system_prompt = None

        def __init__(self):
            pass

        def stream(self, history, prompt, use_adapter=True):
            yield f"rp={self.generation.repetition_penalty}"

    class Svc(Services):
        def chat_session(self, run_dir, lang="en"):
            return Session()

    run = tmp_path / "run"
    run.mkdir()
    merge(StudioConfig(), {"generation": {"repetition_penalty": "1.3", "max_new_tokens": "77"}}).save(
        run / "config.yaml")
    (run / "eval_summary.json").write_text(json.dumps({"prompts": 8, "tuned": {"right": 7, "scored": 8},
                                                       "base": {"right": 0, "scored": 8}}))
    demo = build_app(AppOptions(config=StudioConfig()), services=Svc())
    fns = {f.api_name: f.fn for f in demo.fns.values() if f.api_name}
    return demo.studio_ctx, fns, str(run)


def test_choosing_a_run_puts_its_own_settings_in_the_widgets(tmp_path):
    ctx, fns, run = _app(tmp_path)
    scored, *values = fns["run_generation"](run, "en")
    keys = [k for k in ctx.bind.widgets if k.startswith("generation.")]
    shown = dict(zip(keys, values))
    assert shown["generation.repetition_penalty"] == 1.3 and shown["generation.max_new_tokens"] == 77
    assert "7 of 8" in scored and "base 0 of 8" in scored


def test_an_answer_with_other_settings_says_which_differ(tmp_path):
    ctx, fns, run = _app(tmp_path)
    _, *gen_values = fns["run_generation"](run, "en")
    keys = [k for k in ctx.bind.widgets if k.startswith("generation.")]
    inputs = ctx.bind.inputs
    values = [w.value for w in inputs]
    widget_of = {id(ctx.bind.widgets[k][0]): v for k, v in zip(keys, gen_values)}
    as_run = [widget_of.get(id(w), v) for w, v in zip(inputs, values)]
    *_, last = fns["chat"]("Hi", [], [], run, "tuned", "", "en", *as_run)
    assert last[1][-1]["content"] == "rp=1.3" and last[3] == ""          # the run's own: nothing to say
    changed = [1.0 if id(w) == id(ctx.bind.widgets["generation.repetition_penalty"][0]) else v
               for w, v in zip(inputs, as_run)]
    *_, last = fns["chat"]("Hi", [], [], run, "tuned", "", "en", *changed)
    assert last[1][-1]["content"] == "rp=1.0"
    assert "repetition_penalty 1.0 ≠ 1.3" in last[3]
