"""``studio eval``: answer an evaluation set with the base model and each run, greedy, as one table.

    studio eval --runs runs/a runs/b [--prompts prompts.jsonl] [--csv table.csv]

Without --prompts the held-out demo questions are used. Each run folder gets ``eval.jsonl``.
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
    p.add_argument("--max-new-tokens", type=int, default=200, help="longest answer in tokens")
    p.add_argument("--csv", help="also save the table as this CSV file")
    return p


def run(args) -> int:
    from pathlib import Path

    from ..device import DeviceLock
    from ..evaluation import evaluate, load_prompts, validation_loss, write_csv
    from ..runs import find_run

    args.runs = [str(find_run(r)) for r in args.runs]     # folders, or names of runs in the workspace
    try:
        prompts = load_prompts(args.prompts)
        rows = []
        for row in evaluate(args.runs, prompts, args.max_new_tokens, device_lock=DeviceLock()):
            rows.append(row)
            print(f"[{len(rows)}/{len(prompts)}] {row['prompt']}")
            if row["reference"]:
                print(f"  reference: {row['reference']}")
            for key, value in row.items():
                if key not in ("prompt", "reference"):
                    print(f"  {key}: {value}")
    except StudioError as e:
        report(e)
        return 2
    for r in args.runs:
        loss = validation_loss(r)
        print(f"{Path(r).name}: validation loss {'n/a' if loss is None else f'{loss:.4f}'}; "
              f"answers in {Path(r) / 'eval.jsonl'}")
    if args.csv:
        print(f"Table: {write_csv(rows, Path(args.csv))}")
    return 0
