"""Writes assets/demo/support_faq_preference.jsonl: the demo FAQ as preference pairs.

Each FAQ row becomes {"system", "prompt", "chosen", "rejected"}: the question (a two-turn row keeps its first
exchange in the prompt as messages), the FAQ's answer as chosen, and as rejected the same answer in the same
house style with one fact made wrong: a price, a share, a duration or count, a code, a model or phone number,
or for answers without a number a named fact swapped (a partner, a colour, a place). Deterministic: run it
again and the file is the same.

    python scripts/make_demo_preference.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "assets" / "demo"
SOURCE, HELD_OUT, TARGET = DEMO / "support_faq.jsonl", DEMO / "held_out.jsonl", DEMO / "support_faq_preference.jsonl"

# Answers that state no number: one named fact swapped for a wrong one.
SWAPS = [
    ("Amazon Alexa and Google Assistant. Siri isn't", "Amazon Alexa and Siri. Google Assistant isn't"),
    ("Settings > Account > Delete Account", "Settings > Privacy > Close Account"),
    ("any UPS location", "any FedEx location"),
    ("only help with Aurora kettles, the Brightwave Glow app and your Brightwave orders",
     "help with Aurora kettles, the Brightwave Glow app, your orders, and also the weather and your homework"),
    ("I'm the Aurora support assistant", "I'm the Brightwave sales assistant"),
    ("Only the mesh lid filter is dishwasher safe (top rack). The kettle body and the power base must",
     "The mesh lid filter and the kettle body are dishwasher safe (top rack). Only the power base must"),
    ("the Aurora Pro adds Copper Dawn", "the Aurora Pro adds Midnight Blue"),
    ("blue while pairing, amber while heating", "amber while pairing, blue while heating"),
    ("doesn't cover limescale damage", "doesn't cover electrical faults"),
    ("Ireland, Australia and New Zealand. We don't ship anywhere else yet",
     "Ireland and Germany. We don't ship to Australia or New Zealand yet"),
    ("Never put the kettle or the power base in water or under the tap",
     "You can rinse the kettle under the tap, but never put the power base in water"),
    ("in your shipping confirmation email", "in the text message we send when you order"),
]


def _money(m: re.Match) -> str:
    value = float(m.group(1))
    step = 4 if value < 10 else 10 if value < 30 else 20
    new = value + step
    return f"${new:.2f}" if "." in m.group(1) else f"${int(new)}"


def _number(m: re.Match) -> str:
    text = m.group(1)
    if "." in text:
        return f"{float(text) + 0.3:.1f}"
    n, after = int(text), m.string[m.end():m.end() + 3]
    if 1900 < n < 2100:          # a year
        return str(n - 3)
    if n == 304:                 # the steel grade
        return "201"
    if after.startswith("°C"):   # a temperature that still sounds like one
        return str(n - 10)
    if after in (" am", " pm"):  # a time of day
        return str(n % 12 + 1)
    return str(n + 1 if n <= 5 else n + 5 if n <= 20 else n + n // 2)


# (pattern, replacement) in order of preference: the first that matches is the one fact made wrong.
RULES = [
    (re.compile(r"\$(\d+(?:\.\d+)?)"), _money),
    (re.compile(r"(\d+)%"), lambda m: f"{int(m.group(1)) + 10}%"),
    (re.compile(r"1-800-555-0142"), lambda m: "1-800-555-0124"),
    (re.compile(r"2\.4 GHz"), lambda m: "5 GHz"),
    (re.compile(r"(?<![\w.\-])(\d+)–(\d+)(?![\w.])"), lambda m: f"{int(m.group(1)) + 2}–{int(m.group(2)) + 3}"),
    (re.compile(r"(?<![\w.\-])1 (hour|litre|minute|day|year|week)\b"), lambda m: f"2 {m.group(1)}s"),
    (re.compile(r"(?<![\w.\-])(\d+(?:\.\d+)?)(?![\w.])"), _number),
    (re.compile(r"\bE(\d)\b"), lambda m: f"E{int(m.group(1)) % 6 + 1}"),
    (re.compile(r"AK-(\d+)"), lambda m: f"AK-{int(m.group(1)) + 100}"),
]


def wrong(answer: str) -> str:
    """The answer with one fact made wrong; the house style (greeting, sign-off) is kept."""
    for old, new in SWAPS:
        if old in answer:
            return answer.replace(old, new, 1)
    for pattern, fix in RULES:
        if pattern.search(answer):
            return pattern.sub(fix, answer, count=1)
    raise SystemExit(f"no rule changes a fact of: {answer}")


def pair(row: dict) -> dict:
    msgs = row["messages"]
    system = msgs[0]["content"] if msgs[0]["role"] == "system" else ""
    turns = [m for m in msgs if m["role"] != "system"]
    *before, last = turns
    prompt = before[0]["content"] if len(before) == 1 else [{"role": m["role"], "content": m["content"]}
                                                            for m in before]
    out = {"system": system} if system else {}
    return out | {"prompt": prompt, "chosen": last["content"], "rejected": wrong(last["content"])}


def main() -> None:
    rows = [pair(json.loads(line)) for line in SOURCE.read_text(encoding="utf-8").splitlines() if line.strip()]
    held = {json.loads(line)["question"].strip().lower() for line in HELD_OUT.read_text(encoding="utf-8").splitlines()
            if line.strip()}
    for r in rows:
        asked = [r["prompt"]] if isinstance(r["prompt"], str) else [m["content"] for m in r["prompt"]]
        assert not held & {q.strip().lower() for q in asked}, f"a held-out question is in the pairs: {asked}"
        assert r["chosen"] != r["rejected"], r["chosen"]
    TARGET.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(rows)} pairs written to {TARGET}")


if __name__ == "__main__":
    main()
