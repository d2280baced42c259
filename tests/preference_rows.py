"""Preference rows for the tiny model, built in code: pairs (DPO, ORPO, SimPO) and labelled answers (KTO)."""

from __future__ import annotations

from studio.data.types import DataReport, EncodedLabelled, EncodedPair, PreparedData

from tiny import CHATML

QUESTIONS = [
    ("What is the warranty?", "Two years, and returns within 30 days.", "The quick brown fox."),
    ("How much is the kettle?", "The Aurora kettle costs 79 dollars.", "Hello, how are you today?"),
    ("Does it ship to Canada?", "It ships to Canada.", "0123456789."),
    ("Hello, how are you today?", "Happy to help!", "The lazy dog jumps."),
    ("What does the fox do?", "The quick brown fox jumps over the lazy dog.", "Two years."),
    ("Which digits?", "0123456789.", "The kettle ships."),
    ("Can I return it?", "Returns within 30 days.", "The fox is brown."),
    ("Who am I talking to?", "A helpful assistant.", "79 dollars and Canada."),
]


def _prompt(tok, q):
    return tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False)


def _answer_ids(tok, a):
    return tok(a + "<|im_end|>\n", add_special_tokens=False)["input_ids"]


def pair(tok, i, q, good, bad) -> EncodedPair:
    p = _prompt(tok, q)
    return EncodedPair(row=i + 1, prompt_ids=tok(p, add_special_tokens=False)["input_ids"],
                       chosen_ids=_answer_ids(tok, good), rejected_ids=_answer_ids(tok, bad),
                       text=p + good, rejected_text=p + bad)


def _data(train, validation) -> PreparedData:
    report = DataReport(source="pairs", format="preference", rows=len(train) + len(validation),
                        total=len(train) + len(validation))
    return PreparedData(train=train, validation=validation, report=report, template_name="chatml",
                        chat_template=CHATML)


def pair_data(tok, held_back: int = 4) -> PreparedData:
    """Every pair trains; the first ``held_back`` are also the validation rows the margins are read on."""
    rows = [pair(tok, i, *x) for i, x in enumerate(QUESTIONS)]
    return _data(rows, rows[:held_back])


def labelled_data(tok, good_per_bad: int = 3) -> PreparedData:
    """Labelled answers, ``good_per_bad`` good ones for each bad one."""
    rows = []
    for i, (q, good, bad) in enumerate(QUESTIONS):
        p = tok(_prompt(tok, q), add_special_tokens=False)["input_ids"]
        is_good = i % (good_per_bad + 1) != good_per_bad
        rows.append(EncodedLabelled(row=i + 1, prompt_ids=p, completion_ids=_answer_ids(tok, good if is_good else bad),
                                    label=is_good, text=q))
    return _data(rows, rows[:4])
