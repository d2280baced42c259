"""A quote that opens a CSV cell and is never closed where the cell ends.

Python's csv reader (lenient, as spreadsheets write files) then reads on, past the ends of lines, until the
next quote anywhere in the file: the following rows become part of one cell, and the only problem left to
see is a missing answer. ``swallowing_rows(text, delimiter, spans)`` finds such a record by reading the file
again strictly (where the lenient reader carried on, the strict one stops) and returns the data rows whose
cell ran over lines of the file; a quoted cell that rightly holds line breaks reads the same both ways.
"""

from __future__ import annotations

import csv
import io


def read_with_lines(text: str, delimiter: str) -> tuple[list[str] | None, list[tuple[list[str], int, int]]]:
    """(header, [(cells, first line, last line) of each data row]) read leniently; raises csv.Error."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = []
    try:
        header = next(reader, None)
        start = reader.line_num + 1
        for row in reader:
            rows.append((row, start, reader.line_num))
            start = reader.line_num + 1
    except csv.Error as e:
        e.line = reader.line_num      # where it stopped, for the message
        raise
    return header, rows


def strict_error_line(text: str, delimiter: str) -> int | None:
    """The line where a strict reading of the file fails (a quote that does not end a cell), or None."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        for _ in reader:
            pass
    except csv.Error:
        return max(1, reader.line_num)
    return None


def swallowing_row(text: str, delimiter: str, rows: list[tuple[list[str], int, int]]) -> int | None:
    """The index in ``rows`` of the record whose quote swallowed the lines after it, or None."""
    line = strict_error_line(text, delimiter)
    if line is None:
        return None
    for i, (_, first, last) in enumerate(rows):
        if first <= line <= last or (i == len(rows) - 1 and line > last):
            return i if last > first else None
    return None


def message(n: int, first: int, last: int) -> str:
    return (f"row {n} has a quote (\") that opens a cell on line {first} of the file and is not closed where the "
            f"cell ends, so lines {first + 1}-{last} ({last - first} line{'s' if last - first != 1 else ''}) were "
            "read into that one cell; add the closing quote (a quote inside a quoted cell is written twice: \"\")")
