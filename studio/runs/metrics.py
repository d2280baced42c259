"""The metrics log of a run: rows appended by the trainer, read incrementally by the UI and the CLI.

Each row is a small dict (``type`` is ``"train"`` or ``"eval"``). Rows live in memory behind a lock
and are mirrored, one JSON line per row, to ``metrics.jsonl`` (flushed at once), so a reader that only
has the file sees the same rows. Nothing here assumes the writer is a thread of this process:
``MetricsFollower`` tails the file that a subprocess (e.g. a multi-GPU runner) writes.

Reading uses a cursor, the number of rows already seen: ``rows, cursor = log.since(cursor)`` returns
each row exactly once for a caller that keeps its cursor.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Any


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf; a diverged loss is written as null rather than breaking every reader."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


class MetricsLog:
    """Thread-safe, append-only list of metric rows, mirrored to a JSONL file when ``path`` is given."""

    def __init__(self, path: str | Path | None = None):
        self._rows: list[dict] = []
        self._lock = threading.Lock()
        self.path = Path(path) if path else None
        self._file = open(self.path, "a", encoding="utf-8") if self.path else None

    def append(self, row: dict) -> None:
        row = {k: _clean(v) for k, v in row.items()}
        line = json.dumps(row, ensure_ascii=False)
        with self._lock:
            self._rows.append(row)
            if self._file is not None and not self._file.closed:
                self._file.write(line + "\n")
                self._file.flush()

    def load_existing(self) -> None:
        """Start from the rows already in the file (a resumed run keeps its earlier curve)."""
        if self.path is not None and self.path.is_file():
            rows = MetricsLog.read(self.path)
            with self._lock:
                self._rows[:0] = rows

    def since(self, cursor: int = 0) -> tuple[list[dict], int]:
        """Rows after the first ``cursor`` ones, and the cursor to pass next time."""
        with self._lock:
            cursor = max(0, min(int(cursor), len(self._rows)))
            rows = [dict(r) for r in self._rows[cursor:]]
            return rows, cursor + len(rows)

    def rows(self, kind: str | None = None) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self._rows if kind is None or r.get("type") == kind]

    def last(self, kind: str | None = None) -> dict | None:
        with self._lock:
            for r in reversed(self._rows):
                if kind is None or r.get("type") == kind:
                    return dict(r)
        return None

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()

    @staticmethod
    def read(path: str | Path) -> list[dict]:
        """All complete rows of a metrics file (a half-written last line is skipped)."""
        return MetricsFollower(path).since(0)[0]


class MetricsFollower:
    """Reads a ``metrics.jsonl`` that another thread or process is still writing, with the same cursor API.

    Only complete lines (ending in a newline) count as rows, so a row caught mid-write is returned
    on a later call, once, instead of being lost or parsed half.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._offset = 0          # bytes of the file already parsed
        self._rows: list[dict] = []
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return
        end = chunk.rfind(b"\n")
        if end < 0:
            return
        for line in chunk[: end + 1].splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a corrupt line must not hide the rows after it
            if isinstance(row, dict):
                self._rows.append(row)
        self._offset += end + 1

    def since(self, cursor: int = 0) -> tuple[list[dict], int]:
        with self._lock:
            self._refresh()
            cursor = max(0, min(int(cursor), len(self._rows)))
            rows = [dict(r) for r in self._rows[cursor:]]
            return rows, cursor + len(rows)
