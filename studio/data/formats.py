"""Shape detection, column mapping and row-by-row normalisation into ``Conversation``s.

Shapes: alpaca (instruction/input/output[/system]), sharegpt (conversations of from/value, with tool
calls), messages (OpenAI role/content, with tool calls), prompt_completion, text, preference
(chosen/rejected or KTO, trained on the chosen answers) and mapping (any columns the user names).
Every bad row becomes a ``Problem`` with its row number; good rows stay usable. A file that mixes
shapes is read in its most common shape, and the rows of other shapes are named as such.
"""

from __future__ import annotations

import math
from collections import Counter

from . import preference
from .messages import BadRow as _Bad
from .messages import parse_turns, tools_of
from .messages import type_name as _type_name
from .types import Conversation, Problem
from ..config import DataConfig
from ..errors import DataError

# Shapes that are one family: a file may mix them, since the same reader takes both.
_FAMILY = {"sharegpt": "conversation", "messages": "conversation"}
SHAPE_WORDS = {"alpaca": "alpaca (instruction/output)", "sharegpt": "a conversation", "messages": "a conversation",
               "prompt_completion": "prompt/completion", "text": "plain text ('text')",
               "preference": "preference (chosen/rejected)"}
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
    if preference.is_preference(rec):
        return "preference"
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


def mapping_of(cfg: DataConfig) -> dict:
    """The columns ``data.prompt_column``, ``answer_column`` and ``system_column`` name,
    as ``normalise`` takes them for the format 'mapping'."""
    return {"prompt": cfg.prompt_column, "answer": cfg.answer_column, "system": cfg.system_column}


# ---- values --------------------------------------------------------------------------------------
def _text(rec: dict, key: str, what: str, required: bool = True) -> str:
    """The field as text. Numbers are accepted (CSV-style); lists and objects are a wrong type."""
    value = rec.get(key)
    if value is None or isinstance(value, float) and math.isnan(value):
        if required:
            raise _Bad(f"the {what} ('{key}') is missing")
        return ""
    if isinstance(value, bool) or isinstance(value, (list, dict)):
        raise _Bad(f"the {what} ('{key}') should be text but is {_type_name(value)}")
    if isinstance(value, float) and math.isinf(value):
        # JSON's 1e999 is read as infinity; "inf" is not what the file meant to teach.
        raise _Bad(f"the {what} ('{key}') is a number too large to hold (such as 1e999); write it in quotes as text")
    if isinstance(value, (int, float)):
        value = str(value)
    if not isinstance(value, str):
        raise _Bad(f"the {what} ('{key}') should be text but is {_type_name(value)}")
    if required and not value.strip():
        raise _Bad(f"the {what} ('{key}') is empty")
    return value


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
        return parse_turns(prompt + completion, "role", "content", "prompt")
    return _simple("", _text(rec, "prompt", "prompt"), _text(rec, "completion", "answer"))


def _mapped(rec: dict, mapping: dict) -> list[dict]:
    system_col = mapping.get("system") or ""
    system = _text(rec, system_col, "system prompt", required=False) if system_col else ""
    return _simple(system, _text(rec, mapping["prompt"], "prompt"), _text(rec, mapping["answer"], "answer"))


def _messages(rec: dict, mapping: dict) -> list[dict]:
    key = _turns_key(rec)
    return parse_turns(rec[key], "role", "content", key)


def _sharegpt(rec: dict, mapping: dict) -> list[dict]:
    key = _turns_key(rec)
    msgs = parse_turns(rec[key], "from", "value", key)
    system = rec.get("system")
    if isinstance(system, str) and system.strip() and msgs[0]["role"] != "system":
        msgs.insert(0, {"role": "system", "content": system})
    return msgs


def _plain_text(rec: dict, mapping: dict) -> list[dict]:
    return [{"role": "text", "content": _text(rec, "text", "text")}]


def _preference(rec: dict, mapping: dict) -> list[dict]:
    return preference.conversation(rec)


NORMALISERS = {"alpaca": _alpaca, "sharegpt": _sharegpt, "messages": _messages,
               "prompt_completion": _prompt_completion, "text": _plain_text, "preference": _preference,
               "mapping": _mapped}


