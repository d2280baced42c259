"""The data pipeline's entry points: ``inspect`` (a report for people) and ``prepare`` (rows for training).

    report = inspect("my.csv", tokenizer=tok)           # format, problems, preview, token statistics
    data = prepare(cfg.data, tok, seed=42)              # encoded train/validation rows + the template used

Both read the source, detect or apply the shape, normalise row by row (bad rows become problems with
their row numbers), render through the chat template and mask the loss (see render.py). Both apply the
same rules, so the check says exactly which rows training will use: tool-calling rows need a template
with tool support, and a row over the maximum length is cut, or left out when it must be dropped or
when nothing of the answer would survive the cut (``length_rule``).
"""

from __future__ import annotations

import random

from ..config import DataConfig
from . import shaped_pipeline, system_prompt
from .formats import mapping_of, normalise, suggest_mapping
from .render import FALLBACKS, IGNORE, RenderError, assistant_spans, encode_full, fit, render, resolve_template
from .stats import token_stats
from .template_features import keep_supported_tools, place_reasoning
from .rules import check_validation, too_long, validation_count
from .rules import nothing_usable as _nothing_usable
from .rules import why_none as _why_none
from .summary import ROW_NOTE, context_warnings_for, cut_note
from .summary import load as _load
from .summary import row_note as _row_note
from .summary import summary as _summary
from .types import Conversation, DataReport, EncodedRow, PreparedData, Problem
from ..errors import DataError

__all__ = ["inspect", "prepare", "validation_count", "training_notes"]


def training_notes(report: DataReport, shown: int = 5) -> list[str]:
    """What a training run says about its data before it starts: the rows left out, with their numbers and
    why (the data check lists them all), then the report's own notes (encoding, shapes, held-back rows)."""
    notes = []
    bad = sorted({p.row for p in report.problems})
    if bad:
        first = {}
        for p in sorted(report.problems, key=lambda p: p.row):
            first.setdefault(p.row, p.message)
        listed = "; ".join(f"row {row}: {first[row]}" for row in bad[:shown])
        more = f"; and {len(bad) - shown} more" if len(bad) > shown else ""
        notes.append(f"{len(bad)} of {report.total} rows are left out ({listed}{more}). "
                     f"`studio data {report.source}` lists every one.")
    return notes + [n for n in report.notes if n != ROW_NOTE or bad]


def _segments(tokenizer, ids: list[int], labels: list[int], text: str, ends: list[int]) -> list[list]:
    """[[text, carries_loss], ...] following the tokens, so the highlight is exactly what is trained."""
    out: list[list] = []
    pos = 0
    for i, (tid, lab) in enumerate(zip(ids, labels)):
        if ends:
            piece, pos = text[pos:max(pos, ends[i])], max(pos, ends[i])
        else:
            piece = tokenizer.decode([tid])
        trained = lab != IGNORE
        if out and out[-1][1] == trained:
            out[-1][0] += piece
        elif piece:
            out.append([piece, trained])
    if ends and pos < len(text):
        out.append([text[pos:], False])
    return out


def _preview(tokenizer, conv: Conversation, jinja: str, cfg: DataConfig) -> tuple[str, list[list]]:
    if tokenizer is None:     # no model chosen yet: show the fallback rendering, marked by characters
        if conv.messages[0]["role"] == "text":
            text = conv.messages[0]["content"]
            return text, [[text, True]]
        text, spans = assistant_spans(lambda m, g: render(None, jinja, m, g, conv.tools), conv.messages)
        from .render import marked_segments
        marks = [[t, cfg.train_on == "all" or on] for t, on in marked_segments(text, spans)]
        return text, marks
    ids, labels, text, ends = encode_full(tokenizer, conv, jinja, cfg.train_on)
    row = fit(conv.row, ids, labels, text, ends, cfg.max_length, "truncate", tokenizer)
    if row is None:
        return text, [[text, False]]
    return row.text, _segments(tokenizer, row.input_ids, row.labels, row.text, ends[:len(row.input_ids)])


def _lengths(tokenizer, convs: list[Conversation], jinja: str) -> tuple[list[Conversation], list[int], list[Problem]]:
    """Token length of each conversation (one render each, tokenized in one batch); refused rows become problems."""
    kept, texts, problems = [], [], []
    for c in convs:
        if c.messages[0]["role"] == "text":
            kept.append(c)
            texts.append(c.messages[0]["content"])
            continue
        try:
            texts.append(render(tokenizer, jinja, c.messages, tools=c.tools))
            kept.append(c)
        except RenderError as e:
            problems.append(Problem(c.row, str(e)))
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    lengths = []
    for c, x, text in zip(kept, ids, texts):
        if c.messages[0]["role"] == "text":   # plain text gets the tokenizer's special tokens and an end
            x = tokenizer(text, add_special_tokens=True)["input_ids"]
            lengths.append(len(x) + (tokenizer.eos_token_id is not None and (not x or x[-1] != tokenizer.eos_token_id)))
        else:
            lengths.append(len(x))
    return kept, lengths, problems


