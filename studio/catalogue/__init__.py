"""The engine's messages in other languages, keyed by the error's code.

``MESSAGES[code] = (zh message, English hint, zh hint)``: the English message is written where the
error is raised (``studio/errors.py``), so it reads next to the code that raises it; the catalogue
holds what the interfaces add, the hint and the translations. Templates use the raise site's keyword
values (``{name}``). A code with no entry, or no Chinese, shows English: never nothing.
The areas live in one module each, so no file grows into a wall of text. The catalogue is words only:
``StudioError.render`` (``studio/errors.py``) places them.
"""

from __future__ import annotations

from . import commands, config, data, models, runs

MESSAGES: dict[str, tuple[str, str, str]] = {**config.MESSAGES, **data.MESSAGES, **models.MESSAGES,
                                             **runs.MESSAGES, **commands.MESSAGES}

LANGS = ("en", "zh")
