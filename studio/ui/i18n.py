"""Interface languages: every label of the studio comes from ``TEXT`` (English, Simplified Chinese).

``Labels.make(cls, label=KEY, ...)`` builds a component with its words in the start language and
remembers which attribute holds which key, so switching language is one event that returns
``Labels.updates(lang)`` for every registered component (values the user typed stay untouched).
Help text of config fields comes from ``studio.config.field_help`` (every field carries it in English and
Chinese), and so do their labels: ``TEXT`` gets a ``field.<section>.<name>`` entry for each, built from
the config, and the table itself holds only the labels of controls that are not config fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import gradio as gr

from studio.config import field_help, field_labels

from .i18n_text import TEXT

# Every config field's label lives in its definition (studio/config.py); ``t("field.lora.r")`` finds it here.
for _key, _words_of in field_labels().items():
    TEXT[f"field.{_key}"] = _words_of

LANGS = {"en": "English", "zh": "简体中文"}
DEFAULT_LANG = "en"


def lang_of(lang: str | None) -> str:
    return lang if lang in LANGS else DEFAULT_LANG


def t(key: str, lang: str | None = DEFAULT_LANG, **fmt: Any) -> str:
    """The words for ``key`` in ``lang``; ``fmt`` fills {placeholders}. A missing key shows itself."""
    en, zh = TEXT.get(key, (key, key))
    text = zh if lang_of(lang) == "zh" else en
    return text.format(**fmt) if fmt else text


_SETTING = re.compile(r"\b(?:model|data|lora|training|generation)\.[a-z_]+\b")


def label_settings(text: str, lang: str | None = DEFAULT_LANG) -> str:
    """Engine messages name settings by their config key (``lora.r``); the app shows each with its
    label as well, ``LoRA rank r (lora.r)``, the words on the screen next to the key of the YAML."""
    def label(m: re.Match) -> str:
        key = m.group(0)
        return f"{t('field.' + key, lang)} ({key})" if f"field.{key}" in TEXT else key
    return _SETTING.sub(label, text)


@dataclass(frozen=True)
class Help:
    """The help text of one config field, in either language."""
    section: str
    name: str

    def text(self, lang: str) -> str:
        # A field new enough to have no Chinese yet shows its English help.
        return field_help(self.section, self.name, lang_of(lang)) or field_help(self.section, self.name)


def _words(spec: Any, lang: str) -> Any:
    if isinstance(spec, Help):
        return spec.text(lang)
    if isinstance(spec, list):   # choices: [(key, value), ...]; a key with its placeholders: ((key, fmt), value)
        return [(t(k[0], lang, **k[1]) if isinstance(k, tuple) else t(k, lang), v) for k, v in spec]
    return t(spec, lang)


class Labels:
    """Registry of translatable component attributes (label, info, placeholder, value, choices)."""

    def __init__(self, lang: str = DEFAULT_LANG):
        self.lang = lang_of(lang)
        self._items: list[tuple[Any, dict]] = []

    def __call__(self, key: str, **fmt: Any) -> str:
        return t(key, self.lang, **fmt)

    def make(self, cls: type, **kw: Any) -> Any:
        """Build ``cls`` with translatable attributes given as keys (``label="tab.model"``,
        ``info=Help(...)``, ``choices=[(key or (key, fmt), value)]``, ``text=KEY`` for the value of a Button or
        Markdown); other keywords pass through."""
        attrs = {a: kw.pop(a) for a in ("label", "info", "placeholder", "text", "choices")
                 if a in kw and _translatable(a, kw[a])}
        attrs = {("value" if a == "text" else a): s for a, s in attrs.items()}
        comp = cls(**{a: _words(s, self.lang) for a, s in attrs.items()}, **kw)
        return self.add(comp, **attrs)

    def add(self, comp: Any, **attrs: Any) -> Any:
        """Register an already built component's translatable attributes (no change now)."""
        if attrs:
            self._items.append((comp, attrs))
        return comp

    @property
    def components(self) -> list:
        return [c for c, _ in self._items]

    def updates(self, lang: str) -> list:
        return [gr.update(**{a: _words(s, lang) for a, s in attrs.items()}) for _, attrs in self._items]

    def keys(self) -> set[str]:
        """Every key in use (for the test that the table has both languages for all of them)."""
        out: set[str] = set()
        for _, attrs in self._items:
            for s in attrs.values():
                if isinstance(s, str):
                    out.add(s)
                elif isinstance(s, list):
                    out.update(k[0] if isinstance(k, tuple) else k for k, _ in s)
        return out


def _translatable(attr: str, spec: Any) -> bool:
    if attr == "choices":   # an empty list is filled at run time (runs, columns): a relabel must not empty it
        return isinstance(spec, list) and bool(spec) and all(isinstance(p, tuple) and len(p) == 2 for p in spec)
    return isinstance(spec, (str, Help))
