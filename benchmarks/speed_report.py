"""Tables for docs/BENCHMARKS.md from the speed benchmark's JSONL results.

    python benchmarks/speed_report.py docs/gpu-results/2026-11-26-h100c-8b-4bit.jsonl [...]

One file is one machine. Within a file, each shape/mode is compared with the mean of its ``plain``
rows (several when the case order was swapped); every other row gets its ratios against that.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from speed import matmul_params, summarise  # noqa: E402
from speed_setup import SHAPES  # noqa: E402

# SmolLM2-135M-Instruct's matrix shapes, for results written before they carried flops_per_token.
SMOLLM2_135M = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, vocab_size=49152,
                    num_attention_heads=9, num_key_value_heads=3, head_dim=64)


def flops_per_token(r: dict) -> float:
    if r.get("flops_per_token"):
        return r["flops_per_token"]
    return 4 * matmul_params(SHAPES.get(r["shape"]) or SMOLLM2_135M)


def rows_of(path: Path) -> list[dict]:
    results = [json.loads(line) for line in open(path) if line.strip()]
    for r in results:       # a case that died early wrote no shape/mode of its own
        r.setdefault("shape", r["spec"]["shape"])
        r.setdefault("mode", r["spec"]["mode"])
    out = []
    for key in dict.fromkeys((r["shape"], r["mode"]) for r in results):
        group = [r for r in results if (r["shape"], r["mode"]) == key]
        summ = [{"shape": r["shape"], "mode": r["mode"], "card": r.get("versions", {}).get("gpu", ""),
                 "cap_gb": r["spec"].get("memory_cap_gb") or "", "max_length": r["spec"]["max_length"],
                 **summarise(r, r["spec"]["warmup_steps"], flops_per_token(r), r["bf16_tflops"])}
                for r in group]
        plain = [s for s, r in zip(summ, group) if r["case"] == "plain" and not r.get("error")]
        plain_res = [r for r in group if r["case"] == "plain" and not r.get("error")]
        if plain:
            tps = statistics.mean(p["tokens_per_s"] for p in plain)
            mem = statistics.mean(p["peak_allocated_gb"] for p in plain)
            ev = statistics.mean(p["eval_loss"] for p in plain)
            for s, r in zip(summ, group):
                if s.get("error") or r["case"] == "plain":
                    continue
                s["speed_x"] = round(s["tokens_per_s"] / tps, 2)
                s["memory_x"] = round(s["peak_allocated_gb"] / mem, 2)
                s["eval_rel"] = f"{s['eval_loss'] / ev - 1:+.2%}"
                base = plain_res[0]["loss"]
                n = min(len(base), len(r["loss"]))
                s["loss_mad"] = round(sum(abs(a - b) for a, b in zip(r["loss"][:n], base[:n])) / n, 4)
        out += summ
    return out


COLS = ["shape", "mode", "case", "tokens_per_s", "speed_x", "first_step_s", "peak_allocated_gb",
        "peak_reserved_gb", "memory_x", "mfu", "loss_mad", "eval_loss", "eval_rel", "error"]


def table(rows: list[dict], cols: list[str] = COLS) -> str:
    fmt = lambda v: "" if v is None else (f"{v:.3f}" if isinstance(v, float) and v < 100 else str(v))  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(c)).replace("|", "/")[:120] for c in cols) + " |")
    return "\n".join(lines)


def main() -> int:
    for path in sys.argv[1:]:
        rows = rows_of(Path(path))
        cols = COLS + (["cap_gb", "max_length"] if any(r["cap_gb"] for r in rows) else [])
        print(f"\n{Path(path).name} ({rows[0]['card'] if rows else ''})\n")
        print(table(rows, cols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
