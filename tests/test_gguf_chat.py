"""Chat with an exported GGUF (llama.cpp): without llama-cpp-python the choice says what to install; an adapter
GGUF opens on the base its Modelfile names; the run's system prompt and settings come from the Modelfile. With
llama-cpp-python, the session streams the f16 file's greedy answer, the one the export check asks for."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest


def _write_gguf(path: Path, adapter: bool) -> Path:
    import gguf
    w = gguf.GGUFWriter(str(path), "llama")
    if adapter:
        w.add_type(gguf.GGUFType.ADAPTER)
        w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_tensor("blk.0.attn_v.weight.lora_a" if adapter else "token_embd.weight", np.zeros((2, 32), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture()
def no_llama_cpp(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)     # import llama_cpp -> ImportError, installed or not


def test_without_llama_cpp_the_choice_says_what_to_install(no_llama_cpp, tmp_path, studio_home):
    from studio.errors import ChatError
    from studio.gguf_chat import GgufChatSession, available
    from studio.ui.services import Services

    assert not available() and not Services.gguf_chat_available()
    for ask in (lambda: GgufChatSession.open(tmp_path / "x.gguf"),
                lambda: Services().gguf_chat_session(str(tmp_path / "x.gguf"))):
        with pytest.raises(ChatError) as e:
            ask()
        assert e.value.code == "chat.no_llama_cpp" and 'pip install "finetune-studio[gguf]"' in str(e.value)
        assert "pip install" in e.value.render("zh")[0]


def test_an_adapter_opens_on_the_base_its_modelfile_names(tmp_path):
    from studio.errors import ChatError
    from studio.gguf_chat import model_and_adapter

    model = _write_gguf(tmp_path / "base-F16.gguf", adapter=False)
    lora = _write_gguf(tmp_path / "run-LoRA-F16.gguf", adapter=True)
    assert model_and_adapter(model) == (model, None)
    with pytest.raises(ChatError) as e:                       # no Modelfile beside it: no base known
        model_and_adapter(lora)
    assert e.value.code == "chat.gguf_no_base"
    (tmp_path / "run-LoRA-F16.Modelfile").write_text("FROM ./base-F16.gguf\nADAPTER ./run-LoRA-F16.gguf\n")
    assert model_and_adapter(lora) == (model, lora)
    with pytest.raises(ChatError) as e:
        model_and_adapter(tmp_path / "missing.gguf")
    assert e.value.code == "chat.no_gguf"


def test_the_modelfile_gives_the_system_prompt_and_settings(tmp_path):
    from studio.gguf_chat import run_settings

    path = tmp_path / "m.gguf"
    (tmp_path / "m.Modelfile").write_text('FROM ./m.gguf\nSYSTEM """Be brief."""\nPARAMETER temperature 0\n'
                                          'PARAMETER repeat_penalty 1.3\nPARAMETER num_predict 7\n'
                                          'PARAMETER stop "<|im_end|>"\n')
    system, gen, stop = run_settings(path, None)
    assert (system, gen.temperature, gen.repetition_penalty, gen.max_new_tokens, stop) == \
        ("Be brief.", 0.0, 1.3, 7, ["<|im_end|>"])


def test_in_llama_cpp_the_session_streams_the_greedy_answer(tmp_path_factory, tiny_dir):
    pytest.importorskip("llama_cpp")
    import dataclasses

    from studio.export.run_export import export_run
    from studio.export_check import GGUFAnswerer
    from studio.gguf_chat import GgufChatSession
    from test_export import PROMPTS, train_run

    run = train_run(tmp_path_factory.mktemp("gguf-chat"), tiny_dir, steps=10)
    out = tmp_path_factory.mktemp("out")
    path = export_run(run, "gguf", "f16", out / "run-F16.gguf", progress=lambda m: None)
    chat = GgufChatSession.open(path, run_dir=run, n_ctx=256, threads=1)
    plain = dataclasses.replace(chat.generation, temperature=0.0, repetition_penalty=1.0, max_new_tokens=12)
    asker = GGUFAnswerer(path, "", chat.stop, 1.0, 12, n_ctx=256, threads=1)
    try:
        for prompt in PROMPTS:
            pieces = list(chat.using(plain, "").stream([], prompt))
            assert "".join(pieces).strip() == asker.answer(prompt)
        assert chat.generation.max_new_tokens != 12 or chat.generation.repetition_penalty != 1.0  # using() copies
        from studio.errors import ChatError
        with pytest.raises(ChatError) as e:
            chat.stream([], "Hi", use_adapter=False)
        assert e.value.code == "chat.no_base"
    finally:
        asker.close()
        chat.close()


def test_the_chat_tab_asks_a_gguf_and_says_what_to_install_without_llama_cpp(no_llama_cpp, tmp_path, studio_home):
    """The tab's source choice: the GGUF's answer goes in the tuned chat only; without llama-cpp-python the
    choice shows the pip line at once, and a question asked anyway gets it as its status, typed text kept."""
    from studio.config import StudioConfig
    from studio.ui.app import AppOptions, build_app
    from studio.ui.services import Services

    asked: list[tuple] = []

    class Session:
        has_adapter = False

        def using(self, generation=None, system_prompt=None):
            return self

        def stream(self, history, prompt, use_adapter=True):
            asked.append((prompt, use_adapter))
            yield "from llama.cpp"

    demo = build_app(AppOptions(config=StudioConfig()), services=Services())
    ctx = demo.studio_ctx
    fns = {f.api_name: f.fn for f in demo.fns.values() if f.api_name}
    values = [w.value for w in ctx.bind.inputs]
    *_, last = fns["chat"]("Hi", [], [], None, "compare", "", "en", *values, "gguf", str(tmp_path / "m.gguf"))
    assert last[2] == "Hi" and "finetune-studio[gguf]" in last[3] and "Traceback" not in last[3]
    chosen = [f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "gguf_choices"][0]
    picker, note, mode = chosen("gguf", None, None, "en")
    assert picker["visible"] and "finetune-studio[gguf]" in note and mode["value"] == "tuned"

    class Svc(Services):
        def gguf_chat_session(self, path, run_dir=None):
            return Session()

    demo = build_app(AppOptions(config=StudioConfig()), services=Svc())
    fns = {f.api_name: f.fn for f in demo.fns.values() if f.api_name}
    *_, last = fns["chat"]("Hi", [], [], None, "compare", "", "en", *values, "gguf", "/x/m.gguf")
    base, tuned = last[0], last[1]
    assert base == [] and tuned[-1]["content"] == "from llama.cpp" and asked == [("Hi", True)]
