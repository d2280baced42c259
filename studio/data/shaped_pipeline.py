"""``prepare`` and ``inspect`` for the data shapes of preference and GRPO training (``pair``, ``labelled``,
``prompt``; see ``shaped``): the same reading, template, length rule, validation split and report words as
conversations, so the Data tab shows exactly the rows the method trains on."""

from __future__ import annotations

from ..config import DataConfig
from ..errors import DataError
from . import pairs, shaped, system_prompt
from .formats import mapping_of, suggest_mapping
from .render import FALLBACKS, resolve_template
from .rules import nothing_usable, why_none
from .stats import token_stats
from .summary import context_warnings_for, load, row_note, summary
from .types import DataReport, PreparedData


def suggest_pairs(report: DataReport, records: list[dict], tokenizer, jinja: str, cfg: DataConfig,
                  count: int) -> None:
    """A preference file read as conversations: show its pairs too, and say a preference method uses both answers."""
    try:
        built = shaped.build([r for r in records if pairs.is_pair(r)][:max(count, 1) * 4], "pair", cfg, tokenizer,
                             jinja, None)
    except DataError:
        return
    report.preview_pairs = shaped.pair_previews(built, tokenizer, jinja, count)
    if report.preview_pairs:
        report.notes.append(shaped.SUGGEST_NOTE)


def shaped_report(report: DataReport, built, shape: str, tokenizer, jinja: str, cfg: DataConfig,
                  count: int) -> DataReport:
    """The report of pair, labelled or prompt rows (``shaped.build``), filled into ``report``."""
    rows = [r for unit in built.units for r in unit]
    report.shape = shape
    report.problems = sorted(report.problems + built.problems, key=lambda p: p.row)
    report.notes += built.notes
    if tokenizer is not None:
        report.token_stats = token_stats(built.lengths, cfg.max_length)
        report.rows = len(rows)
    else:
        report.rows = sum(len(unit) for unit in built.items.values())
    report.cut, report.left_out_long = built.cut, built.left_out
    if any(isinstance(u[0], pairs.Pair) for u in built.items.values()):
        report.format = "preference"
        report.preview_pairs = shaped.pair_previews(built, tokenizer, jinja, count)
        if shape == "pair":
            report.notes.append(shaped.PAIR_NOTE.format(rows=report.rows))
    if shape == "labelled":
        report.format = "preference"
        report.labels = shaped.label_counts(rows if tokenizer is not None else
                                            [i for unit in built.items.values() for i in unit])
        report.notes.append(shaped.label_note(report.labels))
    if tokenizer is not None:
        report.preview, report.preview_marked = shaped.previews(built, tokenizer, jinja, count)
    report.system_prompt = shaped.summary_prompt(built) if tokenizer is not None else system_prompt.summarise(
        shaped.conversations(built.items))
    report.notes += row_note(report.kind, report.problems)
    report.message = summary(report.format, report.rows, report.total, report.problems, report.template,
                             report.token_stats, cfg, report.cut, report.left_out_long)
    if not report.rows:
        report.message = "No usable rows: " + why_none(report.problems)
    return report


def inspect_shaped(report: DataReport, read, shape: str, tokenizer, cfg: DataConfig, mapping: dict | None,
                   count: int, context_length: int | None) -> DataReport:
    """The Data tab's report of ``shape``: every row read and (with a tokenizer) tokenised as training will."""
    try:
        name, jinja = (resolve_template(tokenizer, cfg.template) if tokenizer is not None
                       else ("chatml", FALLBACKS["chatml"]))
        built = shaped.build(read.records, shape, cfg, tokenizer, jinja, None, mapping)
    except DataError as e:
        report.message = str(e)
        return report
    report.template = name
    report.notes += context_warnings_for(cfg, context_length)
    return shaped_report(report, built, shape, tokenizer, jinja, cfg, count)


def prepare_shaped(cfg: DataConfig, tokenizer, seed: int, shape: str) -> PreparedData:
    """The rows of ``shape`` for training, split as conversations are (seeded order, then data.validation)."""
    mapping = mapping_of(cfg) if cfg.format == "mapping" else None
    read, columns, detected = load(cfg.file, cfg.format, cfg.encoding)
    if not read.records:
        raise nothing_usable(read.problems)
    name, jinja = resolve_template(tokenizer, cfg.template)
    built = shaped.build(read.records, shape, cfg, tokenizer, jinja, seed, mapping)
    built.problems = sorted(list(read.problems) + built.problems, key=lambda p: p.row)
    train, val, val_rows = shaped.prepared_parts(built, cfg)
    report = DataReport(source=cfg.file, format=detected, rows=0, total=len(read.records) + len(read.problems),
                        columns=columns, suggested_mapping=suggest_mapping(columns), template=name, kind=read.kind,
                        notes=list(read.notes), encoding=read.encoding, encoding_sample=read.sample)
    shaped_report(report, built, shape, tokenizer, jinja, cfg, 3)
    if val and len(val) >= len(train):
        report.notes.append(f"data.validation holds back {len(val)} of the {len(train) + len(val)} usable rows, so "
                            f"only {len(train)} are trained on.")
    return PreparedData(train=train, validation=val, report=report, template_name=name, chat_template=jinja,
                        system_prompt=report.system_prompt, held_out=shaped.questions(built.items, val_rows))
