"""What a chat template can show besides plain turns: tool calls and the model's reasoning ("thinking").

Tool-calling conversations are kept when the template renders them (it is asked: a probe conversation
with a tool definition, a call and its result is rendered, and all three must appear in the text);
otherwise they are left out with ONE problem that says the template has no tool support, instead of
one per row. Reasoning goes to ``reasoning_content``, where templates with thinking (Qwen3, DeepSeek-R1
and others) render it; a template without such a place gets the reasoning at the start of the answer,
inside <think>…</think>, and the report says so.
"""

from __future__ import annotations

import functools

from .messages import uses_tools

# Text that ends a model's turn in the chat templates people use: chat stops generating there, and an
# exported model's Modelfile names the ones its template uses as stop tokens.
END_MARKERS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>", "</s>", "<|end_of_text|>")
# Text that starts a new turn: a model that writes one has finished its answer (llama.cpp / Ollama stop there).
START_MARKERS = ("<|im_start|>", "<|start_header_id|>", "<start_of_turn>")
from .types import Conversation, Problem

_PROBE_TOOL = {"type": "function", "function": {
    "name": "probe_lookup_zq", "description": "Look a thing up.",
    "parameters": {"type": "object", "properties": {"thing": {"type": "string"}}, "required": ["thing"]}}}
_PROBE = [{"role": "user", "content": "Look up the kettle."},
          {"role": "assistant", "content": "", "tool_calls": [
              {"type": "function", "function": {"name": "probe_lookup_zq", "arguments": {"thing": "kettle"}}}]},
          {"role": "tool", "name": "probe_lookup_zq", "content": "probe-result-7731"},
          {"role": "assistant", "content": "It costs 79 dollars."}]


@functools.lru_cache(maxsize=16)
def supports_tools(chat_template: str) -> bool:
    """Whether the template renders tool definitions, an assistant's tool call and a tool's result."""
    if not chat_template:
        return False
    from transformers.utils.chat_template_utils import render_jinja_template
    try:
        texts, _ = render_jinja_template(conversations=[_PROBE], tools=[_PROBE_TOOL], chat_template=chat_template)
    except Exception:  # a template that raises on tool roles has no tool support
        return False
    text = texts[0]
    return "Look a thing up" in text and text.count("probe_lookup_zq") >= 2 and "probe-result-7731" in text


def supports_reasoning(chat_template: str) -> bool:
    return "reasoning_content" in (chat_template or "")


def keep_supported_tools(convs: list[Conversation], chat_template: str, template_name: str
                         ) -> tuple[list[Conversation], list[Problem]]:
    """The conversations, less tool-calling ones when the template cannot show tools (one Problem for them all)."""
    with_tools = [c for c in convs if uses_tools(c.messages) or c.tools]
    if not with_tools or supports_tools(chat_template):
        return convs, []
    rows = [c.row for c in with_tools]
    shown = ", ".join(str(r) for r in rows[:15]) + (f" … ({len(rows)} rows)" if len(rows) > 15 else "")
    problem = Problem(rows[0], f"rows {shown} are tool-calling conversations (function calls and their results), "
                               f"and the chat template in use ({template_name}) has no tool support, so they are "
                               "left out. Choose a model whose chat template supports tools (for example "
                               "Qwen2.5-Instruct or Llama 3.1-Instruct) to train on them.")
    dropped = {id(c) for c in with_tools}
    return [c for c in convs if id(c) not in dropped], [problem]


def place_reasoning(convs: list[Conversation], chat_template: str) -> list[str]:
    """Put reasoning where the template shows it; returns notes for the report."""
    having = [c for c in convs if any(m.get("reasoning_content") for m in c.messages)]
    if not having:
        return []
    if supports_reasoning(chat_template):
        return [f"{len(having)} answers have a reasoning part; the chat template shows it as the model's thinking, "
                "and the model learns it together with the answer."]
    for c in having:
        c.messages = [_fold(m) for m in c.messages]
    return [f"{len(having)} answers have a reasoning part, and this chat template has no place for thinking: the "
            "reasoning is kept at the start of each answer, inside <think>…</think>, and learned with it."]


def _fold(m: dict) -> dict:
    reasoning = m.get("reasoning_content")
    if not reasoning:
        return m
    out = {k: v for k, v in m.items() if k != "reasoning_content"}
    out["content"] = f"<think>\n{reasoning.strip()}\n</think>\n\n{m['content']}"
    return out

