"""The system prompt a model was trained with, so chat asks the question the way training did.

An adapter learns its answers after the data's system prompt ("You are the support assistant for
Brightwave Home."). Asked without it, a chat template such as SmolLM2's puts in its own default system
prompt, which the adapter never saw, and the answers drift (measured: a 27x worse reference NLL after
300 steps). So training records what the rows used in ``<run>/system_prompt.json`` and chat, compare
and evaluation send it by default.

    info = summarise(conversations)      # {"system_prompt": ..., "rows": ..., "rows_with_system": ..., ...}
    save(run_dir, info); for_run(run_dir)  # the prompt to send ('' when the rows had none)
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

FILE_NAME = "system_prompt.json"


def summarise(conversations: Iterable[Any]) -> dict:
    """What the rows used: the shared system prompt (or the most common one) and how many rows had one."""
    counts: Counter = Counter()
    rows = 0
    for conv in conversations:
        rows += 1
        msgs = conv.messages if hasattr(conv, "messages") else conv
        if msgs and msgs[0].get("role") == "system" and msgs[0].get("content", "").strip():
            counts[msgs[0]["content"]] += 1
    with_system = sum(counts.values())
    prompt, uses = counts.most_common(1)[0] if counts else ("", 0)
    if not with_system:
        kind = "none"
    elif uses == rows:
        kind = "shared"
    else:
        kind = "varied" if len(counts) > 1 else "some"
    return {"system_prompt": prompt, "kind": kind, "rows": rows, "rows_with_system": with_system,
            "distinct": len(counts), "rows_with_this_prompt": uses}


def describe(info: dict) -> str:
    """One sentence for the data report and the chat tab."""
    kind = info.get("kind")
    if kind == "shared":
        return f"Every row has the system prompt “{_short(info['system_prompt'])}”; chat sends it too."
    if kind == "none" or not info:
        return "The rows have no system prompt, so chat sends none (the chat template may add its own default)."
    if kind == "some":
        return (f"{info['rows_with_system']} of {info['rows']} rows have the system prompt "
                f"“{_short(info['system_prompt'])}”; chat sends it.")
    return (f"The rows have {info['distinct']} different system prompts; chat sends the most common one "
            f"(in {info['rows_with_this_prompt']} of {info['rows']} rows): “{_short(info['system_prompt'])}”.")


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def save(folder: str | Path, info: dict) -> None:
    path = Path(folder) / FILE_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(info, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


def load(folder: str | Path) -> dict | None:
    try:
        info = json.loads((Path(folder) / FILE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def for_run(folder: str | Path) -> dict:
    """The run's recorded system prompt; for a run from before it was recorded, worked out from the data
    file named in its config.yaml (when that file is still readable), else no system prompt."""
    info = load(folder)
    if info is not None:
        return info
    try:
        from ..config import StudioConfig
        from .formats import mapping_of, normalise
        from .read import read_source

        data = StudioConfig.load(Path(folder) / "config.yaml").data
        read = read_source(data.file, encoding=data.encoding)
        convs, _ = normalise(read.records, data.format, mapping_of(data) if data.format == "mapping" else None)
        return {**summarise(convs), "inferred": True}
    except Exception:  # an old run whose data is gone: chat still works, without a system prompt
        return {"system_prompt": "", "kind": "none", "rows": 0, "rows_with_system": 0, "distinct": 0,
                "rows_with_this_prompt": 0, "inferred": True}


def record(run_dir: str | Path, data: Any) -> None:
    """Write what the prepared data used into the run folder (called by the training job)."""
    info = getattr(data, "system_prompt", None)
    if isinstance(info, dict) and info:
        try:
            save(run_dir, info)
        except OSError:
            pass   # a full disk shows up in the run's own saving; chat then falls back to the data file
