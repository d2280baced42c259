"""One conversation's messages, as the public data sets write them, into the chat template's shape.

Roles: system / user / assistant / tool (sharegpt's human, gpt, function_call, observation; OpenAI's
tool and legacy function). Content: text, or a list of parts; text parts are read under 'text' (OpenAI)
or 'value' (LLaMA-Factory), reasoning parts go to ``reasoning_content`` (where chat templates with
thinking put it; ``tool_support.place_reasoning`` decides for templates without), and image or audio
parts are refused with a sentence that says so. Tool calls become OpenAI/Hugging Face ``tool_calls``
with their arguments as a dict, which is what chat templates render.

Every problem raises ``BadRow`` with a message that is shown next to the row number.
"""

from __future__ import annotations

import json
from typing import Any

ROLE_NAMES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant",
              "bot": "assistant", "model": "assistant", "chatgpt": "assistant",
              "tool": "tool", "observation": "tool", "function": "tool", "ipython": "tool", "function_response": "tool",
              "function_call": "assistant_call", "tool_call": "assistant_call", "tool_calls": "assistant_call"}
TEXT_PARTS = ("text", "input_text", "output_text")
REASONING_PARTS = ("reasoning", "thinking", "thought", "reasoning_text")
# A tool call written as a content part (LLaMA-Factory's current format: {"type": "tool_call", "value": "<JSON>"}).
TOOL_CALL_PARTS = ("tool_call", "function_call", "tool_calls")
MEDIA_PARTS = {"image": "a picture", "image_url": "a picture", "input_image": "a picture", "audio": "sound",
               "input_audio": "sound", "video": "a video", "file": "a file"}


class BadRow(Exception):
    """A row problem; the message is shown with the row number."""


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    return {list: "a list", dict: "an object", str: "a piece of text", type(None): "empty (null)"}.get(
        type(value), type(value).__name__)


def content_text(content: Any, where: str) -> tuple[str, str]:
    """(text, reasoning) of a message's content: a string or a list of parts."""
    text, reasoning, _ = content_parts(content, where)
    return text, reasoning


def content_parts(content: Any, where: str) -> tuple[str, str, list[dict]]:
    """(text, reasoning, tool calls) of a message's content: a string or a list of parts."""
    if isinstance(content, str):
        return content, "", []
    if isinstance(content, dict):        # a single part instead of a list of them
        content = [content]
    if not isinstance(content, list):
        raise BadRow(f"{where}: the content should be text but is {type_name(content)}")
    texts, reasoning, calls = [], [], []
    for part in content:
        if not isinstance(part, dict):
            raise BadRow(f"{where}: the content should be text (or a list of parts such as "
                         f"{{'type': 'text', 'text': ...}}) but is a list holding {type_name(part)}")
        kind = str(part.get("type", "text")).lower()
        value = next((part[k] for k in ("text", "value", "content", kind) if isinstance(part.get(k), str)), None)
        if kind in MEDIA_PARTS:
            raise BadRow(f"{where} holds {MEDIA_PARTS[kind]} (a '{kind}' part); pictures, sound and files are not "
                         "supported, only text. Remove those parts or those rows")
        if kind in TOOL_CALL_PARTS:
            call = next((part[k] for k in ("value", "text", "content", "function", kind) if part.get(k)), None)
            if call is None:
                raise BadRow(f"{where}: a '{kind}' part holds no call (a 'value' with its name and arguments)")
            calls.extend(tool_calls_of(call if not isinstance(call, dict) or "name" in call else part, where))
        elif kind in REASONING_PARTS:
            reasoning.append(value or _summary_text(part))
        elif kind in TEXT_PARTS or value is not None:
            if value is None:
                raise BadRow(f"{where}: a '{kind}' part has no 'text'")
            texts.append(value)
        else:
            raise BadRow(f"{where}: a content part of type '{kind}' is not supported (only text and reasoning)")
    return "".join(texts), "\n".join(r for r in reasoning if r), calls


def _summary_text(part: dict) -> str:
    """OpenAI reasoning items keep their text in 'summary': [{'type': 'summary_text', 'text': ...}]."""
    summary = part.get("summary")
    if isinstance(summary, list):
        return "\n".join(str(s.get("text", "")) for s in summary if isinstance(s, dict))
    return ""


