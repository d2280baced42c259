"""Chat asks the question the way training did: the system prompt the rows used is recorded in the run
folder and sent by chat, compare, `studio chat` and the app's Chat tab, unless the user gives another."""

from __future__ import annotations

import json

import pytest

from studio.config import GenerationConfig
from studio.data.system_prompt import for_run, summarise
from test_training_job import make_cfg

SYSTEM = "You are the support assistant for Brightwave Home."
GEN = GenerationConfig(max_new_tokens=8, temperature=0.0, repetition_penalty=1.0)


def faq_with_system(path, n=8):
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"messages": [{"role": "system", "content": SYSTEM},
                                             {"role": "user", "content": f"What is the warranty {i}?"},
                                             {"role": "assistant", "content": "Two years."}]}) + "\n")
    return path


@pytest.fixture(scope="module")
def run_with_system(tmp_path_factory, tiny_dir):
    from studio.device import DeviceLock
    from studio.training import TrainingJob

    tmp = tmp_path_factory.mktemp("sysprompt")
    cfg = make_cfg(faq_with_system(tmp / "faq.jsonl"), max_steps=2)
    cfg.model.source = str(tiny_dir)
    job = TrainingJob(cfg, tmp / "run", device_lock=DeviceLock()).start()
    assert job.join(120) and job.state == "done", job.message
    return job


def test_the_run_records_the_system_prompt_its_rows_used(run_with_system):
    info = json.loads((run_with_system.run_dir / "system_prompt.json").read_text(encoding="utf-8"))
    assert info["system_prompt"] == SYSTEM and info["kind"] == "shared" and info["rows"] == 8


def test_chat_from_the_run_sends_the_training_system_prompt(run_with_system):
    from studio.inference import ChatSession
    from studio.device import DeviceLock

    chat = ChatSession.from_run(run_with_system.run_dir, generation=GEN, device_lock=DeviceLock())
    sent = chat.prompt_text([], "How much is the kettle?")
    assert sent.startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>")
    assert chat.reply([], "How much is the kettle?") is not None        # and it answers with it
    none = ChatSession.from_run(run_with_system.run_dir, generation=GEN, device_lock=DeviceLock(), system_prompt="")
    assert SYSTEM not in none.prompt_text([], "Hi")                      # an explicit '' sends none
    same_model = ChatSession.from_job(run_with_system, generation=GEN, device_lock=DeviceLock())
    assert same_model.system_prompt == SYSTEM


def test_studio_chat_uses_and_shows_the_training_system_prompt(run_with_system, capsys):
    from studio.cli import main

    assert main(["chat", "--run", str(run_with_system.run_dir), "--prompt", "Warranty?", "--max-new-tokens", "4"]) == 0
    assert f"System prompt (the one the run was trained with): {SYSTEM}" in capsys.readouterr().err
    assert main(["chat", "--run", str(run_with_system.run_dir), "--prompt", "Warranty?", "--system", "",
                 "--max-new-tokens", "4"]) == 0
    assert "System prompt" not in capsys.readouterr().err


def test_a_run_from_before_the_record_gets_it_from_its_data(run_with_system, tmp_path):
    import shutil
    old = tmp_path / "old-run"
    shutil.copytree(run_with_system.run_dir, old)
    (old / "system_prompt.json").unlink()
    assert for_run(old)["system_prompt"] == SYSTEM


def test_rows_with_different_system_prompts_are_described():
    convs = [[{"role": "system", "content": "A"}], [{"role": "system", "content": "A"}],
             [{"role": "system", "content": "B"}], [{"role": "user", "content": "x"}]]
    info = summarise(convs)
    assert (info["system_prompt"], info["kind"], info["rows_with_system"], info["distinct"]) == ("A", "varied", 3, 2)
    assert summarise([[{"role": "user", "content": "x"}]])["kind"] == "none"


def test_the_chat_tab_sends_the_training_prompt_unless_the_box_says_otherwise(tmp_path):
    """The app's chat handler: an empty box means the run's prompt; a typed one is sent instead."""
    from studio.config import StudioConfig
    from studio.inference import ChatSession
    from studio.ui.app import AppOptions, build_app
    from studio.ui.services import Services

    class Session(ChatSession):     # the engine's session without a model: answers with the prompt it got
        has_adapter = True
        system_prompt = None

        def __init__(self):
            pass

        def stream(self, history, prompt, use_adapter=True):
            yield f"[{self.system_prompt}]"

    class Svc(Services):
        session = Session()

        def chat_session(self, run_dir, lang="en"):
            return self.session

    run = tmp_path / "run"
    run.mkdir()
    (run / "system_prompt.json").write_text(json.dumps({"system_prompt": SYSTEM, "kind": "shared"}))
    svc = Svc()
    demo = build_app(AppOptions(config=StudioConfig()), services=svc)
    fns = {f.api_name: f.fn for f in demo.fns.values() if f.api_name}
    values = [w.value for w in demo.studio_ctx.bind.inputs]
    assert fns["training_system_prompt"](str(run)) == SYSTEM               # the box is filled from the run
    *_, last = fns["chat"]("Hi", [], [], str(run), "tuned", "", "en", *values)
    assert last[1][-1]["content"] == f"[{SYSTEM}]"
    *_, last = fns["chat"]("Hi", [], [], str(run), "tuned", "Be brief.", "en", *values)
    assert last[1][-1]["content"] == "[Be brief.]"
    assert svc.session.system_prompt is None     # set on this request's view, not on the shared session
