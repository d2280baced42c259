"""Two people on one studio at once: each browser session keeps its own settings.

The app is served in this process (against a stand-in engine) and driven by two gradio_client
clients, which are two sessions as two browser tabs would be. Each checks a different model and
chats with different generation settings and system prompts; neither may see the other's.
"""

from __future__ import annotations

import socket
import threading

import pytest

from studio.config import GenerationConfig, StudioConfig
from studio.device import DeviceLock
from studio.inference import ChatSession
from studio.ui.app import AppOptions, build_app
from studio.ui.services import Services

LAYERS = {"/models/a": ["c_attn", "c_proj"], "/models/b": ["w1", "w2", "w3"]}


class EchoSession(ChatSession):
    """A ChatSession whose answer is the settings it was asked with (no model needed)."""

    def __init__(self):   # noqa: D107 - the real one loads a model; this one only holds settings
        self.generation = GenerationConfig()
        self.system_prompt = "trained prompt"
        self.device_lock = DeviceLock()

    def stream(self, history, prompt, use_adapter=True):
        yield f"temperature={self.generation.temperature} max_new_tokens={self.generation.max_new_tokens} "
        yield f"system={self.system_prompt}"


class TwoUserServices(Services):
    def __init__(self):
        super().__init__()
        self.session = EchoSession()     # one loaded model for everybody, as in the real app

    def inspect_model(self, model_cfg):
        return {"source": model_cfg.source, "architecture": "Fake", "linear_names": LAYERS[model_cfg.source]}

    def memory(self, cfg):
        return None

    def device(self):
        return {"device": "cpu", "name": "CPU", "free_gb": 4.0, "total_gb": 8.0}

    def chat_session(self, run_dir, lang="en"):
        return self.session

    def training_system_prompt(self, run_dir):
        return "trained prompt"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served():
    svc = TwoUserServices()
    demo = build_app(AppOptions(config=StudioConfig()), services=svc)
    demo.queue(default_concurrency_limit=4)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False)
    try:
        yield demo, svc, f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def clients(url, n=2):
    from gradio_client import Client
    return [Client(url, verbose=False) for _ in range(n)]


def text_of(message: dict) -> str:
    content = message["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def module_choices(update) -> set[str]:
    return {c[1] if isinstance(c, (list, tuple)) else c for c in update["choices"]}


def test_each_session_keeps_the_target_modules_of_the_model_it_checked(served):
    demo, _, url = served
    bind = demo.studio_ctx.bind
    modules_at = bind.inputs.index(bind.widgets["lora.target_modules"][0])
    alice, bob = clients(url)

    # Both check a model, at the same time; each gets its own model's layers.
    results = {}
    threads = [threading.Thread(target=lambda who, c, m: results.__setitem__(who, c.predict(
        "en", model_source_kind="folder", model_source=m, api_name="/load_model")), args=args)
        for args in (("alice", alice, "/models/a"), ("bob", bob, "/models/b"))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert module_choices(results["alice"][2]) == {"all-linear", "c_attn", "c_proj"}
    assert module_choices(results["bob"][2]) == {"all-linear", "w1", "w2", "w3"}

    # Later redraws of the modules (a YAML applied, a preset, a run's settings) keep each one's own.
    alice_after = alice.predict("lora: {r: 4}", "en", api_name="/apply_yaml")[modules_at]
    bob_after = bob.predict("lora: {r: 4}", "en", api_name="/apply_yaml")[modules_at]
    assert module_choices(alice_after) == {"all-linear", "c_attn", "c_proj"}
    assert module_choices(bob_after) == {"all-linear", "w1", "w2", "w3"}
    # A new session has checked nothing yet: it is offered the common names, not someone else's model.
    (carol,) = clients(url, 1)
    fresh = module_choices(carol.predict("lora: {r: 4}", "en", api_name="/apply_yaml")[modules_at])
    assert "q_proj" in fresh and not fresh & {"c_attn", "w1"}


def test_chat_settings_belong_to_the_session_that_sent_them(served):
    _, svc, url = served
    alice, bob = clients(url)
    asks = {"alice": dict(generation_temperature=0.1, generation_max_new_tokens=17, system_prompt="Be Alice."),
            "bob": dict(generation_temperature=1.3, generation_max_new_tokens=99, system_prompt="")}
    jobs = {who: c.submit("Hi", [], [], "/runs/r", "tuned", lang="en", api_name="/chat", **asks[who])
            for who, c in (("alice", alice), ("bob", bob))}
    answers = {who: text_of(job.result(timeout=30)[1][-1]) for who, job in jobs.items()}
    assert answers["alice"] == "temperature=0.1 max_new_tokens=17 system=Be Alice."
    # Bob left the system prompt empty: the one the run was trained with, never Alice's.
    assert answers["bob"] == "temperature=1.3 max_new_tokens=99 system=trained prompt"
    # The loaded session everybody shares was not changed by either request.
    assert svc.session.generation == GenerationConfig() and svc.session.system_prompt == "trained prompt"
