"""The engine's messages in other languages, keyed by the error's code.

``MESSAGES[code] = (zh message, English hint, zh hint)``: the English message is written where the
error is raised (``studio/errors.py``), so it reads next to the code that raises it; the catalogue
holds what the interfaces add, the hint and the translations. Templates use the raise site's keyword
values (``{name}``). A code with no entry, or no Chinese, shows English: never nothing.
The areas live in one module each, so no file grows into a wall of text.
"""

from __future__ import annotations

from ..errors import StudioError, fill
from . import commands, config, data, models, runs

MESSAGES: dict[str, tuple[str, str, str]] = {**config.MESSAGES, **data.MESSAGES, **models.MESSAGES,
                                             **runs.MESSAGES, **commands.MESSAGES}

LANGS = ("en", "zh")


def family_code(err: StudioError) -> str:
    """The class-level code (``config``, ``data``...) whose hint stands in for a code with none."""
    for cls in type(err).__mro__:
        code = cls.__dict__.get("code")
        if isinstance(code, str) and code in MESSAGES:
            return code
    return StudioError.code


def render(err: StudioError, lang: str = "en") -> tuple[str, str]:
    """(message, hint) of ``err`` in ``lang``."""
    entry = MESSAGES.get(err.code) or MESSAGES[family_code(err)]
    zh, hint, zh_hint = entry
    if err.code not in MESSAGES:
        zh = ""     # a family's text would not match this particular message
    if lang != "zh":
        return err.message, fill(hint, err.params)
    # An error inside another (the data problem a failed run reports) speaks the same language.
    params = {k: v.render(lang)[0] if isinstance(v, StudioError) else v for k, v in err.params.items()}
    return (fill(zh, params) if zh else err.message), fill(zh_hint or hint, params)
