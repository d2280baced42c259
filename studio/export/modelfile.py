'''The Ollama ``Modelfile`` written beside every GGUF export, so the model answers in Ollama as it did in
the studio: the system prompt it was trained with, the tokens that end its turn, the run's generation
settings, and the chat template in Ollama's own form where the studio knows it exactly.

    FROM ./run-Q4_K_M.gguf
    SYSTEM """You are the support assistant for Brightwave Home."""
    PARAMETER temperature 0
    ...
    PARAMETER stop "<|im_end|>"

``ollama create my-model -f run-Q4_K_M.Modelfile`` reads it (FROM is relative to the Modelfile, so the
two files move together). Without SYSTEM a template such as SmolLM2's puts in its own default system
prompt, which the adapter never saw; without the stop tokens the model may talk on past its answer.

TEMPLATE: written when the run's chat template renders a conversation exactly as ChatML does (checked on
a probe conversation, with the run's own system prompt); other templates are left to the GGUF's own
(Ollama reads ``tokenizer.chat_template`` from the file), and the Modelfile says so in a comment.
'''

from __future__ import annotations

from pathlib import Path
from typing import Any

CHATML_TEMPLATE = ('{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}'
                   '<|im_start|>assistant\n')


def modelfile_path(gguf_path: Path) -> Path:
    """``<name>.Modelfile`` beside ``<name>.gguf``."""
    gguf_path = Path(gguf_path)
    return gguf_path.with_name(gguf_path.stem + ".Modelfile")


def stop_tokens(tokenizer: Any, template: str) -> list[str]:
    """The texts that end an answer: the tokenizer's end-of-sequence token and the end (and start) of
    turn markers the template uses, when they are tokens of the vocabulary."""
    from ..data.template_features import END_MARKERS, START_MARKERS

    vocab = tokenizer.get_vocab()
    out: list[str] = []
    eos = getattr(tokenizer, "eos_token", None)
    if eos and eos in template:
        out.append(eos)
    for marker in END_MARKERS + START_MARKERS:
        if marker in template and marker in vocab and marker not in out:
            out.append(marker)
    if not out and eos:
        out.append(eos)
    return out


def _chatml(messages: list[dict]) -> str:
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages) + "<|im_start|>assistant\n"


def ollama_template(tokenizer: Any, template: str, system_prompt: str) -> str | None:
    """Ollama's Go template for the run's chat template when the two render alike, else None."""
    from ..data.render import format_prompt

    probe = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
        {"role": "user", "content": "What is the warranty?"}, {"role": "assistant", "content": "Two years."},
        {"role": "user", "content": "And returns?"}]
    try:
        text = format_prompt(tokenizer, template, probe)
    except Exception:      # a template that cannot render the probe: leave it to the GGUF's own
        return None
    return CHATML_TEMPLATE if text == _chatml(probe) else None


def _quoted(text: str) -> str:
    # Ollama's triple-quoted strings end at the first """: one inside the text would cut it short.
    return '"""' + text.replace('"""', '" " "') + '"""'


def _number(value: float) -> str:
    return f"{value:g}"


def modelfile_text(gguf_path: Path, run_dir: str | Path, tokenizer: Any, template: str,
                   base: Path | None = None) -> str:
    """``base``: ``gguf_path`` is a LoRA adapter GGUF and ``base`` the model GGUF it applies to (FROM the
    base, ADAPTER the adapter; both beside the Modelfile)."""
    from ..data.system_prompt import for_run
    from ..runs import RunFolder

    gen = RunFolder(run_dir).config().generation
    system = for_run(run_dir).get("system_prompt", "")
    lines = [f"# Ollama: ollama create my-model -f {modelfile_path(gguf_path).name}",
             f"FROM ./{Path(base or gguf_path).name}"]
    if base is not None:
        lines.append(f"ADAPTER ./{Path(gguf_path).name}")
    go_template = ollama_template(tokenizer, template, system)
    if go_template:
        lines.append(f"TEMPLATE {_quoted(go_template)}")
    else:
        lines.append("# TEMPLATE: Ollama reads the chat template stored in the GGUF file.")
    if system:
        lines.append(f"SYSTEM {_quoted(system)}")
    lines += [f"PARAMETER temperature {_number(gen.temperature)}",
              f"PARAMETER top_p {_number(gen.top_p)}",
              f"PARAMETER repeat_penalty {_number(gen.repetition_penalty)}",
              # the studio's repetition penalty counts the whole conversation, as llama.cpp's -1 (= num_ctx) does
              "PARAMETER repeat_last_n -1",
              f"PARAMETER num_predict {gen.max_new_tokens}"]
    lines += [f'PARAMETER stop "{s}"' for s in stop_tokens(tokenizer, template)]
    return "\n".join(lines) + "\n"


def write_modelfile(gguf_path: Path, run_dir: str | Path, tokenizer: Any, template: str,
                    base: Path | None = None) -> Path:
    path = modelfile_path(gguf_path)
    path.write_text(modelfile_text(gguf_path, run_dir, tokenizer, template, base), encoding="utf-8")
    return path


def read_modelfile(path: Path) -> dict:
    """What a Modelfile says: ``system``, ``stop`` (list), ``parameters`` (name -> text), ``template``,
    ``from`` and ``adapter`` (the file names, relative to the Modelfile).
    The export check asks llama.cpp with these, so it tests what Ollama will be told."""
    text = Path(path).read_text(encoding="utf-8")
    out: dict = {"system": "", "stop": [], "parameters": {}, "template": None, "from": None, "adapter": None}
    i = 0
    while i < len(text):
        end = text.find("\n", i)
        end = len(text) if end < 0 else end
        line = text[i:end]
        word, _, rest = line.partition(" ")
        if word in ("SYSTEM", "TEMPLATE") and rest.startswith('"""'):
            close = text.index('"""', i + len(word) + 4)
            out[word.lower()] = text[i + len(word) + 4:close]
            end = text.find("\n", close)
            end = len(text) if end < 0 else end
        elif word in ("FROM", "ADAPTER"):
            out[word.lower()] = rest.strip()
        elif word == "PARAMETER":
            name, _, value = rest.partition(" ")
            if name == "stop":
                out["stop"].append(value.strip().strip('"'))
            else:
                out["parameters"][name] = value.strip()
        i = end + 1
    return out