def _mixed_shapes(records: list[dict], fmt: str) -> tuple[dict[int, str], str]:
    """Rows whose own shape is another known shape than ``fmt`` ({row: shape}), and a note naming the mix."""
    family = _FAMILY.get(fmt, fmt)
    by_shape: dict[str, list[int]] = {}
    for rec in records:
        shape = _shape_of(rec)
        if shape != "unknown":
            by_shape.setdefault(_FAMILY.get(shape, shape), []).append(rec.get("__row__", 0))
    others = {f: rows for f, rows in by_shape.items() if f != family}
    if family not in by_shape or not others:
        return {}, ""
    odd = {row: f for f, rows in others.items() for row in rows}
    words = {_FAMILY.get(k, k): v for k, v in SHAPE_WORDS.items()}
    parts = "; ".join(f"{words.get(f, f)}: {_row_list(rows)}" for f, rows in
                      sorted(by_shape.items(), key=lambda kv: -len(kv[1])))
    note = (f"The file mixes shapes — {parts}. The rows in the most common shape, {words.get(family, family)}, "
            "are used; the others are listed as problems. Give every row the same fields to use them all.")
    return odd, note


def _row_list(rows: list[int], limit: int = 12) -> str:
    rows = sorted(rows)
    spans: list[str] = []
    i = 0
    while i < len(rows):
        j = i
        while j + 1 < len(rows) and rows[j + 1] == rows[j] + 1:
            j += 1
        spans.append(str(rows[i]) if i == j else f"{rows[i]}-{rows[j]}")
        i = j + 1
    shown = ", ".join(spans[:limit]) + (f" and {len(spans) - limit} more ranges" if len(spans) > limit else "")
    return f"row{'s' if len(rows) > 1 else ''} {shown}"


def normalise(records: list[dict], fmt: str, mapping: dict | None = None,
              notes: list[str] | None = None) -> tuple[list[Conversation], list[Problem]]:
    """Turn records into conversations; each bad row becomes a Problem with its row number.
    Notes for the report (mixed shapes, preference data) are appended to ``notes`` when given."""
    notes = notes if notes is not None else []
    auto = fmt == "auto"
    if auto:
        fmt = detect_format(records)
    if fmt == "mapping":
        mapping = mapping or {}
        if not (mapping.get("prompt") and mapping.get("answer")):
            raise DataError("With data.format 'mapping', choose the column with the prompt (data.prompt_column) and the "
                            "column with the answer (data.answer_column).", code="data.mapping_columns")
        cols = columns_of(records)
        missing = [mapping[k] for k in ("prompt", "answer", "system") if mapping.get(k) and mapping[k] not in cols]
        if missing:
            raise DataError("The column(s) {missing} are not in the data. Its columns are: {columns}.",
                            code="data.missing_columns", missing=", ".join(repr(m) for m in missing),
                            columns=", ".join(cols))
    if fmt not in NORMALISERS:
        cols = columns_of(records)
        guess = suggest_mapping(cols)
        if guess["prompt"] and guess["answer"]:
            raise DataError("Could not recognise the shape of the data (columns: {columns}). It looks like '{prompt}' is "
                            "the prompt and '{answer}' the answer.", code="data.shape_guess",
                            columns=", ".join(cols) or "none", prompt=guess["prompt"], answer=guess["answer"])
        raise DataError("Could not recognise the shape of the data (columns: {columns}).", code="data.unknown_shape",
                        columns=", ".join(cols) or "none")
    fn = NORMALISERS[fmt]
    odd, mix_note = _mixed_shapes(records, fmt) if fmt != "mapping" else ({}, "")
    if mix_note:
        notes.append(mix_note)
    convs, problems = [], []
    skipped = 0
    for rec in records:
        row = rec.get("__row__", 0)
        if row in odd:
            problems.append(Problem(row, f"this row is in the {SHAPE_WORDS.get(_shape_of(rec), odd[row])} shape, but "
                                         f"most rows are {SHAPE_WORDS.get(fmt, fmt)}: the file mixes shapes"))
            continue
        try:
            tools = tools_of(rec.get("tools")) if fmt in ("sharegpt", "messages") else None
            convs.append(Conversation(row=row, messages=fn(rec, mapping or {}), tools=tools))
        except preference.Skipped:
            skipped += 1
        except _Bad as e:
            problems.append(Problem(row, str(e)))
    if fmt == "preference" and records:
        kind = preference.kind_of(records[0])
        notes.append(preference.KTO_NOTE.format(good=len(convs), bad=skipped) if kind == "KTO"
                     else preference.NOTE.format(kind=kind))
    return convs, problems
