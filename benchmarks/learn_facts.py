"""Does a run learn the facts of its data? Train the built-in model on the demo FAQ with each case's
settings, then ask the held-out demo questions the way chat asks them and score the answers.

    python benchmarks/learn_facts.py                                  # the cases below, one process each
    python benchmarks/learn_facts.py --cases default,cpu-demo --parallel 4 --cores 2
    python benchmarks/learn_facts.py --case NAME --set training.max_steps=60 --set lora.r=8   # one case

Each case runs a real ``TrainingJob`` in its own process (``--cores N`` pins it to N cores with as many
torch threads, so a 2-core machine can be imitated on a larger one), then ``evaluation.evaluate`` on
``assets/demo/held_out.jsonl`` with the run's own generation settings and with each repetition penalty
of ``--penalties``. Printed: a table (settings, minutes to train, eval loss, facts right per decoding,
base); the rows are appended as JSON lines to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# name -> (preset or "", overrides); every case trains the built-in model on the demo data.
CASES: dict[str, tuple[str, dict]] = {
    "default": ("", {}),
    "cpu-demo": ("cpu-demo", {}),
}


def parse_sets(items: list[str]) -> dict:
    out: dict = {}
    for item in items:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        out.setdefault(section, {})[name] = value
    return out


def run_case(name: str, preset: str, overrides: dict, penalties: list[float], root: Path) -> dict:
    """Train and score one case in this process."""
    import torch

    from studio.config import StudioConfig, merge
    from studio.device import DeviceLock
    from studio.evaluation import evaluate, load_prompts, totals_of
    from studio.presets import load_preset
    from studio.training.job import TrainingJob

    cfg = load_preset(preset) if preset else StudioConfig()
    cfg = merge(cfg, {"model": {"source": "default"}, "data": {"file": "demo"}})
    cfg = merge(cfg, overrides)
    cfg.validate()
    run_dir = root / name
    lock = DeviceLock(root / f"{name}.lock")
    t0 = time.monotonic()
    job = TrainingJob(cfg, run_dir, keep_model=False, device_lock=lock).run_sync()
    train_s = time.monotonic() - t0
    result = {"case": name, "preset": preset, "overrides": overrides, "state": job.state, "message": job.message,
              "device": "cuda" if torch.cuda.is_available() else "cpu", "threads": torch.get_num_threads(),
              "train_s": round(train_s, 1), "steps": job.progress.step, "train_rows": job.info.get("train_rows"),
              "eval_loss": (job.result or {}).get("eval_loss"), "train_loss": (job.result or {}).get("train_loss"),
              "tokens_per_sec": (job.result or {}).get("tokens_per_sec"),
              "batch": cfg.training.batch_size * cfg.training.grad_accum, "decodings": {}}
    if job.state != "done" or not penalties and os.environ.get("LEARN_FACTS_TRAIN_ONLY"):
        return result
    prompts = load_prompts(None)
    decodings = {"run": None} | {f"rp{p:g}": p for p in penalties}
    for label, penalty in decodings.items():
        gen = None if penalty is None else _with_penalty(cfg.generation, penalty)
        t1 = time.monotonic()
        rows = list(evaluate([run_dir], prompts, device_lock=lock, generation=gen))
        tot = totals_of(rows)
        result["decodings"][label] = {"tuned": tot[run_dir.name], "base": tot["base"],
                                      "eval_s": round(time.monotonic() - t1, 1),
                                      "answers": [r[run_dir.name] for r in rows],
                                      "explanations": [r["scores"][run_dir.name]["explanation"] for r in rows]}
    return result


def _with_penalty(gen, penalty: float):
    import dataclasses
    return dataclasses.replace(gen, repetition_penalty=penalty, temperature=0.0)


def rescore(results: list[dict]) -> list[dict]:
    """The saved answers scored again with today's scorer (the answers are what the runs said)."""
    from studio.evaluation import load_prompts
    from studio.scoring import score_answer, shared_facts, totals

    prompts = load_prompts(None)
    style = shared_facts([p["reference"] for p in prompts])
    for r in results:
        for d in r.get("decodings", {}).values():
            scores = [score_answer(a, p["reference"], p["prompt"], style) for a, p in zip(d["answers"], prompts)]
            d["tuned"] = totals(scores)
            d["explanations"] = [s["explanation"] for s in scores]
    return results


