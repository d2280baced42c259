"""Small things every tab uses: turning engine errors into plain messages, and the GPU queue settings.

A handler wrapped with ``guarded(n)`` never shows a traceback: an engine error (any ``StudioError``)
becomes a warning toast with the engine's message and hint in the user's language, any other
exception an "internal error" naming the log that holds its traceback. The outputs are
left as they were (``gr.skip()``), so nothing the user entered is lost.
"""

from __future__ import annotations

import datetime as _dt
import functools
import inspect
import logging
import traceback
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from studio import paths
from studio.errors import StudioError

from .i18n import label_settings, lang_of, t

log = logging.getLogger("studio.ui")


def errors_log_path() -> Path:
    return paths.workspace() / "logs" / "app-errors.log"


def log_internal_error(exc: BaseException) -> str:
    """Log ``exc`` with its traceback to the terminal and to the workspace's error log; that log's path."""
    path = errors_log_path()
    log.error("unexpected error in the studio UI", exc_info=exc)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"--- {_dt.datetime.now().isoformat(timespec='seconds')}\n")
            f.write("".join(traceback.format_exception(exc)))
    except OSError:
        return "the terminal"
    return str(path)

# One shared slot for everything that needs the GPU (model load, training start, chat), so two
# of them never fight over its memory; other events use the queue's default limit.
GPU = dict(concurrency_id="gpu", concurrency_limit=1)


def engine_text(exc: StudioError, lang: str = "en") -> str:
    """An engine error's message and hint in ``lang``, settings named by their labels in the app."""
    message, hint = exc.render(lang_of(lang))
    text = f"{message} {hint}".strip() if hint and hint not in message else message
    return label_settings(text, lang)


def user_message(exc: BaseException, lang: str = "en") -> str:
    """A message a person can act on, for any exception."""
    if isinstance(exc, StudioError):
        return engine_text(exc, lang)
    name = type(exc).__name__
    if "OutOfMemory" in name or isinstance(exc, MemoryError):
        return t("err.oom", lang)
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return t("err.file", lang, detail=str(exc))
    # Not an engine error: a bug. Said as such, with the file that holds its traceback.
    return t("err.unexpected", lang, name=name, detail=str(exc)[:300], log=log_internal_error(exc))


def warn(exc: BaseException, lang: str = "en") -> str:
    msg = user_message(exc, lang)
    gr.Warning(msg, duration=12)
    return msg


def _lang_from(args: tuple, kwargs: dict) -> str:
    lang = kwargs.get("lang") or (args[0] if args and args[0] in ("en", "zh") else "en")
    return lang if lang in ("en", "zh") else "en"


def guarded(n_outputs: int) -> Callable:
    """Wrap a handler (function or generator) so errors become a toast and outputs stay as they were."""
    def deco(fn: Callable) -> Callable:
        skip = (lambda: gr.skip()) if n_outputs == 1 else (lambda: tuple(gr.skip() for _ in range(n_outputs)))
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def gen(*args, **kwargs):
                try:
                    yield from fn(*args, **kwargs)
                except Exception as e:  # noqa: BLE001 - the point is that nothing escapes as a traceback
                    warn(e, _lang_from(args, kwargs))
                    yield skip()
            return gen

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001
                warn(e, _lang_from(args, kwargs))
                return skip()
        return wrapper
    return deco


def history_to_messages(history: list[dict] | None) -> list[dict]:
    """Chatbot messages (content as a list of parts in Gradio 6) as plain {role, content} text."""
    out = []
    for m in history or []:
        content: Any = m.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        elif isinstance(content, dict):
            content = content.get("text", "")
        out.append({"role": m.get("role", "user"), "content": str(content or "")})
    return out