def tool_calls_of(value: Any, where: str) -> list[dict]:
    """OpenAI-style tool calls (a list, one call, or sharegpt's JSON text) as
    [{'type': 'function', 'function': {'name': ..., 'arguments': {...}}}]."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise BadRow(f"{where}: the function call is not valid JSON (it should hold a 'name' and "
                         "'arguments')") from None
    calls = value if isinstance(value, list) else [value]
    out = []
    for call in calls:
        if not isinstance(call, dict):
            raise BadRow(f"{where}: a tool call should be an object with 'name' and 'arguments'")
        fn = call.get("function") if isinstance(call.get("function"), dict) else call
        name = fn.get("name")
        if not isinstance(name, str) or not name.strip():
            raise BadRow(f"{where}: a tool call has no function 'name'")
        args = fn.get("arguments", fn.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError:
                pass       # kept as text: some templates print arguments as they are
        entry = {"type": "function", "function": {"name": name, "arguments": args}}
        if call.get("id"):
            entry["id"] = call["id"]
        out.append(entry)
    return out


def tools_of(value: Any) -> list[dict] | None:
    """A row's tool definitions (a list or its JSON text) as JSON schemas for apply_chat_template(tools=...)."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise BadRow("the 'tools' field is not valid JSON (it should be a list of function definitions)") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise BadRow("the 'tools' field should be a list of function definitions")
    return [t if t.get("type") == "function" and isinstance(t.get("function"), dict)
            else {"type": "function", "function": t} for t in value] or None


def parse_turns(turns: Any, role_key: str, content_key: str, field_name: str) -> list[dict]:
    """The messages of a conversation field, checked (see ``check_turns``)."""
    if not isinstance(turns, list):
        raise BadRow(f"'{field_name}' should be a list of messages but is {type_name(turns)}")
    out: list[dict] = []
    for i, t in enumerate(turns, 1):
        if not isinstance(t, dict):
            raise BadRow(f"message {i} in '{field_name}' should be an object with '{role_key}' and '{content_key}'")
        raw_role = t.get(role_key, t.get("role", t.get("from")))
        if raw_role is None:
            raise BadRow(f"message {i} in '{field_name}' has no '{role_key}'")
        role = ROLE_NAMES.get(str(raw_role).strip().lower())
        if role is None:
            raise BadRow(f"message {i} has the unknown role '{raw_role}' (known: system, user, assistant, tool, "
                         "and sharegpt's human, gpt, function_call, observation)")
        where = f"message {i} ({'assistant' if role == 'assistant_call' else role})"
        content = t.get(content_key, t.get("content", t.get("value")))
        if role == "assistant_call":       # sharegpt: the call is the turn's text
            out.append({"role": "assistant", "content": "", "tool_calls": tool_calls_of(content, where)})
            continue
        calls = t.get("tool_calls") or (t.get("function_call") if role == "assistant" else None)
        if content is None and not calls:
            raise BadRow(f"{where} has no '{content_key}'")
        text, reasoning, part_calls = content_parts(content, where) if content is not None else ("", "", [])
        msg: dict = {"role": role, "content": text}
        reasoning = reasoning or _str(t.get("reasoning_content") or t.get("reasoning") or t.get("thinking"))
        if reasoning and role == "assistant":
            msg["reasoning_content"] = reasoning
        if calls and role == "assistant":
            msg["tool_calls"] = tool_calls_of(calls, where)
        if part_calls:
            if role != "assistant":
                raise BadRow(f"{where} holds a tool call part; only the assistant calls tools")
            msg["tool_calls"] = msg.get("tool_calls", []) + part_calls
        if role == "tool":
            for key in ("name", "tool_call_id"):
                if isinstance(t.get(key), str):
                    msg[key] = t[key]
        out.append(msg)
    return check_turns(out)


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def check_turns(messages: list[dict]) -> list[dict]:
    """Drop empty system prompts and check the order of roles; raise BadRow for a conversation that can't train."""
    messages = [m for m in messages if not (m["role"] == "system" and not m["content"].strip())]
    for i, m in enumerate(messages):
        role, prev = m["role"], messages[i - 1] if i else None
        if role == "system" and i > 0:
            raise BadRow(f"message {i + 1} is a system message; a system message may only come first")
        if role not in ("system", "tool") and not m["content"].strip() and not m.get("tool_calls"):
            what = "the answer" if role == "assistant" else "the user's message"
            raise BadRow(f"{what} (message {i + 1}) is empty")
        if role == "tool":
            if prev is None or not (prev["role"] == "tool" or prev.get("tool_calls")):
                raise BadRow(f"message {i + 1} is a tool result, but the message before it is not a tool call")
            continue
        if prev is not None and role == prev["role"]:
            raise BadRow(f"messages {i} and {i + 1} are both from the {role}; turns must alternate "
                         "user/assistant (merge them or add the missing reply)")
    chat = [m for m in messages if m["role"] != "system"]
    if not chat:
        raise BadRow("there is no user message and no answer")
    if chat[0]["role"] != "user":
        raise BadRow("the conversation starts with the assistant; it must start with a user message")
    if chat[-1]["role"] != "assistant":
        raise BadRow("the conversation does not end with an assistant message, so there is no answer to learn")
    return messages


def uses_tools(messages: list[dict]) -> bool:
    return any(m["role"] == "tool" or m.get("tool_calls") for m in messages)
