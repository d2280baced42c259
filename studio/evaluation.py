"""An evaluation set answered by the base model and by each chosen run, from ONE loaded base, and scored.

    rows = evaluate(["runs/a", "runs/b"], load_prompts(None), device_lock=lock)   # None: the held-out demo set
    for row in rows: ...    # {"prompt", "reference", "base": answer, "<run name>": answer, "scores": {...}}
    totals_of(rows)         # {"base": {"right": 0, "scored": 8, ...}, "<run name>": {"right": 7, ...}}

Every run is asked the way chatting with it asks (``ChatSession.as_run``): its recorded system prompt,
its chat template and its recorded generation settings (the config's ``generation`` section, greedy by
default), so Evaluate, the Chat tab and ``studio chat`` give the same answer to the same question.
``generation`` overrides them for every run (the benchmark compares decodings that way).

Each answer with a reference is scored by ``studio.scoring`` (the reference's facts found, missing or
contradicted, a verdict, chrF similarity). The first run's ``ChatSession`` loads the base with its
adapter; the other runs' adapters are loaded onto the same model under their own names and switched with
``set_adapter``, so memory holds one base whatever the number of runs. Every run gets ``eval.jsonl`` in
its folder (prompt, reference, its answer and score, the base answer and score, the settings used) and
``eval_summary.json`` (the totals). ``stop`` (an Event) ends it between prompts.

``judge`` (off by default): a chat model (``studio.judge``) grades every answer with a reference against
it, after the last answer, once the evaluated model is freed. Each row then comes a second time, the same
dict with ``row["judge"]`` set (a verdict per model); eval.jsonl gets ``judge`` / ``base_judge`` and the
summary ``judge`` totals only when every row was judged (a stopped judge leaves the answers' files as they were).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import threading
from pathlib import Path
from typing import Callable, Iterator

from . import paths
from .config import GenerationConfig
from .device import DeviceLock
from .errors import EvalError
from .scoring import score_answer, shared_facts, totals
from . import judge as judging


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
    elif text.lstrip().startswith("["):          # one JSON array of objects, not JSON Lines: read it as such
        try:
            records = json.loads(text)
        except ValueError as e:
            raise EvalError("{path} starts like a JSON array but is not valid JSON ({detail}).", code="eval.bad_array",
                            path=str(path), detail=str(e)) from None
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
        if not isinstance(r, dict):
            raise EvalError('Row {row} of {path} is not an object such as {{"prompt": "...", "reference": "..."}}.',
                            code="eval.not_object", row=n, path=str(path))
        prompt = next((r[k] for k in ("prompt", "question", "instruction") if r.get(k)), "")
        reference = next((r[k] for k in ("reference", "answer", "output", "response") if r.get(k)), "")
        if not str(prompt).strip():
            raise EvalError("Row {row} of {path} has no prompt (a 'prompt' or 'question' column).", code="eval.no_prompt",
                            row=n, path=str(path))
        out.append({"prompt": str(prompt), "reference": str(reference)})
    if not out:
        raise EvalError("The prompts file {path} has no prompts.", code="eval.empty", path=str(path))
    return out


MAX_AFTER_TRAINING = 20        # questions asked after a run: a minute or two on a CPU, seconds on a GPU


def prompts_after_training(cfg, data) -> list[dict]:
    """The questions ``data.score_prompts`` names for the check after training: the demo's held-out set for
    the demo data ('auto'), else up to 20 held-back rows of one question and answer; a file; none."""
    choice = (cfg.data.score_prompts or "auto").strip()
    if choice.lower() == "none":
        return []
    if choice.lower() != "auto":
        return load_prompts(choice)
    if cfg.data.file in ("demo", "demo-preference", str(paths.DEMO_DATA), str(paths.DEMO_PREFERENCE)):
        return load_prompts(None)      # the demo's held-out questions, in neither demo file
    return list(getattr(data, "held_out", []) or [])[:MAX_AFTER_TRAINING]


def score_after_training(job, log) -> dict | None:
    """Ask the questions of ``prompts_after_training`` with the model ``job`` has just trained (still in
    memory, the device lock still the job's), as chat would; eval.jsonl and eval_summary.json go into the
    run folder. Returns the summary, or None when there was nothing to ask."""
    from .data.system_prompt import for_run
    from .device import AlreadyHeld
    from .inference import ChatSession

    prompts = prompts_after_training(job.cfg, job.data)
    if not prompts:
        return None
    session = ChatSession(job.model, job.tokenizer, job.chat_template, job.cfg.generation,
                          device_lock=AlreadyHeld(), system_prompt=for_run(job.run_dir).get("system_prompt", ""),
                          run_dir=job.run_dir)
    asks = {job.run.name: session.as_run(job.run_dir)}
    rows = []
    for row in _answer_all([job.run], prompts, asks, {job.run.name: None}, None, job._stop):
        rows.append(row)
        job._set(message=f"Asking the trained model the held-out questions: {len(rows)} of {len(prompts)} answered.")
    summary = read_summary(job.run_dir) if len(rows) == len(prompts) else None
    if summary:
        log.info("Held-out questions: %s of %s facts right (base %s of %s).", summary["tuned"]["right"],
                 summary["tuned"]["scored"], summary["base"]["right"], summary["base"]["scored"])
    return summary


def validation_loss(run_dir: str | Path) -> float | None:
    try:
        return json.loads((Path(run_dir) / "state.json").read_text(encoding="utf-8")).get("final_eval_loss")
    except (OSError, ValueError):
        return None


def evaluate(run_dirs: list[str | Path], prompts: list[dict], max_new_tokens: int | None = None,
             stop: threading.Event | None = None, *, device_lock: DeviceLock,
             generation: GenerationConfig | None = None,
             judge: str | Callable[[str], str] | None = None) -> Iterator[dict]:
    """Yield one table row per prompt: prompt, reference, base answer and each run's answer, and
    ``scores`` (``studio.scoring.score_answer`` per answer, None without a reference) and ``settings``
    (the generation settings each run answered with). ``device_lock``: the lock every answer holds.

    Each run answers as chatting with it answers: its own recorded system prompt, chat template and
    generation settings; ``generation`` replaces the settings for all, ``max_new_tokens`` only the length.
    The table's base column is the base model asked as the first run asks; each run's eval.jsonl keeps the
    base answer to its own way of asking.

    ``judge``: a model source (``studio.judge.Judge.open``), or a function from the judge's prompt to its
    reply (tests); None: no judge."""
    from .inference import ChatSession, check_adapter
    from .runs import RunFolder

    runs = [RunFolder(r) for r in run_dirs]
    rows: list[dict] = []
    if not runs:
        raise EvalError("Choose at least one run to evaluate.", code="eval.no_runs")
    names = [r.name for r in runs]
    if len(set(names)) != len(names) or "base" in names:
        raise EvalError("Two of the chosen runs have the same folder name; choose each run once.", code="eval.same_name")
    sources = {r.config().model.source for r in runs if r.config_path.is_file()}
    if len(sources) > 1:
        raise EvalError("The chosen runs were trained on different base models ({models}); an evaluation compares runs "
                        "of one base.", code="eval.mixed_bases", models=", ".join(sorted(sources)))
    # peft holds adapters of one kind on one model (LoRA with LoRA, LoHa with LoHa...): PiSSA / OLoRA runs
    # saved plain LoRA adapters, so they count as LoRA.
    kinds = {r.config().lora.adapter for r in runs if r.config_path.is_file()}
    if len(kinds) > 1:
        raise EvalError("The chosen runs trained different kinds of adapter ({kinds}); one evaluation holds adapters "
                        "of one kind on its one base.", code="eval.mixed_adapters", kinds=", ".join(sorted(kinds)))
    for r in runs:
        if not r.config_path.is_file():
            raise EvalError("{path} is not a run folder (it has no config.yaml).", code="run.not_a_run", path=str(r.path))
        if not r.has_adapter() and (r.read_state() or {}).get("state") == "failed":
            raise EvalError("The run {name} failed before it saved an adapter, so there is nothing to evaluate.",
                            code="eval.failed_run", name=r.name)
        if not r.has_adapter():
            raise EvalError("The run {name} has no adapter yet; it can be evaluated once it has finished or stopped.",
                            code="eval.no_adapter", name=r.name)
    for r in runs:
        check_adapter(r.adapter_dir, r.name)
    if isinstance(judge, str):
        judge = judge.strip() or None
        if judge:
            judging.check_source(judge)       # refused now, not after minutes of answers
    session = ChatSession.from_run(runs[0].path, device_lock=device_lock)
    model = session.model
    first_adapter = getattr(model, "active_adapter", "default")
    adapters = {runs[0].name: first_adapter}
    try:
        for r in runs[1:]:
            model.load_adapter(str(r.adapter_dir), adapter_name=_adapter_name(r.name))
            adapters[r.name] = _adapter_name(r.name)
        asks = {r.name: _asking(session.as_run(r.path), generation, max_new_tokens) for r in runs}
        _check_lengths(prompts, list(asks.values()))
        for row in _answer_all(runs, prompts, asks, adapters, model, stop):
            rows.append(row)
            yield row
    finally:
        model.set_adapter(first_adapter)
        for name in adapters:
            if adapters[name] != first_adapter:
                model.delete_adapter(adapters[name])
    if not judge or len(rows) != len(prompts):
        return
    # One model in memory at a time: the evaluated one goes before the judge loads.
    del session, model, asks
    import gc
    gc.collect()
    yield from _judge_all(runs, rows, judge, device_lock, stop)


def _judge_all(runs, rows: list[dict], judge, device_lock: DeviceLock, stop) -> Iterator[dict]:
    """Grade every answer with a reference (each distinct answer once), yield each row again with
    ``row["judge"]``, then rewrite each run's eval.jsonl and summary with the verdicts."""
    grader = (judging.Judge.open(judge, device_lock=device_lock) if isinstance(judge, str)
              else judging.Judge(judge, "custom"))
    records = {r.name: _read_jsonl(r.path / "eval.jsonl") for r in runs}
    seen: dict[tuple, dict] = {}

    def verdict(prompt: str, reference: str, answer: str) -> dict:
        key = (prompt, reference, answer)
        if key not in seen:
            seen[key] = grader.grade(prompt, reference, answer)
        return seen[key]

    judged = 0
    try:
        for n, row in enumerate(rows):
            if stop is not None and stop.is_set():
                break
            ref = row["reference"]
            row["judge"] = {name: verdict(row["prompt"], ref, row[name]) if ref.strip() else None
                            for name in row["scores"]}
            for r in runs:
                rec = records[r.name][n]
                rec["judge"] = row["judge"][r.name]
                rec["base_judge"] = verdict(rec["prompt"], ref, rec["base_answer"]) if ref.strip() else None
            judged += 1
            yield row
    finally:
        grader.close()
    if judged != len(rows):
        return
    for r in runs:
        recs = records[r.name]
        tmp = r.path / "eval.jsonl.partial"
        tmp.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in recs), encoding="utf-8")
        tmp.replace(r.path / "eval.jsonl")
        summary = read_summary(r.path) or {}
        summary["judge"] = {"model": grader.name, "tuned": judging.totals([x.get("judge") for x in recs]),
                            "base": judging.totals([x.get("base_judge") for x in recs])}
        _write_summary(r.path, summary["tuned"], summary["base"], summary["prompts"], summary["judge"])


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _asking(chat, generation: GenerationConfig | None, max_new_tokens: int | None):
    gen = generation or chat.generation
    if max_new_tokens is not None:
        gen = dataclasses.replace(gen, max_new_tokens=max_new_tokens)
    return chat.using(generation=gen)


