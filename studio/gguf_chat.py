"""Chat with an exported GGUF file in llama.cpp (llama-cpp-python, CPU): what Ollama and LM Studio will say.

    chat = GgufChatSession.open("exports/run-Q4_K_M.gguf", run_dir=run)      # the run's prompt and settings
    for piece in chat.using(generation, system_prompt).stream(history, "How much is the Pro?"):
        ...

The prompt is made by llama.cpp's own chat handler from the template stored in the file (what
``create_chat_completion`` and LM Studio use), tokenised by the file's own tokenizer. A LoRA adapter GGUF
(``gguf-lora``) is opened on the base its Modelfile names (FROM), with the adapter applied (``lora_path``).
The system prompt and generation settings are the run's (its Modelfile's when beside the file, as Ollama
will be told), unless the caller gives others. Decoding runs in llama.cpp's sampler: greedy at temperature
0, its repeat penalty over the whole context (``repeat_last_n`` -1, the Modelfile's choice).

The same streaming interface as ``inference.ChatSession`` as far as the Chat tab needs it: ``using``,
``stream(history, prompt, use_adapter)``, ``reply``; a GGUF has no base to compare with (``has_adapter``
False). One llama.cpp context answers one question at a time (a lock, shared by the sessions ``using``
makes). It runs on the CPU, so it takes no device lock and works while a run trains on the GPU.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator

from .config import GenerationConfig
from .errors import ChatError
from .inference import PerCallerSettings

INSTALL = 'pip install "finetune-studio[gguf]"   (or: pip install llama-cpp-python)'


def llama_cpp() -> Any:
    """The ``llama_cpp`` module, or a ChatError saying what to install."""
    try:
        import llama_cpp as module
    except ImportError:
        raise ChatError("Chatting with a GGUF file needs llama.cpp's Python package (llama-cpp-python), which is not "
                        "installed. Install it with: {install}", code="chat.no_llama_cpp", install=INSTALL) from None
    except OSError as e:       # installed, but its compiled library does not load
        raise ChatError("llama-cpp-python is installed but its llama.cpp library does not load: {detail}",
                        code="chat.llama_cpp_broken", detail=str(e)) from None
    return module


def available() -> bool:
    try:
        llama_cpp()
    except ChatError:
        return False
    return True


def model_and_adapter(path: Path) -> tuple[Path, Path | None]:
    """(model file, adapter file or None): an adapter GGUF opens on the base its Modelfile names."""
    from .export.gguf_lora import is_adapter
    from .export.modelfile import modelfile_path, read_modelfile

    if not path.is_file():
        raise ChatError("There is no GGUF file at {path}.", code="chat.no_gguf", path=str(path))
    if not is_adapter(path):
        return path, None
    mf = modelfile_path(path)
    base = read_modelfile(mf).get("from") if mf.is_file() else None
    base_path = path.parent / base if base else None
    if base_path is None or not base_path.is_file():
        raise ChatError("{path} is a LoRA adapter; its base GGUF (named by FROM in {modelfile}) is not beside it.",
                        code="chat.gguf_no_base", path=str(path), modelfile=str(mf))
    return base_path, path


def run_settings(path: Path, run_dir: str | Path | None) -> tuple[str, GenerationConfig, list[str]]:
    """(system prompt, generation settings, stop texts): the Modelfile's beside the file when it has one,
    else the run's; defaults without either."""
    from .data.system_prompt import for_run
    from .errors import ConfigError
    from .export.modelfile import modelfile_path, read_modelfile
    from .runs import RunFolder

    gen, system, stop = GenerationConfig(), "", []
    if run_dir:
        try:
            gen = RunFolder(run_dir).config().generation
        except (ConfigError, OSError):
            pass
        system = for_run(run_dir).get("system_prompt", "")
    mf = modelfile_path(path)
    if mf.is_file():
        info = read_modelfile(mf)
        system, stop, p = info["system"] or system, info["stop"], info["parameters"]
        gen = dataclasses.replace(gen, temperature=float(p.get("temperature", gen.temperature)),
                                  top_p=float(p.get("top_p", gen.top_p)),
                                  repetition_penalty=float(p.get("repeat_penalty", gen.repetition_penalty)),
                                  max_new_tokens=int(p.get("num_predict", gen.max_new_tokens)))
    return system, gen, stop


