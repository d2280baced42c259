"""One family for every error the studio explains to people.

``StudioError`` carries a stable ``code``, the English ``message`` and ``hint`` (what to do), and the
format ``params`` the message was made from, so ``render(lang)`` can say the same in another
language from the catalogue (``studio/catalogue``). The interfaces catch ``StudioError`` and show
message + hint; any other exception is a bug and is shown as an internal error.

Raise sites give the English text as a template and its values as keywords, so the catalogue's
translation can place the same values:

    raise DataError("{name} is empty.", code="data.empty_file", name=path.name)

Engine messages name settings by their config key (``model.trust_remote_code``), never a widget or a
flag: the app shows its label for the key, the command line takes the key as ``key=value``.
"""

from __future__ import annotations

from typing import Any


def fill(template: str, params: dict) -> str:
    """``template`` with ``params`` placed; the template itself when a value is missing (an error
    message must never fail while being shown)."""
    if not params:
        return template
    # An error inside another (the data problem of a failed run) contributes its message; the outer hint says what to do.
    params = {k: v.message if isinstance(v, StudioError) else v for k, v in params.items()}
    try:
        return template.format(**params)
    except (KeyError, IndexError, ValueError):
        return template


class StudioError(Exception):
    """An error with a message for people: ``message``, ``hint``, ``code``, ``params``."""

    code = "studio"

    def __init__(self, message: str = "", *, code: str | None = None, **params: Any):
        self.template = message
        self.params = params
        if code:
            self.code = code
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return fill(self.template, self.params)

    @property
    def hint(self) -> str:
        return self.render("en")[1]

    def render(self, lang: str = "en") -> tuple[str, str]:
        """(message, hint) in ``lang`` (English where the catalogue has no translation)."""
        from .catalogue import MESSAGES
        entry = MESSAGES.get(self.code) or MESSAGES[_family_code(self, MESSAGES)]
        zh, hint, zh_hint = entry
        if self.code not in MESSAGES:
            zh = ""     # a family's text would not match this particular message
        if lang != "zh":
            return self.message, fill(hint, self.params)
        # An error inside another (the data problem a failed run reports) speaks the same language.
        params = {k: v.render(lang)[0] if isinstance(v, StudioError) else v for k, v in self.params.items()}
        return (fill(zh, params) if zh else self.message), fill(zh_hint or hint, params)

    def to_dict(self) -> dict:
        """What another process needs to say this error in any language (``from_dict``), JSON-safe."""
        def value(v: Any) -> Any:
            if isinstance(v, StudioError):
                return v.to_dict()
            return v if isinstance(v, (str, int, float, bool, type(None))) else str(v)
        return {"family": type(self).__name__, "code": self.code, "template": self.template,
                "params": {k: value(v) for k, v in self.params.items()}}

    @staticmethod
    def from_dict(d: dict) -> "StudioError":
        """The error ``to_dict`` described (the family's class when it is known here)."""
        family = {cls.__name__: cls for cls in _family(StudioError)}.get(d.get("family", ""), StudioError)
        params = {k: StudioError.from_dict(v) if isinstance(v, dict) and "template" in v else v
                  for k, v in (d.get("params") or {}).items()}
        return family(d.get("template", ""), code=d.get("code"), **params)

    def __str__(self) -> str:
        """Message and hint: the whole English text, for logs and for code that only knows exceptions."""
        hint = self.hint
        return f"{self.message} {hint}" if hint and hint not in self.message else self.message


class ConfigError(StudioError, ValueError):
    """A setting is wrong; the message names it (``section.field``) and says what to do."""
    code = "config"


class DataError(StudioError, ValueError):
    """The training data cannot be used as it is."""
    code = "data"


class ModelError(StudioError):
    """The base model cannot be found, fetched or loaded (offline, not found, out of memory...)."""
    code = "model"


class DeviceBusy(StudioError, RuntimeError):
    """The GPU (or CPU) is in use by another run or process."""
    code = "device.busy"


class JobBusy(StudioError, RuntimeError):
    """A training run is already going."""
    code = "job.busy"


class TrainingFailed(StudioError, RuntimeError):
    """A training run ended with an error; made by ``training.failures.explain``."""
    code = "training.failed"


class ResumeError(StudioError, ValueError):
    """A run cannot be resumed or extended as asked."""
    code = "resume"


class ChatError(StudioError, RuntimeError):
    """A chat cannot start or answer."""
    code = "chat"


class ExportError(StudioError, RuntimeError):
    """An export cannot be written."""
    code = "export"


class EvalError(StudioError, ValueError):
    """An evaluation cannot run as asked."""
    code = "eval"


def _family(cls: type) -> list[type]:
    return [cls] + [sub for child in cls.__subclasses__() for sub in _family(child)]


def _family_code(err: StudioError, messages: dict) -> str:
    """The class-level code (``config``, ``data``...) whose hint stands in for a code with none."""
    for cls in type(err).__mro__:
        code = cls.__dict__.get("code")
        if isinstance(code, str) and code in messages:
            return code
    return StudioError.code