def _answer_all(runs, prompts: list[dict], asks: dict, adapters: dict, model, stop) -> Iterator[dict]:
    from .base_answers import BaseAnswers

    style = shared_facts([p.get("reference", "") for p in prompts])
    remembered = {r.name: BaseAnswers(asks[r.name]) for r in runs}
    files = {r.name: open(r.path / "eval.jsonl.partial", "w", encoding="utf-8") for r in runs}
    scored: dict[str, list] = {"base": [], **{r.name: [] for r in runs}}
    answered = 0
    try:
        for item in prompts:
            if stop is not None and stop.is_set():
                break
            reference = item.get("reference", "")

            def score(answer: str) -> dict | None:
                return score_answer(answer, reference, item["prompt"], style) if reference.strip() else None

            base: dict[tuple, tuple] = {}      # one base answer per way of asking (system prompt, template, settings)
            for r in runs:
                key = _way(asks[r.name])
                if key not in base:
                    known = remembered[r.name].get(item["prompt"])
                    answer = known if known is not None else remembered[r.name].put(
                        item["prompt"], asks[r.name].reply(None, item["prompt"], use_adapter=False))
                    base[key] = (answer, score(answer))
            first = base[_way(asks[runs[0].name])]
            row = {"prompt": item["prompt"], "reference": reference, "base": first[0],
                   "scores": {"base": first[1]}, "settings": {}}
            for r in runs:
                if model is not None:            # several runs on one base: switch to this run's adapter
                    model.set_adapter(adapters[r.name])
                answer = asks[r.name].reply(None, item["prompt"], use_adapter=True)
                row[r.name] = answer
                row["scores"][r.name] = score(answer)
                row["settings"][r.name] = dataclasses.asdict(asks[r.name].generation)
                own_base = base[_way(asks[r.name])]
                files[r.name].write(json.dumps({"prompt": row["prompt"], "reference": reference, "answer": answer,
                                                "score": row["scores"][r.name], "base_answer": own_base[0],
                                                "base_score": own_base[1], "generation": row["settings"][r.name]},
                                               ensure_ascii=False) + "\n")
                files[r.name].flush()
                scored[r.name].append(row["scores"][r.name])
            scored["base"].append(first[1])
            answered += 1
            yield row
    finally:
        for r in runs:
            files[r.name].close()
            partial = r.path / "eval.jsonl.partial"
            # eval.jsonl holds the last complete evaluation: a stopped one shows its rows, keeps none.
            if answered == len(prompts):
                partial.replace(r.path / "eval.jsonl")
                _write_summary(r.path, totals(scored[r.name]), totals([s for s in scored["base"]]), answered)
            else:
                partial.unlink(missing_ok=True)


