"""``studio eval``: answer an evaluation set with the base model and each run, scored, as one table.

    studio eval --runs runs/a runs/b [--prompts prompts.jsonl] [--csv table.csv]

Without --prompts the held-out demo questions are used. Each run answers with the generation settings
it chats with (its config's ``generation`` section). Every answer with a reference is marked ✓ or ✗ by
the facts of the reference it states (studio/scoring.py), with a line that says why, and the totals
close the table ("tuned-run 7 of 8 · base 0 of 8"). Each run folder gets ``eval.jsonl`` and
``eval_summary.json``.
"""

from __future__ import annotations

import sys

from ..errors import StudioError
from . import report


def add_parser(sub):
    p = sub.add_parser("eval", help="answer an evaluation set with the base and each run, side by side")
    p.add_argument("--runs", nargs="+", required=True, metavar="RUN_DIR", help="the run folders to compare")
    p.add_argument("--prompts", help="JSONL or CSV of prompts with optional reference answers "
                                      "(default: the held-out demo questions)")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="longest answer in tokens (default: each run's own generation.max_new_tokens)")
    p.add_argument("--csv", help="also save the table as this CSV file")
    return p


def run(args) -> int:
    from pathlib import Path

    from ..device import DeviceLock
    from ..evaluation import evaluate, load_prompts, summary_line, totals_of, validation_loss, write_csv

    try:
        prompts = load_prompts(args.prompts)
        rows = []
        for row in evaluate(args.runs, prompts, args.max_new_tokens, device_lock=DeviceLock()):
            rows.append(row)
            print(f"[{len(rows)}/{len(prompts)}] {row['prompt']}")
            if row["reference"]:
                print(f"  reference: {row['reference']}")
            for name, score in row["scores"].items():
                print(f"  {mark(score)} {name}: {row[name]}")
                if score:
                    print(f"      {score['explanation']}; similarity {score['similarity']}")
    except StudioError as e:
        report(e)
        return 2
    line = summary_line(totals_of(rows))
    if line:
        print(f"Facts right: {line}")
    for r in args.runs:
        loss = validation_loss(r)
        print(f"{Path(r).name}: validation loss {'n/a' if loss is None else f'{loss:.4f}'}; "
              f"answers in {Path(r) / 'eval.jsonl'}")
    if args.csv:
        print(f"Table: {write_csv(rows, Path(args.csv))}")
    return 0


def mark(score: dict | None) -> str:
    """✓ right, ✗ wrong, · no reference or no checkable fact."""
    if not score or score.get("right") is None:
        return "·"
    return "✓" if score["right"] else "✗"
