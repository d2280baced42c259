"""Preference training on one CUDA GPU: the studio's DPO against TRL's own DPOTrainer recipe, and GRPO's step.

    python benchmarks/preference_speed.py --shape 1b --cases trl,studio,studio,trl --steps 30 --out results.jsonl
    python benchmarks/preference_speed.py --shape 1b --cases grpo --steps 8 --generations 8 --answer-tokens 128

DPO cases (preference_case.py, each in its own process, in the order given: list a case twice, in
alternating order, to see the order's effect) train the same model on the same pairs with the same
settings: synthetic pairs of realistic length (a prompt, a chosen and a rejected answer of real words,
each log-normal around ``--pair-tokens`` / 3 tokens), beta 0.1, LoRA on every linear layer, 4-bit NF4.
Reported: non-padding tokens/s of chosen + rejected sequences over the steps after the warm-up, peak
memory allocated and reserved, the final loss.

The grpo case trains the studio's GRPO on the demo FAQ's questions with the 'facts' reward: seconds a
step (every answer generated, then scored and learned from), for the run-time sentence of the UI.
Random weights (the ``1b``/``8b`` shapes) write to the answer limit every time, the slowest case.
Prints a markdown table; appends every result to ``--out`` (JSONL).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import speed_setup  # noqa: E402
from speed import run_case  # noqa: E402


def write_pairs(path: Path, n: int, pair_tokens: int, seed: int = 0) -> Path:
    """Pairs whose chosen and rejected answers share a start and then differ (as a corrected answer does)."""
    rng = random.Random(seed)
    words = speed_setup._words()
    part = lambda: max(8, int(math.exp(rng.gauss(math.log(pair_tokens / 3 / 1.3), 0.6))))  # noqa: E731
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            shared = speed_setup._text(rng, words, part() // 2)
            f.write(json.dumps({"prompt": speed_setup._text(rng, words, part()),
                                "chosen": shared + " " + speed_setup._text(rng, words, part() // 2),
                                "rejected": shared + " " + speed_setup._text(rng, words, part() // 2)}) + "\n")
    return path


def summarise(res: dict, warmup: int) -> dict:
    if res.get("error"):
        return {"case": res["case"], "error": res["error"][:200]}
    steps, tokens = res["step_s"][warmup:], res["tokens"][warmup:]
    tps = sum(tokens) / sum(steps) if steps and sum(steps) > 0 and sum(tokens) else None
    return {"case": res["case"], "tokens_per_s": round(tps) if tps else None,
            "step_s": round(statistics.median(steps), 3) if steps else None,
            "peak_allocated_gb": res.get("peak_allocated_gb"), "peak_reserved_gb": res.get("peak_reserved_gb"),
            "final_loss": round(res["loss"][-1], 4) if res.get("loss") else None,
            "last_logged": res.get("last_logged"), "wall_s": res.get("wall_s")}


def table(rows: list[dict]) -> str:
    keys = ("case", "tokens_per_s", "step_s", "peak_allocated_gb", "peak_reserved_gb", "final_loss", "error")
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="1b")
    ap.add_argument("--mode", default="4bit", choices=("4bit", "16bit"))
    ap.add_argument("--cases", default="trl,studio,studio,trl")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3, help="steps left out of the speed figures")
    ap.add_argument("--batch-size", type=int, default=4, help="pairs (DPO) or questions (GRPO) a micro-batch")
    ap.add_argument("--grad-accum", type=int, default=2)
    ap.add_argument("--r", type=int, default=16)
    ap.add_argument("--alpha", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--pairs", type=int, default=400)
    ap.add_argument("--pair-tokens", type=int, default=600, help="median tokens of prompt + chosen + rejected")
    ap.add_argument("--generations", type=int, default=8, help="GRPO: answers a question")
    ap.add_argument("--answer-tokens", type=int, default=128, help="GRPO: longest answer")
    ap.add_argument("--tokenizer", default=None, help="a folder with the SmolLM2 tokenizer (default: the built-in model)")
    ap.add_argument("--gguf", default=None, help="the built-in model's GGUF file, when the package is not installed")
    ap.add_argument("--work", default="/tmp/pref-bench")
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--out", default="preference-results.jsonl")
    a = ap.parse_args()

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    tokenizer = Path(a.tokenizer) if a.tokenizer else speed_setup.base_folder(a.gguf)
    folder = (speed_setup.base_folder(a.gguf) if a.shape == "135m"
              else speed_setup.model_folder(a.shape, work, tokenizer))
    from studio.paths import DEMO_DATA
    spec = {"shape": a.shape, "mode": a.mode, "model_dir": str(folder),
            "pairs": str(write_pairs(work / "pairs.jsonl", a.pairs, a.pair_tokens)), "questions": str(DEMO_DATA),
            "steps": a.steps, "batch_size": a.batch_size, "grad_accum": a.grad_accum, "learning_rate": 5e-6,
            "beta": 0.1, "seed": 42, "max_length": a.max_length, "memory_cap_gb": 0,
            "lora": {"r": a.r, "alpha": a.alpha, "dropout": 0.05, "target_modules": "all-linear"},
            "grpo": {"rewards": "facts", "generations": a.generations, "max_answer_tokens": a.answer_tokens}}
    spec_path = work / f"spec-{a.shape}.json"
    spec_path.write_text(json.dumps(spec))
    rows = []
    for i, case in enumerate(a.cases.split(",")):
        out = work / f"result-{i}.json"
        out.unlink(missing_ok=True)
        res = run_case(case, spec_path, out, a.timeout, script=HERE / "preference_case.py")
        res["order"] = i
        with open(a.out, "a") as f:
            f.write(json.dumps({**res, "spec": spec}) + "\n")
        rows.append({**summarise(res, a.warmup), "order": i})
        print(json.dumps(rows[-1]), flush=True)
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
