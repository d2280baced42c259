"""``studio presets``: list the presets, one line each."""

from __future__ import annotations

from ..presets import list_presets


def add_parser(sub):
    return sub.add_parser("presets", help="list the presets")


def run(args) -> int:
    presets = list_presets()
    width = max((len(p.name) for p in presets), default=0)
    for p in presets:
        print(f"{p.name.ljust(width)}  {p.summary}")
    return 0
