"""Shape detection, column mapping and row-by-row normalisation into ``Conversation``s.

Shapes: alpaca (instruction/input/output[/system]), sharegpt (conversations of from/value),
messages (OpenAI role/content), prompt_completion, text, and mapping (any columns the user names).
Every bad row becomes a ``Problem`` with its row number; good rows stay usable.
"""

from __future__ import annotations

import math
from collections import Counter

from .types import Conversation, DataError, Problem

SHAPES = ("alpaca", "sharegpt", "messages", "prompt_completion", "text")
ROLE_NAMES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant",
              "bot": "assistant", "model": "assistant", "chatgpt": "assistant"}
# Column names that usually hold each part, best first (matched case-insensitively, then as substrings).
PROMPT_NAMES = ("prompt", "question", "instruction", "query", "input", "user", "human", "request", "q", "source")
ANSWER_NAMES = ("answer", "response", "output", "completion", "reply", "assistant", "gpt", "target", "a",
                "label", "chosen")
SYSTEM_NAMES = ("system", "system_prompt", "context", "persona")


def columns_of(records: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for rec in records[:1000]:
        for k in rec:
            if k != "__row__":
                seen.setdefault(k, None)
    return list(seen)


def _shape_of(rec: dict) -> str:
    for key in ("messages", "conversations", "conversation"):
        turns = rec.get(key)
        if isinstance(turns, list) and turns and isinstance(turns[0], dict):
            return "sharegpt" if "from" in turns[0] or "value" in turns[0] else "messages"
    if "instruction" in rec and "output" in rec:
        return "alpaca"
    if "prompt" in rec and "completion" in rec:
        return "prompt_completion"
    if "text" in rec:
        return "text"
    return "unknown"


def detect_format(records: list[dict]) -> str:
    """The most common shape among the first rows (alpaca|sharegpt|messages|prompt_completion|text|unknown)."""
    votes = Counter(_shape_of(r) for r in records[:200] if isinstance(r, dict))
    if not votes:
        return "unknown"
    known = [(n, s) for s, n in votes.items() if s != "unknown"]
    return max(known)[1] if known else "unknown"


def suggest_mapping(columns: list[str]) -> dict:
    """A guess of which columns hold the prompt, the answer and the system prompt ('' when none fits)."""
    lower = {c: c.lower().strip() for c in columns}
    found = {"prompt": "", "answer": "", "system": ""}
    order = (("system", SYSTEM_NAMES), ("answer", ANSWER_NAMES), ("prompt", PROMPT_NAMES))
    # Exact names first for every part, so 'system_prompt' is taken as the system before 'prompt' matches
    # inside it; then names inside longer ones ("user_question"), in order of preference.
    for exact in (True, False):
        for part, names in order:
            if found[part]:
                continue
            free = {c: low for c, low in lower.items() if c not in found.values()}
            for name in names:
                hit = next((c for c, low in free.items()
                            if (low == name if exact else len(name) >= 3 and name in low)), "")
                if hit:
                    found[part] = hit
                    break
    return found


# ---- values --------------------------------------------------------------------------------------
class _Bad(Exception):
    """A row problem; the message is shown with the row number."""


def _text(rec: dict, key: str, what: str, required: bool = True) -> str:
    """The field as text. Numbers are accepted (CSV-style); lists and objects are a wrong type."""
    value = rec.get(key)
    if value is None or isinstance(value, float) and math.isnan(value):
        if required:
            raise _Bad(f"the {what} ('{key}') is missing")
        return ""
    if isinstance(value, bool) or isinstance(value, (list, dict)):
        raise _Bad(f"the {what} ('{key}') should be text but is {_type_name(value)}")
    if isinstance(value, (int, float)):
        value = str(value)
    if not isinstance(value, str):
        raise _Bad(f"the {what} ('{key}') should be text but is {_type_name(value)}")
    if required and not value.strip():
        raise _Bad(f"the {what} ('{key}') is empty")
    return value


def _type_name(value) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    return {list: "a list", dict: "an object", str: "a piece of text", type(None): "empty (null)"}.get(
        type(value), type(value).__name__)


def _check_turns(messages: list[dict]) -> list[dict]:
    """Drop empty system prompts and check the order of roles; raise _Bad for a conversation that can't train."""
    messages = [m for m in messages if not (m["role"] == "system" and not m["content"].strip())]
    for i, m in enumerate(messages):
        if m["role"] == "system" and i > 0:
            raise _Bad(f"message {i + 1} is a system message; a system message may only come first")
        if m["role"] != "system" and not m["content"].strip():
            what = "the answer" if m["role"] == "assistant" else "the user's message"
            raise _Bad(f"{what} (message {i + 1}) is empty")
        if i and m["role"] == messages[i - 1]["role"]:
            raise _Bad(f"messages {i} and {i + 1} are both from the {m['role']}; turns must alternate "
                       "user/assistant (merge them or add the missing reply)")
    chat = [m for m in messages if m["role"] != "system"]
    if not chat:
        raise _Bad("there is no user message and no answer")
    if chat[0]["role"] != "user":
        raise _Bad("the conversation starts with the assistant; it must start with a user message")
    if chat[-1]["role"] != "assistant":
        raise _Bad("the conversation does not end with an assistant message, so there is no answer to learn")
    return messages


def _turns(turns, role_key: str, content_key: str, field_name: str) -> list[dict]:
    if not isinstance(turns, list):
        raise _Bad(f"'{field_name}' should be a list of messages but is {_type_name(turns)}")
    out = []
    for i, t in enumerate(turns, 1):
        if not isinstance(t, dict):
            raise _Bad(f"message {i} in '{field_name}' should be an object with '{role_key}' and '{content_key}'")
        raw_role = t.get(role_key, t.get("role", t.get("from")))
        if raw_role is None:
            raise _Bad(f"message {i} in '{field_name}' has no '{role_key}'")
        role = ROLE_NAMES.get(str(raw_role).strip().lower())
        if role is None:
            raise _Bad(f"message {i} has the unknown role '{raw_role}' (use system, user or assistant)")
        content = t.get(content_key, t.get("content", t.get("value")))
        if isinstance(content, list):   # OpenAI content parts: keep the text parts
            if all(isinstance(p, dict) and p.get("type") == "text" for p in content):
                content = "".join(str(p.get("text", "")) for p in content)
        if content is None:
            raise _Bad(f"message {i} ({role}) has no '{content_key}'")
        if not isinstance(content, str):
            raise _Bad(f"message {i} ({role}): '{content_key}' should be text but is {_type_name(content)}")
        out.append({"role": role, "content": content})
    return _check_turns(out)


def _turns_key(rec: dict) -> str:
    for key in ("messages", "conversations", "conversation"):
        if key in rec:
            return key
    raise _Bad("there is no 'messages' or 'conversations' field")


# ---- one row per shape ---------------------------------------------------------------------------
def _alpaca(rec: dict, mapping: dict) -> list[dict]:
    instruction = _text(rec, "instruction", "instruction")
    extra = _text(rec, "input", "input", required=False)
    answer = _text(rec, "output", "answer", required=True)
    system = _text(rec, "system", "system prompt", required=False)
    prompt = f"{instruction.rstrip()}\n\n{extra.strip()}" if extra.strip() else instruction
    return _simple(system, prompt, answer)


def _simple(system: str, prompt: str, answer: str) -> list[dict]:
    msgs = [{"role": "system", "content": system}] if system.strip() else []
    return msgs + [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


def _prompt_completion(rec: dict, mapping: dict) -> list[dict]:
    prompt, completion = rec.get("prompt"), rec.get("completion")
    if isinstance(prompt, list) or isinstance(completion, list):   # conversational prompt/completion
        if not (isinstance(prompt, list) and isinstance(completion, list)):
            raise _Bad("'prompt' and 'completion' must both be text or both be lists of messages")
        return _turns(prompt + completion, "role", "content", "prompt")
    return _simple("", _text(rec, "prompt", "prompt"), _text(rec, "completion", "answer"))


def _mapped(rec: dict, mapping: dict) -> list[dict]:
    system_col = mapping.get("system") or ""
    system = _text(rec, system_col, "system prompt", required=False) if system_col else ""
    return _simple(system, _text(rec, mapping["prompt"], "prompt"), _text(rec, mapping["answer"], "answer"))


def _messages(rec: dict, mapping: dict) -> list[dict]:
    key = _turns_key(rec)
    return _turns(rec[key], "role", "content", key)


def _sharegpt(rec: dict, mapping: dict) -> list[dict]:
    key = _turns_key(rec)
    msgs = _turns(rec[key], "from", "value", key)
    system = rec.get("system")
    if isinstance(system, str) and system.strip() and msgs[0]["role"] != "system":
        msgs.insert(0, {"role": "system", "content": system})
    return msgs


def _plain_text(rec: dict, mapping: dict) -> list[dict]:
    return [{"role": "text", "content": _text(rec, "text", "text")}]


NORMALISERS = {"alpaca": _alpaca, "sharegpt": _sharegpt, "messages": _messages,
               "prompt_completion": _prompt_completion, "text": _plain_text, "mapping": _mapped}


def normalise(records: list[dict], fmt: str, mapping: dict | None = None) -> tuple[list[Conversation], list[Problem]]:
    """Turn records into conversations; each bad row becomes a Problem with its row number."""
    if fmt == "auto":
        fmt = detect_format(records)
    if fmt == "mapping":
        mapping = mapping or {}
        if not (mapping.get("prompt") and mapping.get("answer")):
            raise DataError("With format 'mapping', choose the column with the prompt and the column with the answer.")
        cols = columns_of(records)
        missing = [mapping[k] for k in ("prompt", "answer", "system") if mapping.get(k) and mapping[k] not in cols]
        if missing:
            raise DataError(f"The column(s) {', '.join(repr(m) for m in missing)} are not in the data. "
                            f"Its columns are: {', '.join(cols)}.")
    if fmt not in NORMALISERS:
        cols = columns_of(records)
        guess = suggest_mapping(cols)
        hint = (f" It looks like '{guess['prompt']}' is the prompt and '{guess['answer']}' the answer: choose "
                "format 'mapping' with those columns." if guess["prompt"] and guess["answer"] else
                " Choose format 'mapping' and say which column holds the prompt and which the answer.")
        raise DataError(f"Could not recognise the shape of the data (columns: {', '.join(cols) or 'none'}).{hint}")
    fn = NORMALISERS[fmt]
    convs, problems = [], []
    for rec in records:
        row = rec.get("__row__", 0)
        try:
            convs.append(Conversation(row=row, messages=fn(rec, mapping or {})))
        except _Bad as e:
            problems.append(Problem(row, str(e)))
    return convs, problems