def length_rule(tokenizer, convs: list[Conversation], lengths: list[int], jinja: str, cfg: DataConfig
                ) -> tuple[list[Conversation], list[Problem], list]:
    """The rows training keeps, the problems of those it leaves out, and the [row, tokens] of those it cuts. A
    row over the maximum is dropped with overlong='drop'; otherwise it is cut, unless no trained token is left."""
    kept, problems, cut = [], [], []
    for conv, n in zip(convs, lengths):
        if n <= cfg.max_length:
            kept.append(conv)
            continue
        if cfg.overlong == "truncate":
            try:
                ids, labels, text, ends = encode_full(tokenizer, conv, jinja, cfg.train_on)
            except RenderError as e:
                problems.append(Problem(conv.row, str(e)))
                continue
            if fit(conv.row, ids, labels, text, ends, cfg.max_length, "truncate", tokenizer) is not None:
                kept.append(conv)
                cut.append([conv.row, n])
                continue
        problems.append(too_long(conv.row, n, cfg))
    return kept, problems, cut


def _normalised(read, detected: str, mapping: dict | None) -> tuple[list[Conversation], list[Problem], list[str]]:
    notes: list[str] = []
    convs, problems = normalise(read.records, detected, mapping, notes)
    return convs, problems, notes


def _template_rules(convs: list[Conversation], jinja: str, name: str) -> tuple[list[Conversation], list[Problem],
                                                                                list[str]]:
    """Rules that depend on the template: tool-calling rows need tool support; where reasoning goes."""
    convs, problems = keep_supported_tools(convs, jinja, name)
    return convs, problems, place_reasoning(convs, jinja)


def inspect(source: str, fmt: str = "auto", mapping: dict | None = None, tokenizer=None,
            data_cfg: DataConfig | None = None, preview_rows: int = 3, context_length: int | None = None,
            shape: str = "conversation") -> DataReport:
    """Read and check a data source. Raises DataError only when the source cannot be read at all.
    ``context_length``: the model's, to warn when the maximum length is longer. ``shape``: what the training
    method reads (``types.DATA_SHAPES``); preference files read as conversations still preview their pairs."""
    cfg = data_cfg or DataConfig(file=source)
    if fmt == "auto" and data_cfg is not None:
        fmt = cfg.format
    if mapping is None and fmt == "mapping":
        mapping = mapping_of(cfg)
    read, columns, detected = _load(source, fmt, cfg.encoding)
    report = DataReport(source=source, format=detected, rows=0, total=len(read.records) + len(read.problems),
                        problems=list(read.problems), columns=columns, suggested_mapping=suggest_mapping(columns),
                        kind=read.kind, notes=list(read.notes), encoding=read.encoding,
                        encoding_sample=read.sample)
    if not read.records:
        report.message = "No usable rows: " + _why_none(report.problems)
        return report
    if shape != "conversation":
        return shaped_pipeline.inspect_shaped(report, read, shape, tokenizer, cfg, mapping, preview_rows, context_length)
    try:
        convs, problems, notes = _normalised(read, detected, mapping)
    except DataError as e:
        report.message = str(e)
        return report
    report.problems += problems
    report.notes += notes
    try:
        name, jinja = resolve_template(tokenizer, cfg.template) if tokenizer is not None else ("chatml", FALLBACKS["chatml"])
    except DataError as e:
        name, jinja = "", ""
        report.notes.append(str(e))
    report.template = name
    if jinja:
        convs, refused, notes = _template_rules(convs, jinja, name)
        report.problems += refused
        report.notes += notes
    if tokenizer is not None and jinja:
        convs, lengths, refused = _lengths(tokenizer, convs, jinja)
        report.problems += refused
        report.token_stats = token_stats(lengths, cfg.max_length)
        convs, refused, report.cut_rows = length_rule(tokenizer, convs, lengths, jinja, cfg)
        report.cut = len(report.cut_rows)
        if report.cut_rows:
            report.notes.append(cut_note(report.cut_rows, cfg.max_length))
        report.problems += refused
        report.left_out_long = len(refused)
    report.system_prompt = system_prompt.summarise(convs)
    report.notes += context_warnings_for(cfg, context_length)
    for conv in convs[:preview_rows] if jinja else []:
        try:
            text, marks = _preview(tokenizer, conv, jinja, cfg)
        except RenderError:
            continue
        report.preview.append(text)
        report.preview_marked.append(marks)
    report.problems.sort(key=lambda p: p.row)
    report.notes += _row_note(read.kind, report.problems)
    if detected == "preference" and jinja:
        shaped_pipeline.suggest_pairs(report, read.records, tokenizer, jinja, cfg, preview_rows)
    report.rows = len(convs)
    report.message = _summary(detected, report.rows, report.total, report.problems, name, report.token_stats, cfg,
                              report.cut, report.left_out_long)
    if not report.rows:
        report.message = "No usable rows: " + _why_none(report.problems)
    return report


