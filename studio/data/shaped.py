"""The data of the training methods that do not learn whole conversations (``data.types.DATA_SHAPES``):
``pair`` (DPO, ORPO, SimPO), ``labelled`` (KTO) and ``prompt`` (GRPO). ``pipeline.prepare`` and
``pipeline.inspect`` come here for those shapes, so the check and training read the rows alike.

Rows are read into items (``pairs.Pair``, ``pairs.Labelled``, ``Asked``), grouped into units that stay together
in the validation split (a pair given to KTO is one unit of two rows), then tokenised (``pair_encode``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..config import DataConfig
from ..errors import DataError
from . import pairs, system_prompt
from .formats import detect_format, normalise
from .messages import BadRow
from .pair_encode import TooLong, encode_labelled, encode_pair, encode_prompt
from .render import RenderError, format_prompt, render
from .rules import check_validation, nothing_usable, too_long, validation_count
from .types import Conversation, EncodedPrompt, Problem

PAIR_NOTE = ("This is preference data: a chosen and a rejected answer for each prompt ({rows} pairs), usable by "
             "the preference methods DPO, ORPO, SimPO and KTO (training.method).")
SUGGEST_NOTE = ("This file holds preference pairs (a chosen and a rejected answer): a preference method (DPO, ORPO, "
                "SimPO or KTO in training.method) learns from both answers.")
UNPAIR_NOTE = ("Each of the {pairs} preference pairs gives KTO two rows: the chosen answer as desirable and the "
               "rejected one as undesirable.")
KTO_AS_PROMPT_NOTE = ("The rows are answers labelled desirable or not (KTO): the desirable answers are the prompts' "
                      "reference answers, and the rows marked undesirable are left out.")
PAIR_AS_PROMPT_NOTE = "The rows are preference pairs: the chosen answer is each prompt's reference answer."


@dataclass
class Asked:
    """A GRPO item: the conversation before the last answer, and that answer as the reference."""
    row: int
    messages: list[dict]
    reference: str


@dataclass
class Built:
    units: list[list] = field(default_factory=list)      # encoded rows, grouped as they are split
    items: dict = field(default_factory=dict)             # row -> its items (for held-out questions, the preview)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    cut: int = 0
    left_out: int = 0


# ---- reading -------------------------------------------------------------------------------------
def _most_are(records: list[dict], test) -> bool:
    sample = [r for r in records[:200] if isinstance(r, dict)]
    return bool(sample) and sum(map(test, sample)) * 2 > len(sample)


def _columns(records: list[dict]) -> str:
    from .formats import columns_of
    return ", ".join(columns_of(records)) or "none"


def read_units(records: list[dict], shape: str, fmt: str = "auto", mapping: dict | None = None
               ) -> tuple[list[list], list[Problem], list[str]]:
    """The rows as units of items for ``shape``, with the problems of the rows that cannot be read."""
    problems: list[Problem] = []
    units: list[list] = []
    notes: list[str] = []

    def each(test, make, missing: str) -> None:
        for rec in records:
            row = rec.get("__row__", 0)
            if not test(rec):
                problems.append(Problem(row, missing))
                continue
            try:
                units.append(make(rec))
            except BadRow as e:
                problems.append(Problem(row, str(e)))

    no_rejected = "this row has no 'chosen' and 'rejected' answers; every row of a preference file needs both"
    if shape == "pair" or shape == "labelled" and _most_are(records, pairs.is_pair):
        if not any(pairs.is_pair(r) for r in records):
            raise DataError("This data holds no preference pairs (its columns: {columns}). DPO, ORPO and SimPO need "
                            "{needed}.", code="data.not_preference", columns=_columns(records),
                            needed=pairs.PAIR_COLUMNS)
        if shape == "pair":
            each(pairs.is_pair, lambda r: [pairs.pair_of(r)], no_rejected)
        else:
            each(pairs.is_pair, lambda r: pairs.unpair(pairs.pair_of(r)), no_rejected)
            notes.append(UNPAIR_NOTE.format(pairs=len(units)))
    elif shape == "labelled":
        if not any(pairs.is_labelled(r) for r in records):
            raise DataError("This data holds no labelled answers (its columns: {columns}). KTO needs {needed}, or a "
                            "preference file with {pairs}.", code="data.not_labelled", columns=_columns(records),
                            needed=pairs.LABEL_COLUMNS, pairs=pairs.PAIR_COLUMNS)
        each(pairs.is_labelled, lambda r: [pairs.labelled_of(r)],
             "this row has no 'completion' with a 'label'; every row of a KTO file needs 'prompt', 'completion' "
             "and 'label'")
    elif shape == "prompt" and _most_are(records, pairs.is_pair):
        each(pairs.is_pair, lambda r: [_asked(r.get("__row__", 0), *_chosen_of(pairs.pair_of(r)))], no_rejected)
        notes.append(PAIR_AS_PROMPT_NOTE)
    elif shape == "prompt":
        detected = detect_format(records) if fmt == "auto" else fmt
        read_notes: list[str] = []
        convs, problems = normalise(records, detected, mapping, read_notes)
        # normalise's notes on preference data speak of fine-tuning on the chosen answers; here they are references.
        notes += [KTO_AS_PROMPT_NOTE] if detected == "preference" else read_notes
        for conv in convs:
            try:
                units.append([_asked(conv.row, conv.messages[:-1], conv.messages[-1])])
            except BadRow as e:
                problems.append(Problem(conv.row, str(e)))
    else:
        raise ValueError(f"unknown data shape {shape!r}")
    return units, problems, notes


def _chosen_of(pair) -> tuple[list[dict], dict]:
    conv = pair.prompt + pair.chosen
    return conv[:-1], conv[-1]


def _asked(row: int, before: list[dict], last: dict) -> Asked:
    if last.get("role") != "assistant":
        raise BadRow("plain text has no question and answer; GRPO needs a prompt and its reference answer")
    if not last.get("content", "").strip():
        raise BadRow("the last answer is a tool call with no text, so there is no reference answer to score against")
    if before and before[-1]["role"] == "tool":
        raise BadRow("the last answer follows a tool result; GRPO asks questions, so the row needs a user message "
                     "before its last answer")
    return Asked(row, before, last["content"])


# ---- tokenising ----------------------------------------------------------------------------------
ENCODERS = {"pair": encode_pair, "labelled": encode_labelled, "prompt": encode_prompt}


def build(records: list[dict], shape: str, cfg: DataConfig, tokenizer, jinja: str, seed: int | None,
          mapping: dict | None = None) -> Built:
    """Read and (with a tokenizer) tokenise every unit; ``seed`` shuffles them first, as training does."""
    units, problems, notes = read_units(records, shape, cfg.format, mapping)
    out = Built(problems=problems, notes=notes)
    if seed is not None:
        random.Random(seed).shuffle(units)
    if seed is not None and cfg.max_rows:
        units = units[:cfg.max_rows]
        out.notes.append(f"Using a random {len(units)} of the rows (max_rows = {cfg.max_rows}).")
    encoder = ENCODERS[shape]
    for unit in units:
        out.items[unit[0].row] = unit
        if tokenizer is None:
            continue
        rows = []
        for item in unit:
            try:
                row, n = encoder(tokenizer, jinja, item, cfg)
            except (BadRow, RenderError) as e:
                out.problems.append(Problem(item.row, str(e)))
                continue
            except TooLong as e:
                out.problems.append(_too_long(item.row, e.tokens, cfg, shape))
                out.left_out += 1
                out.lengths.append(e.tokens)
                continue
            out.lengths.append(n)
            out.cut += getattr(row, "truncated", False)
            rows.append(row)
        if rows:
            out.units.append(rows)
    out.problems.sort(key=lambda p: p.row)
    return out


def _too_long(row: int, n: int, cfg: DataConfig, shape: str) -> Problem:
    if shape == "prompt":
        return Problem(row, f"the prompt is {n} tokens, not shorter than the maximum of {cfg.max_length}, which "
                            "leaves no room for an answer; it is left out")
    return too_long(row, n, cfg)


def label_counts(rows) -> dict:
    good = sum(1 for r in rows if getattr(r, "label", None) is True)
    return {"desirable": good, "undesirable": sum(1 for r in rows if getattr(r, "label", None) is False)}


def label_note(counts: dict) -> str:
    good, bad = counts["desirable"], counts["undesirable"]
    note = f"KTO rows: {good} desirable and {bad} undesirable answers."
    if not good or not bad:
        note += " KTO learns from both kinds; with only one of them it has nothing to contrast."
    elif max(good, bad) > 4 * min(good, bad):
        note += (" The two kinds are far from balanced: KTO can weigh the rarer kind up, but more rows of it "
                 "help more.")
    return note


# ---- held-out questions, the preview -------------------------------------------------------------
def questions(items: dict, rows: set[int]) -> list[dict]:
    """The validation items that are one question and one text answer, as {"prompt", "reference"}."""
    out = []
    for row in sorted(rows):
        item = items[row][0]
        prompt, answer = _question_answer(item)
        turns = [m for m in prompt if m["role"] != "system"]
        if [m["role"] for m in turns] == ["user"] and answer is not None:
            out.append({"prompt": str(turns[0]["content"]), "reference": answer})
    return out


def _question_answer(item) -> tuple[list[dict], str | None]:
    if isinstance(item, Asked):
        return item.messages, item.reference
    answer = item.chosen if isinstance(item, pairs.Pair) else item.completion
    if isinstance(item, pairs.Labelled) and not item.label:
        return item.prompt, None
    one = len(answer) == 1 and isinstance(answer[0].get("content"), str) and not answer[0].get("tool_calls")
    return item.prompt, answer[0]["content"] if one else None


def conversations(items: dict) -> list[Conversation]:
    """The prompt and the chosen (desirable, reference) answer of each item, for the system-prompt summary."""
    out = []
    for row, unit in items.items():
        prompt, _ = _question_answer(unit[0])
        out.append(Conversation(row=row, messages=prompt))
    return out


def pair_preview(pair, encoded, tokenizer, jinja: str) -> dict:
    """The pair side by side: the shared prompt (no loss) and each answer (loss), from the tokens training uses."""
    if encoded is not None:
        head = len(format_prompt(tokenizer, jinja, pair.prompt))
        prompt, chosen, rejected = encoded.text[:head], encoded.text[head:], encoded.rejected_text[head:]
    else:       # no model chosen yet: the fallback template's text
        prompt = format_prompt(None, jinja, pair.prompt)
        chosen = render(None, jinja, pair.prompt + pair.chosen)[len(prompt):]
        rejected = render(None, jinja, pair.prompt + pair.rejected)[len(prompt):]
    return {"row": pair.row, "prompt": [[prompt, False]], "chosen": [[chosen, True]],
            "rejected": [[rejected, True]]}


def pair_previews(built: Built, tokenizer, jinja: str, count: int = 3) -> list[dict]:
    encoded = {rows[0].row: rows[0] for rows in built.units}
    out = []
    for row in sorted(built.items):
        item = built.items[row][0]
        if not isinstance(item, pairs.Pair) or (tokenizer is not None and row not in encoded):
            continue
        try:
            out.append(pair_preview(item, encoded.get(row), tokenizer, jinja))
        except RenderError:
            continue
        if len(out) >= count:
            break
    return out


def previews(built: Built, tokenizer, jinja: str, count: int = 3) -> tuple[list[str], list[list[list]]]:
    """Text previews of labelled rows (the prompt, then the answer that carries loss) and of GRPO prompts
    (nothing of a prompt is trained on directly: the model's own answers are)."""
    texts, marked = [], []
    for rows in sorted(built.units, key=lambda u: u[0].row)[:count]:
        row = rows[0]
        if isinstance(row, EncodedPrompt):
            texts.append(row.prompt)
            marked.append([[row.prompt, False]])
            continue
        head = len(format_prompt(tokenizer, jinja, built.items[row.row][0].prompt))
        texts.append(row.text)
        marked.append([[row.text[:head], False], [row.text[head:], True]])
    return texts, marked


# ---- prepare -------------------------------------------------------------------------------------
def prepared_parts(built: Built, cfg: DataConfig):
    """(train, validation, validation rows) of the built units: the seeded order, then data.validation."""
    if not built.units:
        raise nothing_usable(built.problems)
    check_validation(cfg.validation, len(built.units))
    k = validation_count(len(built.units), cfg.validation)
    val_units, train_units = built.units[:k], built.units[k:]
    val_rows = {u[0].row for u in val_units}
    return [r for u in train_units for r in u], [r for u in val_units for r in u], val_rows


def summary_prompt(built: Built) -> dict:
    kept = {u[0].row for u in built.units}
    return system_prompt.summarise(c for c in conversations(built.items) if c.row in kept)
