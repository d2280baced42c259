"""Keys that appear twice in one JSON object: ``json`` keeps the last value without a word, so a row
whose 'output' was pasted twice trains on whichever came last. They are found while parsing and
reported as a warning with the row number (the row is still used, with the last value)."""

from __future__ import annotations

from typing import Any, Callable


class DuplicateKeys:
    def __init__(self, unit: str):
        self.unit = unit                                   # "line" (JSONL) or "row" (JSON array)
        self.found: dict[int, list[str]] = {}              # row -> keys seen twice
        self._by_object: dict[int, list[str]] = {}         # id(dict) -> keys seen twice (JSON arrays)

    def hook(self, row: int) -> Callable[[list[tuple[str, Any]]], dict]:
        """An ``object_pairs_hook`` for one JSONL line."""
        def pairs_to_dict(pairs: list[tuple[str, Any]]) -> dict:
            out, dups = _collect(pairs)
            if dups:
                self.found.setdefault(row, []).extend(dups)
            return out
        return pairs_to_dict

    def hook_by_position(self) -> Callable[[list[tuple[str, Any]]], dict]:
        """An ``object_pairs_hook`` for a whole JSON document; ``notes(rows_of=...)`` maps objects to rows."""
        def pairs_to_dict(pairs: list[tuple[str, Any]]) -> dict:
            out, dups = _collect(pairs)
            if dups:
                self._by_object[id(out)] = dups
            return out
        return pairs_to_dict

    def notes(self, rows_of: Any = None) -> list[str]:
        found = dict(self.found)
        if self._by_object and isinstance(rows_of, list):
            for n, item in enumerate(rows_of, 1):
                keys = [k for obj in _objects(item) for k in self._by_object.get(id(obj), [])]
                if keys:
                    found.setdefault(n, []).extend(keys)
        if not found:
            return []
        rows = sorted(found)
        shown = "; ".join(f"{self.unit} {n}: {', '.join(repr(k) for k in dict.fromkeys(found[n]))}"
                          for n in rows[:10])
        more = f" (and {len(rows) - 10} more {self.unit}s)" if len(rows) > 10 else ""
        return [f"Warning: a key appears twice in the same example, and only its last value is used — {shown}{more}. "
                "Check those rows: one of the two values may be the one you meant."]


def _collect(pairs: list[tuple[str, Any]]) -> tuple[dict, list[str]]:
    out: dict = {}
    dups: list[str] = []
    for key, value in pairs:
        if key in out:
            dups.append(key)
        out[key] = value
    return out, dups


def _objects(value: Any):
    """Every dict inside a parsed JSON value (the value itself included)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            yield v
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