def prepare(data_cfg: DataConfig, tokenizer, seed: int, shape: str = "conversation") -> PreparedData:
    """Encoded, shuffled train/validation rows of ``shape`` (a key of ``types.DATA_SHAPES``: what the training
    method reads). Raises DataError when nothing usable is left."""
    if shape != "conversation":
        return shaped_pipeline.prepare_shaped(data_cfg, tokenizer, seed, shape)
    cfg = data_cfg
    mapping = mapping_of(cfg) if cfg.format == "mapping" else None
    read, columns, detected = _load(cfg.file, cfg.format, cfg.encoding)
    if not read.records:
        raise _nothing_usable(read.problems)
    convs, problems, notes = _normalised(read, detected, mapping)
    problems = list(read.problems) + problems
    name, jinja = resolve_template(tokenizer, cfg.template)
    convs, refused, more_notes = _template_rules(convs, jinja, name)
    problems += refused
    notes += more_notes
    convs = list(convs)
    random.Random(seed).shuffle(convs)      # max_rows takes a random sample, not just the top of the file
    if cfg.max_rows:
        convs = convs[:cfg.max_rows]
    rows: list[EncodedRow] = []
    lengths: list[int] = []
    cut_rows: list = []
    left_out = 0
    for conv in convs:
        try:
            ids, labels, text, ends = encode_full(tokenizer, conv, jinja, cfg.train_on)
        except RenderError as e:
            problems.append(Problem(conv.row, str(e)))
            continue
        lengths.append(len(ids))
        row = fit(conv.row, ids, labels, text, ends, cfg.max_length, cfg.overlong, tokenizer)
        if row is None:
            problems.append(too_long(conv.row, len(ids), cfg))
            left_out += 1
            continue
        if row.truncated:
            cut_rows.append([conv.row, len(ids)])
        rows.append(row)
    problems.sort(key=lambda p: p.row)
    cut = len(cut_rows)
    total = len(read.records) + len(read.problems)
    if not rows:
        raise _nothing_usable(problems)
    check_validation(cfg.validation, len(rows))
    k = validation_count(len(rows), cfg.validation)
    train, val = rows[k:], rows[:k]        # rows are already in seeded random order
    stats = token_stats(lengths, cfg.max_length)
    kept = {r.row for r in rows}
    used = [c for c in convs if c.row in kept]
    prompt_info = system_prompt.summarise(used)
    report = DataReport(source=cfg.file, format=detected, rows=len(rows), total=total, problems=problems,
                        columns=columns, suggested_mapping=suggest_mapping(columns), template=name,
                        token_stats=stats, kind=read.kind,
                        notes=list(read.notes) + notes + _row_note(read.kind, problems),
                        encoding=read.encoding, encoding_sample=read.sample, cut=cut, cut_rows=cut_rows,
                        left_out_long=left_out, system_prompt=prompt_info)
    if cut_rows:
        report.notes.append(cut_note(cut_rows, cfg.max_length))
    for conv in sorted(used, key=lambda c: c.row)[:3]:
        text, marks = _preview(tokenizer, conv, jinja, cfg)
        report.preview.append(text)
        report.preview_marked.append(marks)
    report.message = _summary(detected, len(rows), total, problems, name, stats, cfg, cut, left_out)
    if cfg.max_rows and len(convs) < len(read.records):
        report.notes.append(f"Using a random {len(convs)} of the rows (max_rows = {cfg.max_rows}).")
    if k and k >= len(train):
        report.notes.append(f"data.validation holds back {k} of the {len(rows)} usable rows, so only {len(train)} "
                            "are trained on.")
    return PreparedData(train=train, validation=val, report=report, template_name=name, chat_template=jinja,
                        system_prompt=prompt_info, held_out=_questions(used, {r.row for r in val}))


def _questions(convs: list[Conversation], rows: set[int]) -> list[dict]:
    """The held-back rows that are one question and its answer, as an evaluation set."""
    out = []
    for conv in sorted((c for c in convs if c.row in rows), key=lambda c: c.row):
        turns = [m for m in conv.messages if m.get("role") in ("user", "assistant")]
        if [m["role"] for m in turns] == ["user", "assistant"] and isinstance(turns[1].get("content"), str):
            out.append({"prompt": str(turns[0]["content"]), "reference": turns[1]["content"]})
    return out
