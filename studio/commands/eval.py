"""``studio eval``: answer an evaluation set with the base model and each run, greedy, as one table.

    studio eval --runs runs/a runs/b [--prompts prompts.jsonl] [--csv table.csv] [--judge default]

Without --prompts the held-out demo questions are used. Each run answers with the generation settings
it chats with (its config's ``generation`` section). Every answer with a reference is marked ✓ or ✗ by
the facts of the reference it states (studio/scoring.py), with a line that says why, and the totals
close the table ("tuned-run 7 of 8 · base 0 of 8"). Each run folder gets ``eval.jsonl`` and
``eval_summary.json``, written only when every prompt was answered. ``--judge SOURCE`` (off by default) then
has a chat model grade each answer against its reference with the prompt ``--help`` prints (studio/judge.py).
Ctrl-C or SIGTERM stops after discarding the unfinished ``eval.jsonl.partial`` (an earlier ``eval.jsonl`` is
kept; stopped while judging, the answers' eval.jsonl is kept without verdicts) and exits 130 / 143.
Exit codes: 0 answered, 2 refused, 130/143 stopped.
"""

from __future__ import annotations

import sys

from ..errors import StudioError
from . import report
from .stops import Stopped, StopSignals


def add_parser(sub):
    import argparse

    from ..judge import PROMPT
    # The judge's prompt is shown where the flag is: what it asks is part of what its verdict means.
    p = sub.add_parser("eval", help="answer an evaluation set with the base and each run, side by side",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="With --judge, every answer with a reference is graded with this prompt (a Chinese "
                              "question gets it in Chinese):\n\n" + PROMPT)
    p.add_argument("--runs", nargs="+", required=True, metavar="RUN_DIR", help="the run folders to compare")
    p.add_argument("--prompts", help="JSONL or CSV of prompts with optional reference answers "
                                      "(default: the held-out demo questions)")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="longest answer in tokens (default: each run's own generation.max_new_tokens)")
    p.add_argument("--csv", help="also save the table as this CSV file")
    p.add_argument("--judge", metavar="SOURCE", default=None,
                   help="also have a chat model grade each answer against its reference (off by default): 'default' "
                        "(the built-in model), a model folder, a .gguf file, a Hub id, or a finished run's folder; "
                        "loaded after the answers, greedy. An opinion beside the facts score, not a measurement")
    return p


def run(args) -> int:
    from contextlib import closing
    from pathlib import Path

    from ..device import DeviceLock
    from ..evaluation import (check_csv_destination, evaluate, judge_line, judge_totals_of, load_prompts, summary_line,
                              totals_of, validation_loss, write_csv)
    from ..runs import find_run

    rows: list[dict] = []
    prompts: list[dict] = []
    finished = False
    judged = 0
    with StopSignals():
        try:
            args.runs = [str(find_run(r)) for r in args.runs]     # folders, or names of runs in the workspace
            prompts = load_prompts(args.prompts)
            csv_path = check_csv_destination(args.csv) if args.csv else None
            print(f"Answering {len(prompts)} prompts with the base model and {len(args.runs)} run(s)...", flush=True)
            judge = getattr(args, "judge", None)
            with closing(evaluate(args.runs, prompts, args.max_new_tokens, device_lock=DeviceLock(),
                                  judge=judge)) as answers:
                for row in answers:
                    if "judge" in row:            # the second pass: the same row, now graded
                        judged += 1
                        print_verdicts(row, judge, judged, len(rows))
                        continue
                    rows.append(row)
                    print(f"[{len(rows)}/{len(prompts)}] {row['prompt']}")
                    if row["reference"]:
                        print(f"  reference: {row['reference']}")
                    for name, score in row["scores"].items():
                        print(f"  {mark(score)} {name}: {row[name]}")
                        if score:
                            print(f"      {score['explanation']}; similarity {score['similarity']}")
            finished = True
            line = summary_line(totals_of(rows))
            if line:
                print(f"Facts right: {line}")
            line = judge_line(judge_totals_of(rows))
            if line:
                print(f"Judge ({judge}): {line}")
            for r in args.runs:
                loss = validation_loss(r)
                print(f"{Path(r).name}: validation loss {'n/a' if loss is None else f'{loss:.4f}'}; "
                      f"answers in {Path(r) / 'eval.jsonl'}")
            if csv_path:
                print(f"Table: {write_csv(rows, csv_path)}")
        except Stopped as stop:
            if finished:
                print("\nStopped: every run's eval.jsonl was written; the CSV table may be incomplete.", file=sys.stderr)
            elif getattr(args, "judge", None) and prompts and len(rows) == len(prompts):
                print(f"\nStopped while judging ({judged} of {len(rows)} rows): every run's eval.jsonl was written "
                      "with the answers and scores, without the judge's verdicts.", file=sys.stderr)
            else:
                done = f"after {len(rows)} of {len(prompts)} prompts" if prompts else "before the first answer"
                print(f"\nStopped {done}: no eval.jsonl was written (an unfinished one is never kept; an earlier "
                      "eval.jsonl stays as it was).", file=sys.stderr)
            return stop.code
        except StudioError as e:
            report(e)
            return 2
    return 0


def print_verdicts(row: dict, judge: str, n: int, total: int) -> None:
    if n == 1:
        print(f"Judging the answers with {judge} (the prompt: studio eval --help)...", flush=True)
    if not any(row["judge"].values()):
        return
    print(f"[judge {n}/{total}] {row['prompt']}")
    for name, v in row["judge"].items():
        if v:
            print(f"  {JUDGE_MARKS[v['verdict']]} {name}: {v['reason']}")


JUDGE_MARKS = {"right": "✓", "wrong": "✗", "unclear": "?"}


def mark(score: dict | None) -> str:
    """✓ right, ✗ wrong, · no reference or no checkable fact."""
    if not score or score.get("right") is None:
        return "·"
    return "✓" if score["right"] else "✗"
