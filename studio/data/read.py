"""Reading training data into plain records: JSON array, JSONL, CSV, TSV, Parquet or a Hub dataset.

Each record is a dict with the key ``"__row__"`` (its 1-based line number in JSONL, element number in
a JSON array, data row in CSV/TSV/Parquet/Hub). Broken JSON lines become ``Problem``s, not errors;
a file that cannot be read at all raises ``DataError`` with a message a person can act on.
``"demo"`` is the built-in support FAQ, ``"demo-preference"`` the same as preference pairs, ``"chatterbot"``
the English chatterbot corpus.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import socket
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from .. import paths
from ..offline import hub_offline
from . import csv_quotes
from .duplicate_keys import DuplicateKeys
from .encodings import decode_bytes
from .types import Problem
from ..errors import DataError

DEFAULT_MAX_BYTES = 500 * 1024 * 1024
KINDS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv", ".tab": "tsv",
         ".parquet": "parquet", ".pq": "parquet"}
# Every file name the studio reads (the app's upload and file checks use this list): the kinds above,
# and .txt, whose content tells which it is (JSON lines, JSON or a table).
EXTENSIONS = tuple(KINDS) + (".txt",)
# owner/name or a bare dataset name: letters, digits, - _ . only, no file extension we know of
# Built-in data by name (looked up when read, so a test may move the paths).
DEMOS = {"demo": lambda: paths.DEMO_DATA, "demo-preference": lambda: paths.DEMO_PREFERENCE}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


@dataclass
class ReadResult:
    records: list[dict]
    problems: list[Problem]
    kind: str
    notes: list[str] = field(default_factory=list)   # e.g. "read as GB18030", keys found twice
    encoding: str = ""                                # the text encoding used ('' for parquet and the Hub)
    sample: str = ""                                  # a short piece of decoded text, to judge the encoding by


def read_records(source: str, max_bytes: int = DEFAULT_MAX_BYTES,
                 encoding: str = "auto") -> tuple[list[dict], list[Problem], str]:
    """The raw records, the read problems and the kind of file (jsonl|json|csv|tsv|parquet|hub)."""
    r = read_source(source, max_bytes, encoding)
    return r.records, r.problems, r.kind


def read_source(source: str, max_bytes: int = DEFAULT_MAX_BYTES, encoding: str = "auto") -> ReadResult:
    """Like ``read_records`` but also returns notes for the report (such as the encoding used).
    ``encoding`` 'auto' recognises it (see ``encodings.decode_bytes``); a name forces that one."""
    source = (source or "").strip()
    if not source:
        raise DataError("No data chosen: give a file, 'demo', or a Hugging Face dataset id.", code="data.none_chosen")
    if source in DEMOS:
        path = DEMOS[source]()
        if not path.is_file():
            raise DataError("The built-in demo data is missing ({path}); reinstall the studio or choose a file.",
                            code="data.no_demo", path=str(path))
        return _read_file(path, max_bytes, encoding)
    if source == "chatterbot":
        from .chatterbot import corpus_file
        return _read_file(corpus_file(), max_bytes, encoding)
    path = Path(source).expanduser()
    if path.is_dir():
        raise DataError("'{source}' is a folder; choose a data file inside it (.jsonl, .json, .csv, .tsv or .parquet).",
                        code="data.is_folder", source=source)
    if path.is_file():
        return _read_file(path, max_bytes, encoding)
    looks_like_path = (path.suffix.lower() in KINDS or source.startswith((".", "~", os.sep))
                       or (os.sep in source and not _HUB_ID.match(source)))
    if looks_like_path:
        raise DataError("File not found: {source}. Check the name and folder, or upload the file again.",
                        code="data.not_found", source=source)
    if _HUB_ID.match(source):
        return _read_hub(source)
    raise DataError("File not found: {source}.", code="data.not_found", source=source)


# ---- files ---------------------------------------------------------------------------------------
def _read_file(path: Path, max_bytes: int, encoding: str = "auto") -> ReadResult:
    size = path.stat().st_size
    if size > max_bytes:
        raise DataError("{name} is {size_mb:.0f} MB, more than the limit of {limit_mb:.0f} MB.", code="data.too_big",
                        name=path.name, size_mb=size / 2**20, limit_mb=max_bytes / 2**20)
    if size == 0:
        raise DataError("{name} is empty.", code="data.empty_file", name=path.name)
    kind = KINDS.get(path.suffix.lower())
    if path.suffix.lower() in (".xlsx", ".xls", ".ods", ".numbers"):
        raise DataError("{name} is a spreadsheet file, which cannot be read directly.", code="data.spreadsheet",
                        name=path.name)
    if kind == "parquet":
        return _read_parquet(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError("Could not read {name}: {detail}.", code="data.unreadable", name=path.name,
                        detail=str(e.strerror or e)) from None
    decoded = decode_bytes(raw, path.name, encoding)
    text, notes = decoded.text, decoded.notes
    if not text.strip():
        raise DataError("{name} is empty (it only holds blank space).", code="data.blank_file", name=path.name)
    if kind is None:
        kind = _sniff(text, path.name)
    if kind == "json":
        result = _read_json(text, path.name)
    elif kind == "jsonl":
        result = _read_jsonl(text)
    else:
        result = _read_delimited(text, "\t" if kind == "tsv" else ",", path.name, kind)
    result.notes[:0] = notes
    result.encoding, result.sample = decoded.encoding, decoded.sample
    if not result.records and not result.problems:
        raise DataError("{name} holds no rows.", code="data.no_rows", name=path.name)
    return result


def _sniff(text: str, name: str) -> str:
    head = text.lstrip()[:1]
    if head == "[":
        return "json"
    if head == "{":
        return "jsonl"
    first = text.splitlines()[0] if text else ""
    if "\t" in first:
        return "tsv"
    if "," in first:
        return "csv"
    raise DataError("Could not tell what kind of file {name} is. Use a .jsonl, .json, .csv, .tsv or .parquet file.",
                    code="data.unknown_kind", name=name)


def _read_jsonl(text: str) -> ReadResult:
    records, problems = [], []
    dups = DuplicateKeys("line")
    # Lines end at \n only: str.splitlines() also breaks at U+2028, U+0085 and other characters that
    # valid JSON text may hold inside its strings.
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line, object_pairs_hook=dups.hook(n))
        except json.JSONDecodeError as e:
            problems.append(Problem(n, f"line {n} is not valid JSON ({e.msg} at character {e.colno})"))
            continue
        _add(records, problems, value, n, "line")
    return ReadResult(records, problems, "jsonl", notes=dups.notes())


def _read_json(text: str, name: str) -> ReadResult:
    dups = DuplicateKeys("row")
    try:
        value = json.loads(text, object_pairs_hook=dups.hook_by_position())
    except json.JSONDecodeError as e:
        if _first_line_is_an_object(text):
            return _read_jsonl(text)        # JSON Lines saved with a .json name
        comma = _trailing_comma(text, e.pos)
        if comma is not None:
            line, column = text.count("\n", 0, comma) + 1, comma - (text.rfind("\n", 0, comma) + 1) + 1
            raise DataError("{name} is not valid JSON: the comma on line {line}, column {column} comes right before "
                            "a closing '{closing}', and JSON allows no comma after the last item.",
                            code="data.trailing_comma", name=name, line=line, column=column,
                            closing=text[e.pos]) from None
        raise DataError("{name} is not valid JSON: {detail} on line {line}, column {column}.", code="data.bad_json",
                        name=name, detail=e.msg, line=e.lineno, column=e.colno) from None
    notes: list[str] = []
    if isinstance(value, dict):
        value, notes = _unwrap(value, name)
    if not isinstance(value, list):
        raise DataError("{name} must hold a list of examples ([{{...}}, {{...}}]), not a single value.",
                        code="data.not_a_list", name=name)
    if not value:
        raise DataError("{name} holds an empty list: there are no examples in it.", code="data.empty_list", name=name)
    records, problems = [], []
    for n, item in enumerate(value, 1):
        _add(records, problems, item, n, "row")
    return ReadResult(records, problems, "json", notes=notes + dups.notes(rows_of=value))


def _first_line_is_an_object(text: str) -> bool:
    """JSON Lines (one object per line) rather than one pretty-printed JSON document with an error in it."""
    first = next((line for line in text.split("\n") if line.strip()), "")
    try:
        return isinstance(json.loads(first), dict) and "\n" in text.strip()
    except json.JSONDecodeError:
        return False


def _trailing_comma(text: str, pos: int) -> int | None:
    """Where the comma is when the parser stopped at a ']' or '}' that follows one: [1, 2,] or {"a": 1,}."""
    if pos >= len(text) or text[pos] not in "]}":
        return None
    i = pos - 1
    while i >= 0 and text[i] in " \t\r\n":
        i -= 1
    return i if i >= 0 and text[i] == "," else None


SPLIT_NAMES = ("train", "training", "validation", "valid", "val", "dev", "test", "eval", "evaluation")


def _unwrap(value: dict, name: str) -> tuple[object, list[str]]:
    """The list of examples inside a JSON object: {"data": [...]}, or the 'train' list of a file that
    holds its splits ({"train": [...], "test": [...]}). A single example object stays one example."""
    lists = {k: v for k, v in value.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)}
    if len(lists) == 1:                      # {"data": [...]} and similar wrappers
        return next(iter(lists.values())), []
    if len(lists) > 1:
        keys = ", ".join(f"'{k}' ({len(v)} rows)" for k, v in lists.items())
        train = next((k for k in ("train", "training") if k in lists), None)
        if train:
            return lists[train], [f"{name} holds several splits: {keys}. The '{train}' list is used for training "
                                  "(and the studio holds back its own validation rows from it)."]
        raise DataError("{name} holds several lists of examples: {keys}, and none is called 'train'.",
                        code="data.no_train_split", name=name, keys=keys)
    return [value], []


def _add(records: list, problems: list, value, n: int, unit: str) -> None:
    if isinstance(value, dict):
        records.append({**value, "__row__": n})
    else:
        problems.append(Problem(n, f"{unit} {n} is {_kind_of(value)}, not an example with fields "
                                   "(such as instruction/output or messages)"))


def _kind_of(value) -> str:
    return {list: "a list", str: "a piece of text", bool: "true/false", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def _read_delimited(text: str, delimiter: str, name: str, kind: str) -> ReadResult:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        header, spans = csv_quotes.read_with_lines(text, delimiter)
    except csv.Error as e:
        raise DataError("{name} is not a readable {kind} file (line {line}: {detail}).", code="data.bad_csv", name=name,
                        kind=kind.upper(), line=getattr(e, "line", 0), detail=str(e)) from None
    rows = [cells for cells, _, _ in spans]
    if not header or not any(h.strip() for h in header):
        raise DataError("{name} has no header row. The first line must name the columns, e.g. question,answer.",
                        code="data.no_header", name=name)
    header = [h.strip() or f"column {i + 1}" for i, h in enumerate(header)]
    if len(header) == 1 and delimiter == ",":     # tab- or semicolon-separated file saved as .csv
        for other in ("\t", ";"):
            if other in text.splitlines()[0]:
                return _read_delimited(text, other, name, "tsv" if other == "\t" else kind)
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:     # dict(zip()) would keep the last of them without a word
        where = "; ".join(f"'{h}' (columns {', '.join(str(i + 1) for i, x in enumerate(header) if x == h)})"
                          for h in twice)
        raise DataError("The header of {name} names a column more than once: {columns}. Each column needs its own "
                        "name, or one of them would be lost.", code="data.repeated_column", name=name, columns=where)
    swallowing = csv_quotes.swallowing_row(text, delimiter, spans)
    records, problems = [], []
    for n, row in enumerate(rows, 1):
        if n - 1 == swallowing:
            _, first, last = spans[n - 1]
            problems.append(Problem(n, csv_quotes.message(n, first, last)))
            continue
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            problems.append(Problem(n, f"row {n} has {len(row)} cells but the header names {len(header)} columns "
                                       "(a comma inside a cell that is not in quotes?)"))
            continue
        rec = dict(zip(header, row))
        rec["__row__"] = n
        records.append(rec)
    if not records and not problems:
        raise DataError("{name} has a header but no rows of data.", code="data.header_only", name=name)
    return ReadResult(records, problems, kind)


def _read_parquet(path: Path) -> ReadResult:
    try:
        import pyarrow.parquet as pq
        rows = pq.read_table(path).to_pylist()
    except Exception as e:  # pyarrow raises many types for corrupt files
        raise DataError("{name} is not a readable Parquet file ({detail}).", code="data.bad_parquet", name=path.name,
                        detail=f"{type(e).__name__}: {e}") from None
    return _from_rows(rows, "parquet", path.name)


def _from_rows(rows: list, kind: str, name: str) -> ReadResult:
    records = []
    for n, row in enumerate(rows, 1):
        rec = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in dict(row).items()}
        rec["__row__"] = n
        records.append(rec)
    if not records:
        raise DataError("{name} holds no rows.", code="data.no_rows", name=name)
    return ReadResult(records, [], kind)


# ---- Hugging Face Hub ----------------------------------------------------------------------------
def _offline_error(dataset_id: str) -> DataError:
    return DataError("This computer is offline, so the dataset '{dataset}' cannot be fetched from the Hugging Face "
                     "Hub.", code="data.hub_offline", dataset=dataset_id)


def _dataset_not_found() -> type | tuple:
    """datasets' not-found exception, when datasets got as far as being imported."""
    return getattr(sys.modules.get("datasets.exceptions"), "DatasetNotFoundError", ())


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Can the Hub be reached? Runs in a thread because a name lookup can hang longer than the socket timeout."""
    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return bool(result and result[0])


def _read_hub(dataset_id: str) -> ReadResult:
    offline = hub_offline(datasets=True)
    if not offline and not _hub_reachable():
        raise _offline_error(dataset_id)
    try:
        import datasets
        from datasets.utils.logging import disable_progress_bar
        disable_progress_bar()
        loaded = datasets.load_dataset(dataset_id)
    except Exception as e:  # the datasets library raises many types (not found, gated, offline, bad config)
        if offline:      # offline mode only reads the local cache; not being there is the usual reason
            raise _offline_error(dataset_id) from None
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "doesn't exist" in text or "not found" in text.lower() or isinstance(e, _dataset_not_found()):
            raise DataError("No dataset '{dataset}' was found on the Hugging Face Hub (or it is private).",
                            code="data.hub_not_found", dataset=dataset_id) from None
        raise DataError("Could not load the dataset '{dataset}': {detail}", code="data.hub_failed", dataset=dataset_id,
                        detail=text) from None
    if isinstance(loaded, dict):
        split = "train" if "train" in loaded else next(iter(loaded))
        loaded = loaded[split]
    return _from_rows(loaded.to_list(), "hub", dataset_id)
