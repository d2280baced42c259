"""What a data report says, in words the check and training share: the one-line summary, the note on row
numbers of tables, the warnings about the context length, and reading a source with its detected shape."""

from __future__ import annotations

from ..config import DataConfig
from ..config_checks import context_warnings
from .formats import columns_of, detect_format
from .read import read_source
from .types import Problem


def load(source: str, fmt: str, encoding: str = "auto") -> tuple:
    read = read_source(source, encoding=encoding)
    columns = columns_of(read.records)
    detected = detect_format(read.records) if fmt == "auto" else fmt
    return read, columns, detected


ROW_NOTE = "Row numbers count data rows: row 1 is the first row under the header."


def row_note(kind: str, problems: list[Problem]) -> list[str]:
    return [ROW_NOTE] if problems and kind in ("csv", "tsv") else []


def summary(fmt: str, rows: int, total: int, problems: list[Problem], template: str, stats: dict | None,
            cfg: DataConfig, cut: int = 0, left_out_long: int = 0) -> str:
    bad = len({p.row for p in problems})
    parts = [f"{rows} usable row{'s' if rows != 1 else ''} of {total} ({fmt} format)"]
    if bad:
        parts.append(f"{bad} row{'s' if bad != 1 else ''} with problems (listed below)")
    if template:
        parts.append(f"template: {template}")
    if stats and stats["count"]:
        parts.append(f"tokens per row: median {stats['median']:g}, 95% under {stats['p95']}, longest {stats['max']}")
    if cut:
        parts.append(f"{cut} longer than {cfg.max_length} tokens will be cut to {cfg.max_length}")
    if left_out_long:
        parts.append(f"{left_out_long} longer than {cfg.max_length} tokens will be left out "
                     f"({'overlong rows are dropped' if cfg.overlong == 'drop' else 'nothing of the answer survives the cut'})")
    return "; ".join(parts) + "."


def cut_note(cut_rows: list, max_length: int, shown: int = 5) -> str:
    """The rows cut to the maximum length, each named with its length: no row is ever cut without a word."""
    if not cut_rows:
        return ""
    cut_rows = sorted(cut_rows)
    listed = ", ".join(f"row {row} ({n:,} tokens)" for row, n in cut_rows[:shown])
    more = f" and {len(cut_rows) - shown} more" if len(cut_rows) > shown else ""
    longest = max(n for _, n in cut_rows)
    many = len(cut_rows) != 1
    return (f"{len(cut_rows)} row{'s are' if many else ' is'} longer than data.max_length ({max_length:,} tokens) and "
            f"will be cut to it, the end{'s' if many else ''} not trained on: {listed}{more}. Set data.max_length to "
            f"{longest:,} or more to keep {'them' if many else 'it'} whole, or data.overlong to 'drop' to leave "
            f"{'such rows' if many else 'it'} out.")


def context_warnings_for(cfg: DataConfig, context_length: int | None) -> list[str]:
    from ..config import StudioConfig
    return ["Warning: " + w for w in context_warnings(StudioConfig(data=cfg), context_length)]
