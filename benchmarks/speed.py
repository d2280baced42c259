"""Speed and memory of the studio against the plain QLoRA recipe (and Unsloth), on one CUDA GPU.

    python benchmarks/speed.py --shapes 135m,1b,8b --modes 4bit,16bit --cases plain,studio,unsloth \
        --steps 30 --out results.jsonl

Every case trains the same model on the same rows (speed_setup.py) with the same seed and
hyperparameters for the same number of optimizer steps, each in its own process, the order of the
cases rotating from one shape/mode to the next (and reversed with ``--reverse``). A case name may
carry studio overrides for the technique rows: ``studio:attention=sdpa+packing=false``
(``studio:gradient_checkpointing=offload``; Unsloth's checkpointing without its offload:
``unsloth:checkpointing=true``).

Long rows: ``--row-tokens N`` makes every row exactly N tokens and trains one row a step (batch 1, no
accumulation), e.g. ``--shapes 8b --modes 4bit --row-tokens 65536 --cap-gb 24`` for a 24 GB card.

Checkpoint saves: none inside the timed steps for any case by default (the studio writes its one
checkpoint after the last step, as every run does); ``--save-every K`` saves every K steps in every
case, each save timed on its own (``save_s``: what it held the training loop) and left out of the steps.

Reported per case, and as ratios against ``plain``: non-padding tokens/s over the steps after the
warm-up, time to the first optimizer step (from the process start: imports, loading, quantizing and
the step), peak memory allocated and reserved, the mean absolute per-step loss difference and the
relative eval-loss difference, and model FLOPs utilisation: 4 x (matmul parameters) FLOPs a token
(forward and input-gradient backward; recomputation and LoRA not counted) against this card's
measured bf16 matmul rate. Prints a markdown table; appends every result to ``--out`` (JSONL).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import speed_setup  # noqa: E402


def matmul_tflops() -> float:
    """The card's bf16 matmul rate on random data, the MFU denominator."""
    import torch
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(20):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return round(2 * 8192**3 * 20 / (start.elapsed_time(end) / 1e3) / 1e12, 1)


def matmul_params(model_dir: Path | dict) -> int:
    """Parameters of the matrix products a token goes through (every linear layer and the head)."""
    c = model_dir if isinstance(model_dir, dict) else json.loads((model_dir / "config.json").read_text())
    h, inter, layers, vocab = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
    heads = c["num_attention_heads"]
    kv = c.get("num_key_value_heads") or heads
    hd = c.get("head_dim") or h // heads
    per_layer = h * heads * hd * 2 + h * kv * hd * 2 + 3 * h * inter
    return layers * per_layer + h * vocab


def run_case(case: str, spec_path: Path, out: Path, timeout: int, script: Path = HERE / "speed_case.py") -> dict:
    """Run one case in its own process (``script`` for every case but Unsloth's) and read its result."""
    name, _, over = case.partition(":")
    if name == "unsloth":
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in ("/tmp/site-unsloth", os.environ.get("PYTHONPATH", "")) if p))
        cmd = [sys.executable, str(HERE / "speed_unsloth.py"), "--spec", str(spec_path), "--case", "unsloth"]
    else:
        env = dict(os.environ)
        cmd = [sys.executable, str(script), "--spec", str(spec_path), "--case", name]
    cmd += ["--out", str(out)] + ([x for x in over.split("+") if x] if over else [])
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        log = (p.stdout + p.stderr)[-4000:]
    except subprocess.TimeoutExpired as e:
        log = f"timed out after {timeout} s\n" + str(e.stdout or "")[-2000:]
    res = json.loads(out.read_text()) if out.exists() else {"error": "no result", "log": log}
    res["case"] = case
    res["process_s"] = round(time.monotonic() - t0, 1)
    if res.get("error"):
        res["log"] = log
    return res


