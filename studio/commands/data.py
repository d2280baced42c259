"""``studio data FILE``: check a data file as it will be trained.

    studio data my.jsonl                      shape, usable rows, problems with row numbers, preview
    studio data my.csv --model default        ... plus token statistics with that model's tokenizer
    studio data my.csv --format mapping --prompt-column q --answer-column a
    studio data demo --json                   one JSON object (format, rows, problems, preview, ...)

Exits 1 when nothing usable was found (the reason is printed), 2 when the model cannot be loaded.
"""

from __future__ import annotations

import json

from ..config import FORMATS, TEMPLATES, DataConfig
from ..data.types import DataError, DataReport


def add_parser(sub):
    p = sub.add_parser("data", help="check a data file: shape, problems, preview, token lengths",
                       description="Check a data file as it will be trained: its shape, the rows with problems "
                                   "(with row numbers), the first examples as the model sees them and, with "
                                   "--model, token statistics.")
    p.add_argument("file", help="a .jsonl/.json/.csv/.tsv/.parquet file, 'demo', 'chatterbot' or a Hub dataset id")
    p.add_argument("--model", default=None, help="load this model's tokenizer for token statistics "
                                                 "('default', a Hub id, a folder or a .gguf file)")
    p.add_argument("--format", default="auto", choices=FORMATS, help="the shape of the rows (default: detect)")
    p.add_argument("--prompt-column", default="", help="with --format mapping: the prompt column")
    p.add_argument("--answer-column", default="", help="with --format mapping: the answer column")
    p.add_argument("--system-column", default="", help="with --format mapping: the system prompt column (optional)")
    p.add_argument("--template", default="auto", choices=TEMPLATES, help="chat template (default: the model's own)")
    p.add_argument("--max-length", type=int, default=512, help="longest example in tokens (default 512)")
    p.add_argument("--rows", type=int, default=3, help="how many formatted examples to show (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return p


def _load_tokenizer(source: str):
    from ..config import ModelConfig
    from ..models import load_tokenizer   # imported here: loading models is slow and not needed without --model
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
    for i, text in enumerate(report.preview, 1):
        print(f"\n--- example {i} (template: {which}) ---\n{text}")
    print(f"\n{report.message}")


def run(args) -> int:
    from ..data.pipeline import inspect

    tokenizer = None
    if args.model:
        try:
            tokenizer = _load_tokenizer(args.model)
        except Exception as e:  # ModelError carries a message for people; anything else is shown plainly too
            msg = f"Could not load the tokenizer of '{args.model}': {e}"
            print(json.dumps({"error": msg, "format": "unknown", "rows": 0, "problems": [], "preview": []})
                  if args.json else msg)
            return 2
    cfg = DataConfig(file=args.file, format=args.format, prompt_column=args.prompt_column,
                     answer_column=args.answer_column, system_column=args.system_column,
                     template=args.template, max_length=max(16, args.max_length))
    try:
        report = inspect(args.file, tokenizer=tokenizer, data_cfg=cfg, preview_rows=max(0, args.rows))
    except DataError as e:
        if args.json:
            print(json.dumps({"error": str(e), "format": "unknown", "rows": 0, "problems": [], "preview": [],
                              "message": str(e)}, ensure_ascii=False))
        else:
            print(str(e))
        return 1
    if args.json:
        out = report.to_dict()
        if not report.rows:
            out["error"] = report.message
        print(json.dumps(out, ensure_ascii=False))
    else:
        _print_text(report, show_lengths=tokenizer is not None)
    return 0 if report.rows else 1
