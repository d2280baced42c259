"""Rendering conversations through a chat template, and the loss mask.

The template chosen here is the one saved with the adapter and used in chat, so training and chat
see the same text. Assistant spans are found by rendering prefixes of the conversation and diffing
the text (``messages[:i]`` with the generation prompt, then ``messages[:i+1]``), so any Jinja chat
template works, with or without ``{% generation %}`` tags. Tokens overlapping an assistant span carry
loss, including the end-of-turn token that closes it, so the model learns to stop.
"""

from __future__ import annotations

import os
from typing import Callable

from .types import Conversation, EncodedRow
from ..errors import DataError

IGNORE = -100
# eos is appended to assistant turns when it is a different token, so models whose vocabulary has no
# <|im_end|> (chatml written as plain text) still learn to emit their own end-of-sequence and stop.
_EOS = "{%- set eos = eos_token if (eos_token is defined and eos_token) else '' -%}"
_SYSTEM_FIRST = ("{%- if messages and messages[0]['role'] == 'system' -%}{{ messages[0]['content'] + '\n\n' }}"
                 "{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set loop_messages = messages -%}{%- endif -%}")
FALLBACKS = {
    "chatml": _EOS + (
        "{%- for message in messages -%}"
        "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' }}"
        "{%- if message['role'] == 'assistant' and eos != '<|im_end|>' %}{{ eos }}{% endif -%}"
        "{{ '\n' }}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"),
    "alpaca": _EOS + (
        "{%- if messages and messages[0]['role'] == 'system' -%}{{ messages[0]['content'] + '\n\n' }}"
        "{%- set loop_messages = messages[1:] -%}{%- else -%}"
        "{{ 'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n' }}"
        "{%- set loop_messages = messages -%}{%- endif -%}"
        "{%- for message in loop_messages -%}"
        "{%- if message['role'] == 'user' -%}{{ '### Instruction:\n' + message['content'] + '\n\n' }}"
        "{%- elif message['role'] == 'assistant' -%}{{ '### Response:\n' + message['content'] + eos + '\n\n' }}"
        "{%- endif -%}{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{ '### Response:\n' }}{%- endif -%}"),
    "human_assistant": _EOS + _SYSTEM_FIRST + (
        "{%- for message in loop_messages -%}"
        "{%- if message['role'] == 'user' -%}{{ '### Human: ' + message['content'] + '\n' }}"
        "{%- elif message['role'] == 'assistant' -%}{{ '### Assistant: ' + message['content'] + eos + '\n' }}"
        "{%- endif -%}{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{ '### Assistant:' }}{%- endif -%}"),
}
CHOICES = ("auto", "model", *FALLBACKS)


class RenderError(DataError):
    """The chat template refused a conversation (e.g. a model that does not support system messages)."""


def model_template(tokenizer) -> str | None:
    """The tokenizer's own chat template, or None."""
    tpl = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
    if isinstance(tpl, dict):
        tpl = tpl.get("default") or next(iter(tpl.values()), None)
    return tpl or None


def resolve_template(tokenizer, choice: str) -> tuple[str, str]:
    """(name, jinja) for 'auto' | 'model' | 'chatml' | 'alpaca' | 'human_assistant'."""
    if choice in FALLBACKS:
        return choice, FALLBACKS[choice]
    own = model_template(tokenizer)
    if choice == "model":
        if not own:
            raise DataError("This model has no chat template of its own.", code="data.no_model_template")
        return "model", own
    if choice == "auto":
        return ("model", own) if own else ("chatml", FALLBACKS["chatml"])
    raise DataError("Unknown template '{template}'. Choose one of: {choices}.", code="data.unknown_template",
                    template=choice, choices=", ".join(CHOICES))


def render(tokenizer, chat_template: str, messages: list[dict], add_generation_prompt: bool = False,
           tools: list[dict] | None = None) -> str:
    """The text of a conversation (with its tool definitions, if any); without a tokenizer (preview
    only) special tokens are left empty."""
    try:
        if tokenizer is not None:
            return tokenizer.apply_chat_template(messages, tools=tools, chat_template=chat_template, tokenize=False,
                                                 add_generation_prompt=add_generation_prompt)
        from transformers.utils.chat_template_utils import render_jinja_template
        texts, _ = render_jinja_template(conversations=[messages], tools=tools, chat_template=chat_template,
                                         add_generation_prompt=add_generation_prompt)
        return texts[0]
    except Exception as e:  # jinja's raise_exception() and template errors come as several types
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RenderError("the chat template refused this conversation: {detail}", code="data.template_refused",
                          detail=msg) from None


def format_prompt(tokenizer, chat_template: str, messages: list[dict]) -> str:
    """The text the model continues in chat: the conversation so far plus the assistant header."""
    return render(tokenizer, chat_template, messages, add_generation_prompt=True)


def _common(a: str, b: str) -> int:
    return len(os.path.commonprefix([a, b]))


