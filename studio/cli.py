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
    from .commands import report
    from .errors import StudioError
    try:
        return int(args._run(args) or 0)
    except StudioError as e:     # a command that did not catch its own: still message + hint, no traceback
        report(e)
        return 1
    except KeyboardInterrupt as e:   # Ctrl-C in a command that has no stop of its own (data, presets)
        print("\nStopped.", file=sys.stderr)
        return getattr(e, "code", 130)
    except Exception as e:       # noqa: BLE001 - a bug: said as such, the traceback kept in a file
        print(f"internal error: {type(e).__name__}: {str(e)[:300]}\nThis is a bug in the studio, not a problem with "
              f"your settings; the traceback is in {_log_internal_error(e)}.", file=sys.stderr)
        return 1


def _log_internal_error(exc: BaseException) -> str:
    import datetime
    import traceback

    from . import paths
    path = paths.workspace() / "logs" / "cli-errors.log"
    text = "".join(traceback.format_exception(exc))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"--- {datetime.datetime.now().isoformat(timespec='seconds')} studio {' '.join(sys.argv[1:])}\n")
            f.write(text)
    except OSError:
        sys.stderr.write(text)
        return "the output above"
    return str(path)


if __name__ == "__main__":
    sys.exit(main())