def _way(chat) -> tuple:
    return chat.system_prompt, chat.chat_template, tuple(sorted(dataclasses.asdict(chat.generation).items()))


def _write_summary(run_dir: Path, tuned: dict, base: dict, prompts: int, judge: dict | None = None) -> None:
    summary = {"prompts": prompts, "tuned": tuned, "base": base, **({"judge": judge} if judge else {})}
    tmp = run_dir / "eval_summary.json.partial"
    tmp.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    tmp.replace(run_dir / "eval_summary.json")


def read_summary(run_dir: str | Path) -> dict | None:
    """The totals of a run's last complete evaluation (``eval_summary.json``), or None."""
    try:
        return json.loads((Path(run_dir) / "eval_summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_rows(run_dir: str | Path) -> list[dict]:
    """A run's last complete evaluation (``eval.jsonl``) as ``evaluate``'s rows: base and this run."""
    name = Path(run_dir).name
    out = []
    try:
        lines = (Path(run_dir) / "eval.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            r = json.loads(line)
        except ValueError:
            continue
        out.append({"prompt": r.get("prompt", ""), "reference": r.get("reference", ""),
                    "base": r.get("base_answer", ""), name: r.get("answer", ""),
                    "scores": {"base": r.get("base_score"), name: r.get("score")},
                    "settings": {name: r.get("generation")},
                    **({"judge": {"base": r.get("base_judge"), name: r.get("judge")}} if "judge" in r else {})})
    return out


def totals_of(rows: list[dict]) -> dict:
    """{"base": totals, "<run>": totals} over the rows an evaluation yielded (``scoring.totals``)."""
    if not rows:
        return {}
    return {name: totals([row["scores"].get(name) for row in rows]) for name in rows[0]["scores"]}


def summary_line(tot: dict) -> str:
    """'tuned 7 of 8 · base 0 of 8' for ``totals_of``'s result, in its column order."""
    return " · ".join(f"{name} {t['right']} of {t['scored']}" for name, t in tot.items() if t["scored"])


def judge_totals_of(rows: list[dict]) -> dict:
    """{"base": judge totals, "<run>": ...} over judged rows (``studio.judge.totals``); {} without a judge."""
    judged = [row["judge"] for row in rows if row.get("judge") is not None]
    if not judged:
        return {}
    return {name: judging.totals([j.get(name) for j in judged]) for name in rows[0]["scores"]}


def judge_line(tot: dict) -> str:
    """'tuned 6 of 8 · base 1 of 8' for ``judge_totals_of``'s result ('2 unclear' said when there are any)."""
    return " · ".join(f"{name} {t['right']} of {t['judged']}" + (f" ({t['unclear']} unclear)" if t["unclear"] else "")
                      for name, t in tot.items() if t["judged"])


def _check_lengths(prompts: list[dict], asks: list) -> None:
    """Every prompt fits the model's context as each run asks it, checked before the first answer (one
    prompt past it was read for minutes with nothing printed)."""
    limit = asks[0].context_length()
    if limit is None:
        return
    for n, item in enumerate(prompts, 1):
        for ask in asks:
            tokens = len(ask.tokenizer(ask.prompt_text(None, item["prompt"]), add_special_tokens=False)["input_ids"])
            if tokens >= limit:
                raise EvalError("Prompt {row} is {tokens} tokens long as the model is asked it; the model reads at most "
                                "{limit}.", code="eval.prompt_too_long", row=n, tokens=tokens, limit=limit)


def _adapter_name(run_name: str) -> str:
    return "run_" + "".join(c if c.isalnum() else "_" for c in run_name)


def table_rows(rows: list[dict]) -> list[dict]:
    """The rows flattened for a table or CSV: per model its ✓/✗, facts line and similarity, then the answer."""
    out = []
    for row in rows:
        flat = {"prompt": row["prompt"], "reference": row["reference"]}
        for name, score in row.get("scores", {}).items():
            flat[f"{name} right"] = "" if not score or score["right"] is None else ("yes" if score["right"] else "no")
            flat[f"{name} facts"] = score["explanation"] if score else ""
            flat[f"{name} similarity"] = "" if not score or score["similarity"] is None else score["similarity"]
            if "judge" in row:       # only an evaluation with a judge has these columns
                verdict = (row["judge"] or {}).get(name)
                flat[f"{name} judge"] = verdict["verdict"] if verdict else ""
                flat[f"{name} judge reason"] = verdict["reason"] if verdict else ""
            flat[name] = row[name]
        out.append(flat)
    return out


def check_csv_destination(path: str | Path) -> Path:
    """Where the table will be written, checked before any answer is generated (minutes of work would
    otherwise end in an error): its folder exists and is writable, and it is not a folder itself."""
    path = Path(path).expanduser()
    folder = path.parent
    if path.is_dir():
        raise EvalError("The table file {path} is a folder; give the path of a .csv file.", code="eval.csv_is_folder",
                        path=str(path))
    if not folder.is_dir():
        raise EvalError("The table file {path} cannot be written: the folder {folder} does not exist.",
                        code="eval.csv_no_folder", path=str(path), folder=str(folder))
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise EvalError("The table file {path} cannot be written: no permission to write in {folder}.",
                        code="eval.csv_denied", path=str(path), folder=str(folder))
    return path


def write_csv(rows: list[dict], path: Path) -> Path:
    if not rows:
        raise EvalError("There are no answers to save yet.", code="eval.nothing_to_save")
    flat = table_rows(rows)
    try:
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(flat[0]))
            writer.writeheader()
            writer.writerows(flat)
    except OSError as e:
        raise EvalError("The table file {path} cannot be written: {detail}", code="eval.csv_write", path=str(path),
                        detail=e.strerror or str(e)) from None
    return path