def table(results: list[dict]) -> str:
    labels = sorted({k for r in results for k in r.get("decodings", {})}, key=lambda k: (k != "run", k))
    head = ["case", "settings", "device", "steps", "passes", "train min", "eval loss",
            *[f"right ({k})" for k in labels], "base"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        d = r.get("decodings", {})
        passes = (r["steps"] * r["batch"] / r["train_rows"]) if r.get("train_rows") else 0
        sets = ", ".join(f"{s}.{k}={v}" for s, kv in r["overrides"].items() for k, v in kv.items()) or "-"
        base = next(iter(d.values()), {}).get("base", {})
        cells = [r["case"], (r["preset"] + " " if r["preset"] else "") + sets, f"{r['device']} x{r['threads']}",
                 str(r["steps"]), f"{passes:.2f}", f"{r['train_s'] / 60:.2f}",
                 "-" if r.get("eval_loss") is None else f"{r['eval_loss']:.3f}",
                 *[f"{d[k]['tuned']['right']}/{d[k]['tuned']['scored']}" if k in d else "-" for k in labels],
                 f"{base.get('right', '-')}/{base.get('scored', '-')}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated names from CASES")
    ap.add_argument("--case", help="run this one case here (with --preset and --set)")
    ap.add_argument("--preset", default="")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.NAME=VALUE")
    ap.add_argument("--grid", action="append", default=[], metavar="NAME:PRESET:K=V,K=V",
                    help="an extra case, e.g. 'lr3e-3:cpu-demo:training.learning_rate=0.003,training.max_steps=60'")
    ap.add_argument("--penalties", default="1.0,1.1", help="repetition penalties to score besides the run's own")
    ap.add_argument("--rescore", nargs="+", metavar="JSONL", help="print the table of saved results, scored again")
    ap.add_argument("--train-only", action="store_true", help="time the training, skip the questions")
    ap.add_argument("--cpu", action="store_true", help="train on the CPU even where a GPU is present")
    ap.add_argument("--parallel", type=int, default=1, help="cases at once (each in its own process)")
    ap.add_argument("--cores", type=int, default=0, help="pin each case to this many cores (0 = no pinning)")
    ap.add_argument("--root", default="/tmp/learn-facts-runs")
    ap.add_argument("--out", default="learn_facts.jsonl")
    a = ap.parse_args()
    penalties = [float(p) for p in a.penalties.split(",") if p]
    if a.train_only:
        os.environ["LEARN_FACTS_TRAIN_ONLY"] = "1"
        penalties = [] if a.case else penalties
    if a.cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    if a.rescore:
        results = [json.loads(x) for f in a.rescore for x in Path(f).read_text().splitlines() if x.strip()]
        print(table(rescore([r for r in results if r.get("decodings")])))
        return 0
    root = Path(a.root)
    root.mkdir(parents=True, exist_ok=True)
    if a.case:
        result = run_case(a.case, a.preset, parse_sets(a.set), penalties, root)
        print("RESULT " + json.dumps(result, ensure_ascii=False))
        return 0
    cases = {n: CASES[n] for n in a.cases.split(",") if n}
    for g in a.grid:
        name, preset, sets = g.split(":", 2)
        cases[name] = (preset, parse_sets([s for s in sets.split(",") if s]))
    results = _run_all(cases, a, root)
    with open(a.out, "a", encoding="utf-8") as f:
        for r in results:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(table(results))
    return 0


def _run_all(cases: dict, a, root: Path) -> list[dict]:
    """Each case in its own process, ``a.parallel`` at a time, each pinned to its own cores."""
    pending = list(cases.items())
    running: list[tuple[str, subprocess.Popen]] = []
    results: list[dict] = []
    slot = 0
    while pending or running:
        while pending and len(running) < a.parallel:
            name, (preset, sets) = pending.pop(0)
            cmd = [sys.executable, __file__, "--case", name, "--preset", preset, "--root", str(root),
                   "--penalties", "" if a.train_only else a.penalties,
                   *[arg for s, kv in sets.items() for k, v in kv.items() for arg in ("--set", f"{s}.{k}={v}")]]
            env = dict(os.environ)
            if a.cores:
                first = (slot % max(1, (os.cpu_count() or 1) // a.cores)) * a.cores
                cmd = ["taskset", "-c", f"{first}-{first + a.cores - 1}", *cmd]
                env["OMP_NUM_THREADS"] = str(a.cores)
            slot += 1
            log = open(root / f"{name}.log", "w")
            running.append((name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)))
        time.sleep(1)
        for item in list(running):
            name, proc = item
            if proc.poll() is None:
                continue
            running.remove(item)
            text = (root / f"{name}.log").read_text(errors="replace")
            line = next((ln for ln in reversed(text.splitlines()) if ln.startswith("RESULT ")), None)
            if line:
                results.append(json.loads(line[len("RESULT "):]))
                print(table(results[-1:]).splitlines()[-1], flush=True)
            else:
                print(f"{name}: no result (exit {proc.returncode}); log tail:\n{text[-2000:]}", flush=True)
    order = list(cases)
    return sorted(results, key=lambda r: order.index(r["case"]))


if __name__ == "__main__":
    sys.exit(main())
