"""One module per ``studio`` subcommand (see studio/cli.py), and how they report errors.

An engine error (``StudioError``) is printed as ``error: <message>`` and ``hint: <what to do>``;
``STUDIO_LANG=zh`` prints both in Chinese. Anything else is a bug: ``studio/cli.py`` prints one line
naming the log file that holds the traceback.
"""

from __future__ import annotations

import os
import sys

from ..errors import StudioError


def cli_lang() -> str:
    return "zh" if os.environ.get("STUDIO_LANG", "").lower().startswith("zh") else "en"


def report(exc: StudioError, stream=None) -> None:
    """Print an engine error's message and hint (stderr unless ``stream``)."""
    stream = stream or sys.stderr
    message, hint = exc.render(cli_lang())
    print(f"error: {message}", file=stream)
    if hint and hint not in message:
        print(f"hint: {hint}", file=stream)
