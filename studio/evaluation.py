"""An evaluation set answered by the base model and by each chosen run, greedy, from ONE loaded base.

    rows = evaluate(["runs/a", "runs/b"], load_prompts(None), device_lock=lock)   # None: the held-out demo set
    for row in rows: ...          # {"prompt", "reference", "base", "<run name>": answer, ...} as each is ready

The first run's ``ChatSession`` loads the base with its adapter; the other runs' adapters are loaded
onto the same model under their own names and switched with ``set_adapter`` (as chat switches the
adapter off for the base), so memory holds one base whatever the number of runs. Every run gets
``eval.jsonl`` in its folder (prompt, reference, its answer, the base answer). ``stop`` (an Event)
ends it between prompts.
"""

from __future__ import annotations

import csv
import json
import threading
from pathlib import Path
from typing import Iterator

from . import paths
from .config import GenerationConfig
from .device import DeviceLock


from .errors import EvalError  # noqa: F401 - its home before the error family


def load_prompts(source: str | Path | None = None) -> list[dict]:
    """Prompts with optional reference answers from JSONL or CSV (``prompt``/``question``/``instruction``
    and ``reference``/``answer``/``output``/``response``); None: the held-out demo questions."""
    path = Path(source) if source else paths.DEMO_HELD_OUT
    if not path.is_file():
        raise EvalError("The prompts file {path} does not exist.", code="eval.no_file", path=str(path))
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise EvalError("The prompts file {path} cannot be read as UTF-8 text: {detail}", code="eval.unreadable",
                        path=str(path), detail=str(e)) from None
    if path.suffix.lower() in (".csv", ".tsv"):
        records = list(csv.DictReader(text.splitlines(), delimiter="\t" if path.suffix.lower() == ".tsv" else ","))
    else:
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                raise EvalError('Line {line} of {path} is not valid JSON; each line must be one object such as '
                                '{{"prompt": "...", "reference": "..."}}.', code="eval.bad_json", line=n,
                                path=str(path)) from None
    out = []
    for n, r in enumerate(records, 1):
        r = r if isinstance(r, dict) else {}
        prompt = next((r[k] for k in ("prompt", "question", "instruction") if r.get(k)), "")
        reference = next((r[k] for k in ("reference", "answer", "output", "response") if r.get(k)), "")
        if not str(prompt).strip():
            raise EvalError("Row {row} of {path} has no prompt (a 'prompt' or 'question' column).", code="eval.no_prompt",
                            row=n, path=str(path))
        out.append({"prompt": str(prompt), "reference": str(reference)})
    if not out:
        raise EvalError("The prompts file {path} has no prompts.", code="eval.empty", path=str(path))
    return out


def validation_loss(run_dir: str | Path) -> float | None:
    try:
        return json.loads((Path(run_dir) / "state.json").read_text(encoding="utf-8")).get("final_eval_loss")
    except (OSError, ValueError):
        return None


def evaluate(run_dirs: list[str | Path], prompts: list[dict], max_new_tokens: int = 200,
             stop: threading.Event | None = None, *, device_lock: DeviceLock) -> Iterator[dict]:
    """Yield one table row per prompt: prompt, reference, base answer and each run's answer (greedy).
    ``device_lock``: the lock every answer holds (the one training takes).

    Each run answers as it was trained: with its own recorded system prompt and its own chat template,
    as chatting with it alone would. The table's base column is the base model asked as the first run
    asks; each run's eval.jsonl keeps the base answer to that run's own prompt."""
    from .inference import ChatSession, check_adapter
    from .runs import RunFolder

    runs = [RunFolder(r) for r in run_dirs]
    if not runs:
        raise EvalError("Choose at least one run to evaluate.", code="eval.no_runs")
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise EvalError("Two of the chosen runs have the same folder name; choose each run once.", code="eval.same_name")
    sources = {r.config().model.source for r in runs if r.config_path.is_file()}
    if len(sources) > 1:
        raise EvalError("The chosen runs were trained on different base models ({models}); an evaluation compares runs "
                        "of one base.", code="eval.mixed_bases", models=", ".join(sorted(sources)))
    for r in runs:
        if not r.has_adapter():
            raise EvalError("The run {name} has no adapter yet; it can be evaluated once it has finished or stopped.",
                            code="eval.no_adapter", name=r.name)
        check_adapter(r.adapter_dir, r.name)
    greedy = GenerationConfig(max_new_tokens=max_new_tokens, temperature=0.0, repetition_penalty=1.0)
    session = ChatSession.from_run(runs[0].path, generation=greedy, device_lock=device_lock)
    session.generation = greedy
    model = session.model
    first_adapter = getattr(model, "active_adapter", "default")
    adapters = {runs[0].name: first_adapter}
    for r in runs[1:]:
        model.load_adapter(str(r.adapter_dir), adapter_name=_adapter_name(r.name))
        adapters[r.name] = _adapter_name(r.name)
    asks = {r.name: session.as_run(r.path) for r in runs}
    files = {r.name: open(r.path / "eval.jsonl.partial", "w", encoding="utf-8") for r in runs}
    answered = 0
    try:
        for item in prompts:
            if stop is not None and stop.is_set():
                break
            base: dict[tuple, str] = {}      # one base answer per (system prompt, template) asked
            for r in runs:
                key = (asks[r.name].system_prompt, asks[r.name].chat_template)
                if key not in base:
                    base[key] = asks[r.name].reply(None, item["prompt"], use_adapter=False)
            row = {"prompt": item["prompt"], "reference": item.get("reference", ""),
                   "base": base[(asks[runs[0].name].system_prompt, asks[runs[0].name].chat_template)]}
            for r in runs:
                model.set_adapter(adapters[r.name])
                row[r.name] = asks[r.name].reply(None, item["prompt"], use_adapter=True)
                own_base = base[(asks[r.name].system_prompt, asks[r.name].chat_template)]
                files[r.name].write(json.dumps({"prompt": row["prompt"], "reference": row["reference"],
                                                "answer": row[r.name], "base_answer": own_base},
                                               ensure_ascii=False) + "\n")
                files[r.name].flush()
            answered += 1
            yield row
    finally:
        model.set_adapter(first_adapter)
        for name in adapters:
            if adapters[name] != first_adapter:
                model.delete_adapter(adapters[name])
        for r in runs:
            files[r.name].close()
            partial = r.path / "eval.jsonl.partial"
            # eval.jsonl holds the last complete evaluation: a stopped one shows its rows, keeps none.
            if answered == len(prompts):
                partial.replace(r.path / "eval.jsonl")
            else:
                partial.unlink(missing_ok=True)


def _adapter_name(run_name: str) -> str:
    return "run_" + "".join(c if c.isalnum() else "_" for c in run_name)


def write_csv(rows: list[dict], path: Path) -> Path:
    if not rows:
        raise EvalError("There are no answers to save yet.", code="eval.nothing_to_save")
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path