def summarise(res: dict, warmup: int, flops_per_token: float, peak_tflops: float) -> dict:
    if res.get("error"):
        return {"case": res["case"], "error": res["error"]}
    steps, tokens = res["step_s"][warmup:], res["tokens"][warmup:]
    tps = sum(tokens) / sum(steps) if steps and sum(steps) > 0 else None
    saves = res.get("save_s") or []
    return {"case": res["case"], "tokens_per_s": round(tps) if tps else None,
            "saves": len(saves), "save_stall_s": round(sum(saves), 2) if saves else None,
            "first_step_s": round(res["first_step_s"], 1) if res.get("first_step_s") else None,
            "peak_allocated_gb": res.get("peak_allocated_gb"), "peak_reserved_gb": res.get("peak_reserved_gb"),
            "train_peak_allocated_gb": res.get("train_peak_allocated_gb"), "eval_loss": res.get("eval_loss"),
            "final_loss": res["loss"][-1] if res.get("loss") else None,
            "mfu": round(tps * flops_per_token / (peak_tflops * 1e12), 3) if tps else None}


def compare(rows: list[dict], results: list[dict]) -> None:
    """Ratios and loss parity against the plain case of the same shape/mode."""
    base = next((r for r in rows if r["case"] == "plain" and not r.get("error")), None)
    base_res = next((r for r in results if r["case"] == "plain" and not r.get("error")), None)
    if not base:
        return
    for row, res in zip(rows, results):
        if row.get("error") or row is base:
            continue
        if row.get("tokens_per_s") and base.get("tokens_per_s"):
            row["speed_x"] = round(row["tokens_per_s"] / base["tokens_per_s"], 2)
        if row.get("peak_allocated_gb") and base.get("peak_allocated_gb"):
            row["memory_x"] = round(row["peak_allocated_gb"] / base["peak_allocated_gb"], 2)
        a, b = res.get("loss") or [], base_res.get("loss") or []
        n = min(len(a), len(b))
        if n:
            row["loss_mad"] = round(sum(abs(x - y) for x, y in zip(a[:n], b[:n])) / n, 4)
        if row.get("eval_loss") and base.get("eval_loss"):
            row["eval_rel"] = round(row["eval_loss"] / base["eval_loss"] - 1, 4)


def table(rows: list[dict]) -> str:
    cols = ["shape", "mode", "case", "row_tokens", "tokens_per_s", "speed_x", "first_step_s", "peak_allocated_gb",
            "train_peak_allocated_gb", "peak_reserved_gb", "memory_x", "mfu", "saves", "save_stall_s", "final_loss",
            "loss_mad", "eval_loss", "eval_rel", "error"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join("" if r.get(c) is None else str(r.get(c)) for c in cols) + " |")
    return "\n".join(lines)


def long_rows(a: argparse.Namespace) -> None:
    """``--row-tokens N``: one row of exactly N tokens a step, as many rows as steps (and one held back)."""
    if a.row_tokens:
        a.batch_size, a.grad_accum, a.max_length = 1, 1, a.row_tokens
        a.train_rows, a.eval_rows = a.steps, 1


