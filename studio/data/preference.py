"""Preference data (DPO: ``chosen``/``rejected`` per prompt; KTO: ``completion`` with a true/false ``label``).

The studio does supervised fine-tuning, not preference training, so such a file trains on its chosen
(or desirable) answers only, and the report says so in a note. Shapes read:

- ``{"prompt": str, "chosen": str, "rejected": str}``                      explicit prompt, text answers
- ``{"prompt": [messages], "chosen": [messages], "rejected": [...]}``      conversational, explicit prompt
- ``{"chosen": [messages], "rejected": [messages]}``                       implicit prompt (in each answer)
- ``{"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ...", "rejected": ...}``  Anthropic HH text
- ``{"prompt": ..., "completion": ..., "label": true|false}``               KTO (only label true is trained)
"""

from __future__ import annotations

import re

from .messages import BadRow, check_turns, parse_turns, type_name

NOTE = ("This is preference data ({kind}: a chosen and a rejected answer per prompt, as used for DPO). The studio "
        "fine-tunes on the chosen answers (supervised fine-tuning); the rejected answers are not used. Preference "
        "training (DPO/KTO) is not what this run does.")
KTO_NOTE = ("This is KTO preference data (answers marked desirable or not with 'label'). The studio fine-tunes on "
            "the {good} desirable answers (supervised fine-tuning); the {bad} rows marked undesirable (label false) "
            "are left out. Preference training (KTO) is not what this run does.")
_HH_TURN = re.compile(r"\n*(Human|Assistant):\s?", re.IGNORECASE)


class Skipped(Exception):
    """A row that is left out on purpose (an undesirable KTO answer), counted in a note, not a problem."""


def is_preference(rec: dict) -> bool:
    if "chosen" in rec and "rejected" in rec:
        return True
    return "completion" in rec and "prompt" in rec and isinstance(rec.get("label"), bool)


def kind_of(rec: dict) -> str:
    return "KTO" if "label" in rec and "chosen" not in rec else "DPO"


def conversation(rec: dict) -> list[dict]:
    """The messages to train on: the prompt and the chosen (desirable) answer."""
    if "chosen" not in rec:                       # KTO
        if rec.get("label") is not True:
            raise Skipped()
        return _join(rec.get("prompt"), rec.get("completion"), "completion", rec)
    return _join(rec.get("prompt"), rec.get("chosen"), "chosen", rec)


def _join(prompt, answer, key: str, rec: dict) -> list[dict]:
    system = rec.get("system") if isinstance(rec.get("system"), str) else ""
    head = [{"role": "system", "content": system}] if system.strip() else []
    if isinstance(answer, list):
        if prompt is None:                         # implicit prompt: the chosen conversation holds it
            return parse_turns(answer, "role", "content", key)
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        if not isinstance(prompt, list):
            raise BadRow(f"'prompt' should be text or a list of messages but is {type_name(prompt)}")
        return parse_turns(head + prompt + answer, "role", "content", key)
    if not isinstance(answer, str) or not answer.strip():
        raise BadRow(f"the {key} answer ('{key}') is {'empty' if isinstance(answer, str) else 'missing'}")
    if prompt is None or prompt == "":
        turns = hh_turns(answer)
        if turns is None:
            raise BadRow(f"there is no 'prompt', and the {key} text is not a 'Human: … Assistant: …' conversation")
        return check_turns(head + turns)
    if isinstance(prompt, list):
        return parse_turns(head + prompt + [{"role": "assistant", "content": answer}], "role", "content", key)
    if not isinstance(prompt, str):
        raise BadRow(f"'prompt' should be text but is {type_name(prompt)}")
    return check_turns(head + [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}])


def hh_turns(text: str) -> list[dict] | None:
    """Anthropic HH style: '\\n\\nHuman: hi\\n\\nAssistant: hello' as messages, or None."""
    parts = _HH_TURN.split(text)
    if len(parts) < 3:
        return None
    out = []
    for speaker, said in zip(parts[1::2], parts[2::2]):
        out.append({"role": "user" if speaker.lower() == "human" else "assistant", "content": said.strip()})
    return out
