"""Preference rows read as messages, for preference training: a prompt with a chosen and a rejected answer
(DPO, ORPO, SimPO), or a prompt with one answer labelled desirable or not (KTO).

Pair shapes, told apart row by row:

- ``{"prompt": str | [messages], "chosen": str | [messages], "rejected": ...}``       explicit prompt
- ``{"chosen": [messages], "rejected": [messages]}``         implicit prompt: the turns both share are the prompt
  (as TRL's ``extract_prompt``); UltraFeedback's ``prompt`` text beside such lists is the same question
- ``{"conversations": [{from, value}...], "chosen": {from, value} | str, "rejected": ...}``    sharegpt style
- ``{"chosen": "\\n\\nHuman: ... \\n\\nAssistant: ...", "rejected": ...}``                 Anthropic HH text
- an optional ``system`` text in any of them.

Labelled rows: ``{"prompt", "completion", "label"}`` with label true/false (also "true"/"false", 1/0).
Every problem raises ``BadRow`` with a sentence shown beside the row number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .messages import BadRow, check_turns, parse_turns, type_name
from .preference import hh_turns

PAIR_COLUMNS = ("a 'chosen' and a 'rejected' answer in every row, and the question as 'prompt' (text or messages), "
                "as 'conversations' (sharegpt), or inside both answers (full conversations)")
LABEL_COLUMNS = "'prompt', 'completion' and 'label' (true or false) in every row"


@dataclass
class Pair:
    row: int
    prompt: list[dict]        # the conversation up to the answer: ends with the user's message
    chosen: list[dict]        # the chosen answer's messages (an assistant message first)
    rejected: list[dict]


@dataclass
class Labelled:
    row: int
    prompt: list[dict]
    completion: list[dict]
    label: bool


def is_pair(rec: dict) -> bool:
    return isinstance(rec, dict) and "chosen" in rec and "rejected" in rec


def is_labelled(rec: dict) -> bool:
    return isinstance(rec, dict) and "completion" in rec and "label" in rec and "chosen" not in rec


def pair_of(rec: dict) -> Pair:
    """The row as prompt / chosen / rejected messages; BadRow names what is wrong."""
    row = rec.get("__row__", 0)
    for key in ("chosen", "rejected"):
        _present(rec.get(key), key)
    chosen, rejected = rec["chosen"], rec["rejected"]
    if _is_conversation(chosen) or _is_conversation(rejected) or _hh(rec, chosen):
        prompt, chosen, rejected = _implicit(rec, chosen, rejected)
    else:
        prompt = _prompt(rec)
        chosen = _answer(prompt, chosen, "chosen")
        rejected = _answer(prompt, rejected, "rejected")
    if _said(chosen) == _said(rejected):
        raise BadRow("chosen and rejected are the same answer, so the pair teaches nothing")
    return Pair(row, prompt, chosen, rejected)


def labelled_of(rec: dict) -> Labelled:
    """A KTO row: the prompt, the answer and whether it is desirable."""
    label = label_of(rec.get("label"))
    _present(rec.get("completion"), "completion")
    prompt = _prompt(rec)
    return Labelled(rec.get("__row__", 0), prompt, _answer(prompt, rec["completion"], "completion"), label)


def unpair(pair: Pair) -> list[Labelled]:
    """One desirable and one undesirable row of a pair (TRL's ``unpair_preference_dataset``)."""
    return [Labelled(pair.row, pair.prompt, pair.chosen, True), Labelled(pair.row, pair.prompt, pair.rejected, False)]


def label_of(value) -> bool:
    """True/false, or the unambiguous "true"/"false"/1/0 a CSV file writes; anything else is a row problem."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    if value is None or isinstance(value, float):
        raise BadRow("the 'label' is missing; it should be true (a desirable answer) or false (an undesirable one)")
    raise BadRow(f"the 'label' should be true or false but is {value!r}")


# ---- the parts -----------------------------------------------------------------------------------
def _present(value, key: str) -> None:
    what = "answer" if key == "completion" else f"{key} answer"
    if value is None or isinstance(value, float) and math.isnan(value):
        raise BadRow(f"the {what} ('{key}') is missing")
    if isinstance(value, str) and not value.strip() or value == [] or value == {}:
        raise BadRow(f"the {what} is empty")


def _is_conversation(value) -> bool:
    """A list of messages that holds the question too (its first message is not the assistant's)."""
    if not (isinstance(value, list) and value and isinstance(value[0], dict)):
        return False
    first = value[0].get("role", value[0].get("from"))
    return str(first).strip().lower() not in ("assistant", "gpt", "bot", "model", "chatgpt")


def _hh(rec: dict, chosen) -> bool:
    return (isinstance(chosen, str) and not _prompt_given(rec) and hh_turns(chosen) is not None)


def _prompt_given(rec: dict) -> bool:
    prompt = rec.get("prompt")
    return (isinstance(prompt, (str, list)) and bool(prompt)) or isinstance(rec.get("conversations"), list)


def _system(rec: dict, messages: list[dict]) -> list[dict]:
    system = rec.get("system")
    if isinstance(system, str) and system.strip() and not (messages and messages[0]["role"] == "system"):
        return [{"role": "system", "content": system}] + messages
    return messages


def _whole(rec: dict, value, key: str) -> list[dict]:
    """A full conversation: a list of messages or HH text, checked."""
    if isinstance(value, str):
        turns = hh_turns(value)
        if turns is None:
            raise BadRow(f"the {key} answer is text, but the other is a conversation; give both the same shape")
        return check_turns(_system(rec, turns))
    return check_turns(_system(rec, parse_turns(value, "role", "content", key)))


def _implicit(rec: dict, chosen, rejected) -> tuple[list[dict], list[dict], list[dict]]:
    """Both answers are whole conversations: the turns they share are the prompt (it ends with the user)."""
    chosen, rejected = _whole(rec, chosen, "chosen"), _whole(rec, rejected, "rejected")
    idx = 0
    while idx < min(len(chosen), len(rejected)) and chosen[idx] == rejected[idx]:
        idx += 1
    if idx == len(chosen) == len(rejected):
        raise BadRow("chosen and rejected are the same answer, so the pair teaches nothing")
    while idx and chosen[idx - 1]["role"] != "user":
        idx -= 1
    if not idx or any(side[idx:idx + 1] == [] or side[idx]["role"] != "assistant" for side in (chosen, rejected)):
        raise BadRow("the chosen and rejected conversations do not start with the same question, so there is no "
                     "shared prompt to compare their answers on")
    return chosen[:idx], chosen[idx:], rejected[idx:]


def _prompt(rec: dict) -> list[dict]:
    """The explicit prompt's messages: 'prompt' text or messages (or HH text), or sharegpt 'conversations'."""
    value = rec.get("prompt")
    if value is None and isinstance(rec.get("conversations"), list):
        value = rec["conversations"]
    if isinstance(value, str):
        if not value.strip():
            raise BadRow("the prompt ('prompt') is empty")
        turns = hh_turns(value)
        if turns is not None and turns[-1]["role"] == "assistant" and not turns[-1]["content"]:
            turns = turns[:-1]        # HH prompts end with the 'Assistant:' the answer follows
        messages = turns if turns is not None and turns[-1]["role"] == "user" else [{"role": "user", "content": value}]
        return _system(rec, messages)
    if isinstance(value, list) and value:
        # Checked as a conversation with a stand-in answer: the prompt must end with the user's turn.
        msgs = parse_turns(list(value) + [{"role": "assistant", "content": "-"}], "role", "content", "prompt")
        return _system(rec, msgs[:-1])
    if value is None:
        raise BadRow("there is no prompt: give 'prompt' (or 'conversations'), or whole conversations as 'chosen' "
                     "and 'rejected'")
    raise BadRow(f"the prompt ('prompt') should be text or a list of messages but is {type_name(value)}")


def _answer(prompt: list[dict], value, key: str) -> list[dict]:
    """An answer after an explicit prompt: text, one message, or messages that start with the assistant."""
    what = "answer" if key == "completion" else f"{key} answer"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        value = [{"role": "assistant", "content": value}]
    elif isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise BadRow(f"the {what} ('{key}') should be text or messages but is {type_name(value)}")
    said = [m.get("content", m.get("value")) for m in value if isinstance(m, dict)]
    if said and all(isinstance(t, str) and not t.strip() for t in said) and not any(
            isinstance(m, dict) and m.get("tool_calls") for m in value):
        raise BadRow(f"the {what} is empty")
    msgs = parse_turns([dict(m) for m in prompt] + value, "role", "content", key)
    answer = msgs[len(prompt):]
    if not answer or answer[0]["role"] != "assistant":
        raise BadRow(f"the {what} ('{key}') should start with the assistant's message")
    if not any(m["content"].strip() or m.get("tool_calls") for m in answer if m["role"] == "assistant"):
        raise BadRow(f"the {what} is empty")
    return answer


def _said(messages: list[dict]) -> list:
    return [(m["role"], m["content"].strip(), repr(m.get("tool_calls"))) for m in messages]
