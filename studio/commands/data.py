"""``studio data FILE``: check a data file as it will be trained.

    studio data my.jsonl                      shape, usable rows, problems with row numbers, preview
    studio data my.csv --model default        ... plus token statistics with that model's tokenizer
    studio data my.csv --preset cpu-demo      ... checked with the preset's model and data settings (max length)
    studio data my.csv --format mapping --prompt-column q --answer-column a
    studio data demo --json                   one JSON object (format, rows, problems, preview, ...)
    studio data demo-preference --shape pair  ... read as a preference method reads it, pairs side by side

Exits 1 when nothing usable was found (the reason is printed), 2 when the model cannot be loaded.
"""

from __future__ import annotations

import dataclasses
import json

from ..config import DataConfig
from ..data.types import DATA_SHAPES, DataReport
from ..errors import StudioError
from . import cli_lang
from .fields import HelpFormatter, add_field_option

DATA_OPTIONS = ("format", "prompt_column", "answer_column", "system_column", "template", "encoding", "max_length")


def add_parser(sub):
    p = sub.add_parser("data", help="check a data file: shape, problems, preview, token lengths",
                       formatter_class=HelpFormatter,
                       description="Check a data file as it will be trained: its shape, the rows with problems "
                                   "(with row numbers), the first examples as the model sees them and, with "
                                   "--model, token statistics.")
    p.add_argument("file", help="a .jsonl/.json/.csv/.tsv/.parquet file, 'demo', 'chatterbot' or a Hub dataset id")
    p.add_argument("--model", default=None, help="load this model's tokenizer for token statistics "
                                                 "('default', a Hub id, a folder or a .gguf file)")
    p.add_argument("--preset", default=None, help="check with this preset's data settings (maximum length, "
                                                  "template...) and model, as `studio train --preset` trains")
    # The data settings training uses, with the help, defaults and choices of studio/config.py.
    for name in DATA_OPTIONS:
        add_field_option(p, "data", name, "--" + name.replace("_", "-"))
    p.add_argument("--shape", choices=tuple(DATA_SHAPES), default="conversation",
                   help="read the rows as a training method does: 'conversation' (SFT), 'pair' (DPO, ORPO, SimPO: a "
                        "chosen and a rejected answer), 'labelled' (KTO: answers labelled desirable or not), 'prompt' "
                        "(GRPO: prompts with a reference answer)")
    p.add_argument("--rows", type=int, default=3, help="how many formatted examples to show (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return p


def _load_tokenizer(source: str):
    from ..config import ModelConfig
    from ..models.load import load_tokenizer   # imported here: loading models is slow and not needed without --model
    return load_tokenizer(ModelConfig(source=source))


def _print_text(report: DataReport, show_lengths: bool) -> None:
    print(f"Data:      {report.source} ({report.kind or '?'})")
    print(f"Format:    {report.format}")
    print(f"Usable:    {report.rows} of {report.total} rows")
    if report.columns:
        print(f"Columns:   {', '.join(report.columns)}")
    if report.format == "unknown" and any(report.suggested_mapping.values()):
        m = report.suggested_mapping
        print(f"Suggested: --format mapping --prompt-column {m['prompt'] or '?'} --answer-column {m['answer'] or '?'}"
              + (f" --system-column {m['system']}" if m["system"] else ""))
    for note in report.notes:
        print(f"Note:      {note}")
    if report.problems:
        print(f"\nProblems ({len(report.problems)}):")
        for p in report.problems[:50]:
            print(f"  row {p.row}: {p.message}")
        if len(report.problems) > 50:
            print(f"  ... and {len(report.problems) - 50} more (use --json for all)")
    s = report.token_stats
    if show_lengths and s and s["count"]:
        print(f"\nTokens per row: min {s['min']}, median {s['median']:g}, 95% {s['p95']}, max {s['max']}; "
              f"{s['over_max']} over the maximum of {s['max_length']}")
    which = report.template if show_lengths else f"{report.template}; give --model to see the model's own"
    if report.shape == "pair":
        for i, pair in enumerate(report.preview_pairs, 1):
            prompt, chosen, rejected = ("".join(t for t, _ in pair[k]) for k in ("prompt", "chosen", "rejected"))
            print(f"\n--- pair {i}, row {pair['row']} (template: {which}) ---\n{prompt}"
                  f"\n[chosen]\n{chosen}\n[rejected]\n{rejected}")
    else:
        for i, text in enumerate(report.preview, 1):
            print(f"\n--- example {i} (template: {which}) ---\n{text}")
    print(f"\n{report.message}")


def run(args) -> int:
    from ..data.pipeline import inspect

    base = DataConfig()
    if args.preset:
        try:
            from ..presets import load_preset
            preset = load_preset(args.preset)
        except StudioError as e:
            message, hint = e.render(cli_lang())
            print(f"{message}\nhint: {hint}" if hint else message)
            return 2
        base = preset.data
        args.model = args.model or preset.model.source
    tokenizer = None
    if args.model:
        try:
            tokenizer = _load_tokenizer(args.model)
        except StudioError as e:     # the model cannot be found or loaded: said, with what to do
            msg = f"Could not load the tokenizer of '{args.model}': {' '.join(e.render(cli_lang()))}"
            print(json.dumps({"error": msg, "format": "unknown", "rows": 0, "problems": [], "preview": []})
                  if args.json else msg)
            return 2
    # An option left at its default takes the preset's value (the same as training with that preset).
    given = {name: getattr(args, name) for name in DATA_OPTIONS if getattr(args, name) != getattr(DataConfig(), name)}
    cfg = DataConfig(**{**dataclasses.asdict(base), "file": args.file, **given})
    cfg.max_length = max(16, cfg.max_length)
    try:
        report = inspect(args.file, tokenizer=tokenizer, data_cfg=cfg, preview_rows=max(0, args.rows),
                         shape=args.shape)
    except StudioError as e:    # the file cannot be read at all (DataError), or a setting is wrong
        message, hint = e.render(cli_lang())
        if args.json:
            print(json.dumps({"error": message, "hint": hint, "code": e.code, "format": "unknown", "rows": 0,
                              "problems": [], "preview": [], "message": message}, ensure_ascii=False))
        else:
            print(f"{message}\nhint: {hint}" if hint else message)
        return 1
    if args.json:
        out = report.to_dict()
        if not report.rows:
            out["error"] = report.message
        print(json.dumps(out, ensure_ascii=False))
    else:
        _print_text(report, show_lengths=tokenizer is not None)
    return 0 if report.rows else 1
