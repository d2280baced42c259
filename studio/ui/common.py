"""Small things every tab uses: turning engine errors into plain messages, and the GPU queue settings.

A handler wrapped with ``guarded(n)`` never shows a traceback: an engine error (ConfigError,
DataError, ModelError, JobBusy...) becomes a warning toast with the engine's own message, any other
exception a short message pointing at the terminal, where the traceback is logged. The outputs are
left as they were (``gr.skip()``), so nothing the user entered is lost.
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any, Callable

import gradio as gr

from .i18n import t

log = logging.getLogger("studio.ui")

# One shared slot for everything that needs the GPU (model load, training start, chat), so two
# of them never fight over its memory; other events use the queue's default limit.
GPU = dict(concurrency_id="gpu", concurrency_limit=1)


def _user_error_types() -> tuple[type, ...]:
    """The engine's "your input is wrong" exceptions, whose messages are written for people."""
    import importlib

    found: list[type] = []
    for mod, names in (("studio.config", ("ConfigError",)), ("studio.data.types", ("DataError",)),
                       ("studio.models", ("ModelError",)), ("studio.jobs", ("JobBusy", "DeviceBusy")),
                       ("studio.inference", ("ChatError",)), ("studio.training.resume", ("ResumeError",)),
                       ("studio.export.files", ("ExportError",)), ("studio.evaluation", ("EvalError",))):
        try:
            m = importlib.import_module(mod)
        except Exception:  # an engine module that is missing must not take the UI down
            continue
        found += [getattr(m, n) for n in names if isinstance(getattr(m, n, None), type)]
    return tuple(found)


def user_message(exc: BaseException, lang: str = "en") -> str:
    """A message a person can act on, for any exception."""
    if isinstance(exc, _user_error_types()):
        return str(exc)
    name = type(exc).__name__
    if "OutOfMemory" in name or isinstance(exc, MemoryError):
        return t("err.oom", lang)
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return t("err.file", lang, detail=str(exc))
    log.exception("unexpected error in the studio UI", exc_info=exc)
    return t("err.unexpected", lang, name=name, detail=str(exc)[:300])


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