def rows_for(a: argparse.Namespace, work: Path, tokenizer: Path) -> tuple[Path, Path]:
    """The rows every case reads (made once a length): exact-length ones with ``--row-tokens``."""
    if a.row_tokens:
        folder = Path(a.rows) if a.rows else work / f"rows-exact-{a.row_tokens}-{a.train_rows}"
        return speed_setup.write_exact_rows(folder, tokenizer, a.train_rows, a.eval_rows, a.row_tokens)
    folder = Path(a.rows) if a.rows else work / f"rows-{a.max_length}"
    return speed_setup.write_rows(folder, tokenizer, a.train_rows, a.eval_rows, a.max_length)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="135m,1b,8b")
    ap.add_argument("--modes", default="4bit,16bit")
    ap.add_argument("--cases", default="plain,studio")
    ap.add_argument("--reverse", action="store_true", help="run the cases in the opposite order")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3, help="steps left out of the speed figures")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--grad-accum", type=int, default=2)
    ap.add_argument("--r", type=int, default=64)
    ap.add_argument("--alpha", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=2048)
    ap.add_argument("--train-rows", type=int, default=640)
    ap.add_argument("--eval-rows", type=int, default=64)
    ap.add_argument("--row-tokens", type=int, default=0,
                    help="every row exactly this many tokens, one row a step (batch 1, no accumulation)")
    ap.add_argument("--save-every", type=int, default=0,
                    help="a checkpoint every this many steps in every case, timed apart (0: none inside the steps)")
    ap.add_argument("--no-checkpointing", action="store_true")
    ap.add_argument("--cap-gb", type=float, default=0, help="cap the process's GPU memory (a workstation card)")
    ap.add_argument("--gguf", default=None, help="the built-in model's GGUF file, when the package is not installed")
    ap.add_argument("--tokenizer", default=None, help="a folder with the SmolLM2 tokenizer (default: the built-in model)")
    ap.add_argument("--rows", default=None, help="a folder with train.jsonl/eval.jsonl made earlier (default: made now)")
    ap.add_argument("--work", default="/tmp/speed")
    ap.add_argument("--timeout", type=int, default=900, help="seconds one case may take")
    ap.add_argument("--out", default="speed-results.jsonl")
    a = ap.parse_args()

    import torch
    if not torch.cuda.is_available():
        print("This benchmark needs an NVIDIA GPU.")
        return 2
    long_rows(a)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    peak = matmul_tflops()
    tokenizer = Path(a.tokenizer) if a.tokenizer else speed_setup.base_folder(a.gguf)
    train, evals = rows_for(a, work, tokenizer)
    print(f"{torch.cuda.get_device_name(0)}; bf16 matmul {peak} TFLOP/s; rows {speed_setup.row_stats(train)}",
          flush=True)
    cases = a.cases.split(",")
    all_rows = []
    k = 0
    for shape in a.shapes.split(","):
        folder = (speed_setup.base_folder(a.gguf) if shape == "135m"
                  else speed_setup.model_folder(shape, work, tokenizer))
        fpt = 4 * matmul_params(folder)
        for mode in a.modes.split(","):
            spec = {"shape": shape, "mode": mode, "model_dir": str(folder), "train_rows": str(train),
                    "eval_rows": str(evals), "steps": a.steps, "warmup_steps": a.warmup,
                    "batch_size": a.batch_size, "grad_accum": a.grad_accum, "learning_rate": 2e-4,
                    "scheduler": "constant", "warmup_ratio": 0.03, "optimizer": "paged_adamw_8bit",
                    "max_grad_norm": 0.3, "seed": 42, "gradient_checkpointing": not a.no_checkpointing,
                    "lora": {"r": a.r, "alpha": a.alpha, "dropout": 0.0, "target_modules": "all-linear"},
                    "memory_cap_gb": a.cap_gb, "max_length": a.max_length, "save_steps": a.save_every,
                    "row_tokens": a.row_tokens}
            spec_path = work / f"spec-{shape}-{mode}.json"
            spec_path.write_text(json.dumps(spec))
            order = cases[k % len(cases):] + cases[:k % len(cases)]
            order = order[::-1] if a.reverse else order
            k += 1
            results = {}
            for case in order:
                out = work / f"result-{shape}-{mode}-{case.replace(':', '_').replace('+', '_').replace('=', '-')}.json"
                out.unlink(missing_ok=True)
                results[case] = run_case(case, spec_path, out, a.timeout)
                results[case]["order"] = order
                with open(a.out, "a") as f:
                    f.write(json.dumps({**results[case], "spec": spec, "bf16_tflops": peak,
                                        "flops_per_token": fpt}) + "\n")
                s = summarise(results[case], a.warmup, fpt, peak)
                print(json.dumps({"shape": shape, "mode": mode, **s}), flush=True)
            res_list = [results[c] for c in cases]
            rows = [{"shape": shape, "mode": mode, "row_tokens": a.row_tokens or None,
                     **summarise(r, a.warmup, fpt, peak)} for r in res_list]
            compare(rows, res_list)
            all_rows += rows
    print()
    print(table(all_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