def assistant_spans(render_fn: Callable[[list[dict], bool], str], messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The full text and the character spans [start, end) of each assistant answer plus its end-of-turn text."""
    full = render_fn(messages, False)
    spans: list[tuple[int, int]] = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        floor = spans[-1][1] if spans else 0
        try:   # the prompt the model continues in chat; everything after it is generated, so trained
            before = render_fn(messages[:i], True)
        except RenderError:
            before = ""
        lo = max(floor, _common(full, before))
        content = m["content"]
        found = full.find(content, lo) if content else -1
        size = len(content)
        reasoning = m.get("reasoning_content") or ""
        thought = full.find(reasoning.strip(), lo) if reasoning.strip() else -1
        if found < 0 and content.strip():       # templates that trim the content
            found, size = full.find(content.strip(), lo), len(content.strip())
        if found < 0:
            found, size = lo, 0
        content_end = found + size
        # A space the template puts between its header and the answer ("### Assistant: ...") is generated
        # too; a header of a template that ignores add_generation_prompt is not part of the answer.
        exact = bool(before) and lo == len(before)
        start = lo if exact and lo <= found and not full[lo:found].strip() else found
        if 0 <= thought < start:      # the reasoning the template puts before the answer is learned too
            start = lo if exact and not full[lo:thought].strip("\n <>think") else thought
        try:
            end = max(content_end, _common(full, render_fn(messages[:i + 1], False)))
        except RenderError:
            end = content_end
        while end > content_end and full[end - 1].isspace():   # the newline between turns is not the answer
            end -= 1
        spans.append((start, end))
    return full, spans


def marked_segments(text: str, spans: list[tuple[int, int]]) -> list[tuple[str, bool]]:
    """The text cut into (piece, carries_loss) segments, for a preview that highlights trained text."""
    out, pos = [], 0
    for s, e in spans:
        if s > pos:
            out.append((text[pos:s], False))
        if e > s:
            out.append((text[s:e], True))
        pos = max(pos, e)
    if pos < len(text):
        out.append((text[pos:], False))
    return out


def encode_full(tokenizer, conv: Conversation, chat_template: str, train_on: str = "assistant"
                ) -> tuple[list[int], list[int], str, list[int]]:
    """Untruncated (input_ids, labels, text, token end offsets) of one conversation."""
    if conv.messages and conv.messages[0]["role"] == "text":
        text = conv.messages[0]["content"]
        ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
        if tokenizer.eos_token_id is not None and (not ids or ids[-1] != tokenizer.eos_token_id):
            ids.append(tokenizer.eos_token_id)
            text += tokenizer.eos_token
        return ids, list(ids), text, []
    full, spans = assistant_spans(lambda msgs, gen: render(tokenizer, chat_template, msgs, gen, conv.tools),
                                  conv.messages)
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
        labels, k = [], 0
        for tid, (s, e) in zip(ids, offsets):
            while k < len(spans) and spans[k][1] <= s:
                k += 1
            inside = k < len(spans) and (s < spans[k][1] and max(e, s + 1) > spans[k][0])
            labels.append(tid if inside or train_on == "all" else IGNORE)
        return ids, labels, full, [e for _, e in offsets]
    # Slow tokenizers have no offsets: count the tokens of each text prefix instead.
    ids = list(tokenizer(full, add_special_tokens=False)["input_ids"])
    labels = list(ids) if train_on == "all" else [IGNORE] * len(ids)
    if train_on != "all":
        for s, e in spans:
            a = len(tokenizer(full[:s], add_special_tokens=False)["input_ids"])
            b = len(tokenizer(full[:e], add_special_tokens=False)["input_ids"])
            labels[a:b] = ids[a:b]
    return ids, labels, full, []


def fit(row: int, ids: list[int], labels: list[int], text: str, ends: list[int], max_length: int,
        overlong: str, tokenizer=None) -> EncodedRow | None:
    """Apply the length limit: cut ('truncate') or drop. None when dropped or when no trained token is left."""
    if len(ids) <= max_length:
        return EncodedRow(row=row, input_ids=ids, labels=labels, text=text)
    if overlong == "drop":
        return None
    ids, labels = ids[:max_length], labels[:max_length]
    if all(x == IGNORE for x in labels):
        return None
    if ends:
        text = text[:ends[max_length - 1]]
    elif tokenizer is not None:
        text = tokenizer.decode(ids)
    return EncodedRow(row=row, input_ids=ids, labels=labels, text=text, truncated=True)


def encode(tokenizer, conv: Conversation, chat_template: str, max_length: int, train_on: str = "assistant",
           overlong: str = "truncate") -> EncodedRow | None:
    """input_ids + labels of one conversation (labels -100 except on assistant tokens). None when dropped.
    Raises RenderError when the template refuses the conversation."""
    ids, labels, text, ends = encode_full(tokenizer, conv, chat_template, train_on)
    return fit(conv.row, ids, labels, text, ends, max_length, overlong, tokenizer)