class GgufChatSession(PerCallerSettings):
    """A GGUF file loaded in llama.cpp, answering with its own chat template."""

    has_adapter = False                # nothing to switch off: no base answer beside it

    def __init__(self, llm: Any, path: Path, generation: GenerationConfig | None = None, system_prompt: str = "",
                 stop: list[str] | None = None):
        self.llm = llm
        self.path = Path(path)
        self.generation = generation or GenerationConfig()
        self.system_prompt = system_prompt
        self.stop = [s for s in (stop or []) if s]
        self._answering = threading.Lock()

    @classmethod
    def open(cls, path: str | Path, run_dir: str | Path | None = None, n_ctx: int = 4096,
             threads: int | None = None) -> "GgufChatSession":
        lib = llama_cpp()
        path = Path(path).expanduser()
        model_path, lora = model_and_adapter(path)
        system, gen, stop = run_settings(path, run_dir)
        try:
            llm = lib.Llama(model_path=str(model_path), lora_path=str(lora) if lora else None, n_ctx=n_ctx,
                            n_threads=threads or max(1, os.cpu_count() or 1), n_gpu_layers=0, verbose=False)
        except (ValueError, RuntimeError) as e:      # not a model llama.cpp reads, an adapter of another base
            raise ChatError("llama.cpp cannot open {path}: {detail}", code="chat.gguf_unreadable", path=str(path),
                            detail=str(e)) from None
        if not llm.metadata.get("tokenizer.chat_template"):
            llm.close()
            raise ChatError("The GGUF file {path} has no chat template, so a conversation cannot be formatted.",
                            code="chat.gguf_no_template", path=str(model_path))
        return cls(llm, path, gen, system, stop)

    def messages(self, history: Iterable | None, prompt: str) -> list[dict]:
        from .inference import _messages       # the same history shapes the other chat accepts
        msgs = _messages(history)
        if self.system_prompt and not (msgs and msgs[0]["role"] == "system"):
            msgs.insert(0, {"role": "system", "content": self.system_prompt})
        return msgs + [{"role": "user", "content": prompt}]

    def _sampling(self) -> dict:
        g = self.generation
        greedy = g.temperature <= 0
        return {"max_tokens": g.max_new_tokens, "temperature": 0.0 if greedy else g.temperature,
                "top_p": 1.0 if greedy else g.top_p, "top_k": 1 if greedy else 40,
                "repeat_penalty": g.repetition_penalty, "stop": self.stop or None}

    def stream(self, history: Iterable | None, prompt: str, use_adapter: bool = True) -> Iterator[str]:
        if not prompt or not prompt.strip():
            raise ChatError("Type a message first.", code="chat.empty_prompt")
        if not use_adapter:
            raise ChatError("This model has no adapter, so there is no base to compare with.", code="chat.no_base")
        return self._pieces(self.messages(history, prompt))

    def _pieces(self, messages: list[dict]) -> Iterator[str]:
        # taken when the first piece is asked for, so a stream never read holds nothing
        if not self._answering.acquire(timeout=0.5):
            from .errors import DeviceBusy
            raise DeviceBusy("The device is answering another question; try again in a moment.",
                             code="device.answering")
        try:
            try:
                chunks = self.llm.create_chat_completion(messages=messages, stream=True, **self._sampling())
                for chunk in chunks:
                    piece = chunk["choices"][0].get("delta", {}).get("content")
                    if piece:
                        yield piece
            except ValueError as e:               # the prompt alone is longer than the context
                raise ChatError("The model could not answer: {detail}", code="chat.failed", detail=str(e)) from None
        finally:
            self._answering.release()

    def reply(self, history: Iterable | None, prompt: str, use_adapter: bool = True) -> str:
        return "".join(self.stream(history, prompt, use_adapter)).strip()

    def close(self) -> None:
        self.llm.close()
