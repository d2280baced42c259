"""Command-line options made from the config's fields (``studio/config.py``): each field's help, default
and choices are written there once, and ``studio train`` and ``studio data`` read them from there.

``studio train`` takes every setting as ``section.name=value`` (``lora.r=32 training.learning_rate=1e-4``),
as torchtune's overrides do, or as an option ``--section.name value``, as TRL's ``HfArgumentParser`` does.
Values are text here; ``config.merge`` turns them into the field's type, or explains why it cannot.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from ..config import SECTIONS, field_meta
from ..errors import ConfigError

SET = "set:"        # the dest prefix of the generated options


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help, without breaking '4bit-nf4' or 'all-linear' at their hyphens."""

    def _split_lines(self, text, width):
        import textwrap
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _default(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def describe(section: str, name: str, default: Any = dataclasses.MISSING) -> str:
    """A field's help with its default and choices, ready for argparse (whose help strings are %-formatted)."""
    meta = field_meta(section, name)
    if default is dataclasses.MISSING:
        default = next(_default(f) for f in dataclasses.fields(SECTIONS[section]) if f.name == name)
    shown = '""' if default == "" else str(default).lower() if isinstance(default, bool) else default
    text = f"{meta.get('help', '')} (default: {shown}"
    if meta.get("choices"):
        text += f"; choices: {', '.join(meta['choices'])}"
    low, high = meta.get("limits") or (None, None)
    if low is not None and high is not None:
        text += f"; {_num(low)} to {_num(high)}"
    elif low is not None:
        text += f"; at least {_num(low)}"
    return (text + ")").replace("%", "%%")


def add_field_option(parser, section: str, name: str, *flags: str, **kw) -> None:
    """One option (``flags``) for one field, with the field's help, default and choices."""
    meta = field_meta(section, name)
    f = next(f for f in dataclasses.fields(SECTIONS[section]) if f.name == name)
    default = kw.pop("default", _default(f))
    kw.setdefault("type", type(default) if isinstance(default, (int, float)) and not isinstance(default, bool) else str)
    if meta.get("choices"):
        kw.setdefault("choices", meta["choices"])
    kw.setdefault("metavar", name.upper())      # the help lists the choices once, not the usage line as well
    parser.add_argument(*flags, default=default, help=describe(section, name, default), **kw)


def add_settings(parser) -> None:
    """Every config field as ``--section.name VALUE``, grouped by section, and ``KEY=VALUE`` positionals."""
    parser.add_argument("settings", nargs="*", metavar="KEY=VALUE",
                        help="any setting below, e.g. lora.r=32 training.learning_rate=1e-4 data.file=my.jsonl")
    for section, cls in SECTIONS.items():
        group = parser.add_argument_group(f"{section} settings (KEY=VALUE, or --{section}.NAME VALUE)")
        for f in dataclasses.fields(cls):
            group.add_argument(f"--{section}.{f.name}", dest=f"{SET}{section}.{f.name}", metavar="VALUE",
                               default=argparse.SUPPRESS, help=describe(section, f.name))


def overrides(args) -> dict:
    """The settings given on the command line, as a nested dict for ``config.merge``."""
    pairs = [(k[len(SET):], v) for k, v in vars(args).items() if k.startswith(SET)]
    for item in getattr(args, "settings", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError("'{item}' is not a setting: write KEY=VALUE, e.g. lora.r=32.", code="config.bad_override",
                              item=item)
        pairs.append((key.strip(), value))
    out: dict = {}
    for key, value in pairs:
        if key == "name":
            out["name"] = value
            continue
        section, dot, name = key.partition(".")
        if not dot:
            raise ConfigError("'{key}' is not a setting name: settings are written section.name, e.g. lora.r.",
                              code="config.bad_key", key=key)
        out.setdefault(section, {})[name] = value
    return out
