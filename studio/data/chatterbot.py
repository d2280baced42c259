"""The English chatterbot corpus (BSD licence, PyPI package ``chatterbot-corpus``) as a messages JSONL file.

Each YAML conversation becomes one row of alternating user/assistant messages; a conversation that
ends on the user's turn loses that last turn, so every row ends with an answer. The file is written
once into the studio's cache and reused; the data source name is ``"chatterbot"``.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import yaml

from .. import paths
from ..errors import DataError

FILE_NAME = "chatterbot_english.jsonl"


def corpus_dir() -> Path:
    """The folder of English YAML files inside the installed chatterbot_corpus package."""
    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("The chatterbot corpus is not installed.", code="data.no_chatterbot")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data" / "english"
    if not folder.is_dir():
        raise DataError("The chatterbot corpus is installed but has no English data folder ({folder}).",
                        code="data.chatterbot_incomplete", folder=str(folder))
    return folder


def conversations(folder: Path | None = None) -> list[list[dict]]:
    """All English conversations as lists of {role, content}, alternating user/assistant, ending with assistant."""
    out = []
    for path in sorted((folder or corpus_dir()).glob("*.yml")):
        # BaseLoader keeps every value as text: a bare "Yes" stays "Yes", not the boolean True.
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader) or {}
        for convo in data.get("conversations") or []:
            if not isinstance(convo, list):
                continue
            turns = [t.strip() for t in convo if isinstance(t, str) and t.strip()]
            if len(turns) % 2:
                turns = turns[:-1]
            if len(turns) < 2:
                continue
            out.append([{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)])
    return out


def write_jsonl(target: Path, folder: Path | None = None) -> int:
    """Write the corpus to ``target`` (one conversation a line); returns the number of rows."""
    rows = conversations(folder)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for msgs in rows:
            f.write(json.dumps({"messages": msgs}, ensure_ascii=False) + "\n")
    tmp.replace(target)   # atomic, so a reader never sees half a file
    return len(rows)


def corpus_file() -> Path:
    """The converted corpus in the cache, written on first use."""
    target = paths.cache_dir() / FILE_NAME
    if not target.is_file() or target.stat().st_size == 0:
        write_jsonl(target)
    return target
