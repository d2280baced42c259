"""The ``studio`` command: the same engine as the browser app, without a browser.

    studio presets                       list the presets
    studio data FILE [--model M] [--json]  inspect a data file as it will be trained
    studio train [--preset P | --config F] [--model M] [--data F] [--max-steps N] [--output DIR]
    studio train --resume RUN_DIR | --extend RUN_DIR --max-steps N
    studio chat --run DIR [--prompt TEXT] [--compare]
    studio export RUN_DIR --to adapter|merged|gguf [--dtype D] [--output PATH]
    studio eval --runs RUN_DIR [RUN_DIR ...] [--prompts FILE] [--csv FILE]

Each subcommand lives in ``studio/commands/<name>.py`` with ``add_parser(subparsers)`` and ``run(args)``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("presets", "data", "train", "chat", "export", "eval")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description="Fine-tune language models with LoRA / QLoRA.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"studio.commands.{name}")
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
