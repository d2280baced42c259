"""More than one GPU through the studio's own subprocess runner: DDP and FSDP-QLoRA against one GPU.

    python benchmarks/multi_gpu.py --tokenizer DIR [--rows DIR] [--steps 20] [--cap-gb 10] \
        [--big-shape 8b] [--only single-16bit,ddp-16bit,...] [--run-oom] --out multi-gpu.jsonl

Every case is a real run started by ``JobManager.start`` (``training.gpus``/``strategy``, one-GPU cases
with ``training.isolate``), so each is its own process tree, started, followed, stopped and judged
exactly as in the app. Models have random weights (speed and memory do not depend on their values),
built once from a config in code with the tokenizer of ``--tokenizer`` beside them.

Cases:
  single-16bit  1B Llama shape, 16-bit LoRA, one GPU, micro-batch 2b (global batch G = 2b x accumulation)
  ddp-16bit     the same on 2 GPUs with DDP, micro-batch b each: the same global batch, the same rows a step
  single-4bit   1B QLoRA on one GPU, micro-batch 2b (the baseline of fsdp-4bit)
  fsdp-4bit     1B FSDP + QLoRA on 2 GPUs, micro-batch b each
  fsdp-4bit-layer, fsdp-4bit-profile (only when named in --only)
                the same with one FSDP unit per decoder layer, or with a few steps profiled on every
                rank (profile_hook/), see FSDP_VARIANTS
  fsdp-big      a shape (--big-shape) that does NOT fit one GPU under --cap-gb by the studio's estimate at
                the chosen length, FSDP + QLoRA on 2 GPUs under the same cap (--run-oom also runs it on one
                GPU, which should fail with the out-of-memory message)
  stop          a 2-GPU DDP run stopped after a few steps: seconds until every process is gone, and each
                GPU's used memory (nvidia-smi) back at its level before the run

Reported: non-padding tokens/s after the warm-up steps (the trainer counts every rank's tokens),
scaling efficiency = tok/s on 2 GPUs / (2 x tok/s on 1), peak memory allocated and reserved on every
GPU (each rank reports its own), the per-step loss difference against the one-GPU run at the same
global batch. A markdown table is printed and every case is appended to --out (JSONL). A case that
fails is recorded with its error and the tail of its train.log; the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from speed_setup import _LLAMA3 as _LLAMA, SHAPES, model_folder  # noqa: E402

WARMUP = 3           # logged steps left out of the speed figures (compilation, allocator growth)


# ---- inputs --------------------------------------------------------------------------------------

def build_model(shape: str, work: Path, tokenizer: Path) -> Path:
    """A random-weight bfloat16 folder of ``shape`` (made once, in a child process so this one never
    holds a CUDA context that would count in the measurements)."""
    folder = work / f"llama-{shape}"
    if (folder / "config.json").exists() and any(folder.glob("*.safetensors")):
        return folder
    subprocess.run([sys.executable, __file__, "--build", shape, "--work", str(work), "--tokenizer", str(tokenizer)],
                   check=True, timeout=1200)
    return folder


def chat_rows(path: Path, n: int, seed: int, words_per_row: tuple[float, float] | None = None) -> Path:
    """Synthetic conversations the studio's pipeline renders and masks: a realistic length spread
    (log-normal around ~300 tokens), or with ``words_per_row`` every row long enough to be cut at the
    max length (the estimate's worst case)."""
    import math

    from speed_setup import _text, _words
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    words = _words()
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            if words_per_row:
                total = int(rng.uniform(*words_per_row))
            else:
                total = max(20, int(math.exp(rng.gauss(math.log(300 / 1.3), 0.75))))
            # Long rows keep the question short, so cutting them at the max length leaves answer tokens.
            q = 50 if words_per_row else max(5, int(total * rng.uniform(0.15, 0.4)))
            f.write(json.dumps({"messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": _text(rng, words, q)},
                {"role": "assistant", "content": _text(rng, words, total - q)}]}) + "\n")
    return path


# ---- the studio's settings and estimate -------------------------------------------------------------

def config(name: str, model: Path, data: Path, gpus: int, strategy: str, quant: str, batch: int, accum: int,
           steps: int, max_length: int, checkpointing: str = "auto", save_steps: int | None = None):
    """The run's settings. Checkpoints are saved once, at the end (``save_steps`` = the steps), unless
    asked: the automatic interval (a tenth of the run) would save every step or two of these short
    runs, and an FSDP checkpoint gathers the whole model to rank 0's memory (seconds a save), which
    would be measured instead of training."""
    from studio.config import StudioConfig
    return StudioConfig.from_dict({
        "name": name,
        "model": {"source": str(model), "quantization": quant, "compute_dtype": "bfloat16"},
        "data": {"file": str(data), "max_length": max_length, "validation": 0},
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
        "training": {"max_steps": steps, "batch_size": batch, "grad_accum": accum, "learning_rate": 2e-4,
                     "scheduler": "constant", "warmup_ratio": 0.0, "optimizer": "adamw_torch", "seed": 42,
                     "logging_steps": 1, "eval_steps": 0,
                     "save_steps": steps if save_steps is None else save_steps,
                     "gradient_checkpointing": checkpointing, "gpus": gpus, "strategy": strategy,
                     "isolate": gpus == 1}})


def estimates(cfg, shape: str, cap_gb: float) -> tuple[float, float]:
    """(one GPU, one GPU of a 2-GPU FSDP run) estimate in GB for ``cfg`` on a ``cap_gb`` card."""
    from studio.models.size import config_facts
    from studio.training.distributed import estimate_per_gpu
    facts = config_facts({"model_type": "llama", **SHAPES[shape], **_LLAMA})
    device = {"device": "cuda", "free_gb": cap_gb}
    return (estimate_per_gpu(cfg, facts, device, 1, "single")["total_gb"],
            estimate_per_gpu(cfg, facts, device, 2, "fsdp")["total_gb"])


def big_length(shape: str, cap_gb: float, model: Path, data: Path, steps: int) -> tuple[int, float, float]:
    """The shortest max length (multiples of 1,024) at which one GPU does not fit ``cap_gb`` by the
    estimate (by more than 10%) while one GPU of the 2-GPU FSDP run fits it. The cap limits PyTorch's
    allocator only, so the CUDA context the estimate counts is left out of both."""
    from studio.models.size import _GPU_CONTEXT
    context = _GPU_CONTEXT / 1e9
    for length in range(1024, 65537, 1024):
        cfg = config("probe", model, data, 2, "fsdp", "4bit-nf4", 1, 1, steps, length, "on")
        one, fsdp = estimates(cfg, shape, cap_gb)
        if one - context > 1.1 * cap_gb and fsdp - context < cap_gb:
            return length, one, fsdp
        if fsdp - context >= cap_gb:
            break
    raise SystemExit(f"No length makes the {shape} shape too big for one {cap_gb} GB GPU while fitting two: "
                     "choose another --cap-gb or --big-shape.")


# FSDP-QLoRA's choice of units (distributed.FSDP_UNITS_ENV) and a profiled run, each a case of its own.
# Only fsdp-4bit runs unless the others are named in --only.
FSDP_VARIANTS = {"fsdp-4bit": {},
                 "fsdp-4bit-layer": {"STUDIO_FSDP_UNITS": "layer"},
                 "fsdp-4bit-profile": {}}


def profile_env(folder: Path) -> dict:
    """Processes started with this profile a few steps (profile_hook/sitecustomize.py) into ``folder``."""
    hook = str(HERE / "profile_hook")
    return {"STUDIO_BENCH_PROFILE": str(folder),
            "PYTHONPATH": os.pathsep.join(p for p in (hook, os.environ.get("PYTHONPATH", "")) if p)}


# ---- running a case -------------------------------------------------------------------------------

def gpu_used_mib() -> list[int]:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30).stdout
        return [int(x) for x in out.split()]
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return []


def rank_memory(log: str) -> list[dict]:
    return [{"rank": int(m.group(1)), "gpu": int(m.group(2)), "peak_allocated_gb": float(m.group(3)),
             "peak_reserved_gb": float(m.group(4))}
            for m in re.finditer(r"STUDIO-RANK-MEMORY rank=(\d+) gpu=(\d+) peak_allocated_gb=([\d.]+) "
                                 r"peak_reserved_gb=([\d.]+)", log)]


def run_case(name: str, cfg, timeout: float, cap_gb: float = 0, stop_after_steps: int = 0,
             env: dict | None = None) -> dict:
    """One run through the job manager, its processes started with ``env`` added; its numbers, or its
    error and log tail."""
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        res = _run_case(name, cfg, timeout, cap_gb, stop_after_steps)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if env:
        res["env"] = env
    return res


def _run_case(name: str, cfg, timeout: float, cap_gb: float, stop_after_steps: int) -> dict:
    from studio.jobs import get_manager
    from studio.training.distributed import CAP_ENV

    res: dict = {"case": name, "gpus": cfg.training.gpus, "strategy": cfg.training.strategy,
                 "quantization": cfg.model.quantization, "batch_size": cfg.training.batch_size,
                 "grad_accum": cfg.training.grad_accum,
                 "global_batch": cfg.training.batch_size * cfg.training.grad_accum * cfg.training.gpus,
                 "max_length": cfg.data.max_length, "cap_gb": cap_gb or None}
    if cap_gb:
        os.environ[CAP_ENV] = str(cap_gb)
    else:
        os.environ.pop(CAP_ENV, None)
    job = None
    t0 = time.monotonic()
    try:
        res["gpu_used_mib_before"] = gpu_used_mib()
        job = get_manager().start(cfg)
        res["run_dir"] = str(job.run_dir)
        stopped_at = None
        while job.active:
            if time.monotonic() - t0 > timeout and not job.stop_requested:
                res["error"] = f"timed out after {timeout:.0f} s; stopped"
                job.stop()
            if stop_after_steps and stopped_at is None and job.progress.step >= stop_after_steps:
                res["alive_before_stop"] = len(job.alive_pids())
                stopped_at = time.monotonic()
                job.stop()
            time.sleep(0.2)
        job.join(60)
        if stopped_at is not None:
            res["stop_to_gone_s"] = round(time.monotonic() - stopped_at, 2)
            res["alive_after_stop"] = job.alive_pids()
            res["worker_processes_left"] = _worker_processes()
            time.sleep(1.0)       # nvidia-smi's reading lags the processes' exit by a moment
            res["gpu_used_mib_after"] = gpu_used_mib()
        res.update(state=job.state, message=job.message, wall_s=round(time.monotonic() - t0, 1))
        res.update(_numbers(job))
        if job.state == "failed" and "error" not in res:
            res["error"] = job.message
    except Exception as e:          # one case's failure must not lose the others
        res["error"] = f"{type(e).__name__}: {e}"
        res["traceback"] = traceback.format_exc()[-3000:]
        if job is not None and job.active:
            job.stop()
            job.join(180)
    if job is not None:
        try:
            res["log_tail"] = job.run.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            pass
    return res


def _worker_processes() -> list[int]:
    import psutil
    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info.get("cmdline") or [])
        if "studio.training.worker" in cmd and p.pid != os.getpid():
            out.append(p.pid)
    return out


def _numbers(job) -> dict:
    rows = job.metrics.rows("train")
    out: dict = {"losses": [r["loss"] for r in rows], "steps": len(rows)}
    timed = rows[WARMUP - 1:] if len(rows) > WARMUP else []
    if len(timed) >= 2:
        tokens = timed[-1]["tokens_seen"] - timed[0]["tokens_seen"]
        seconds = timed[-1]["elapsed_s"] - timed[0]["elapsed_s"]
        out["tokens_per_s"] = round(tokens / seconds) if seconds > 0 else None
        out["step_s"] = round(seconds / (len(timed) - 1), 3)
    try:
        log = job.run.log_path.read_text(errors="replace")
    except OSError:
        log = ""
    out["memory"] = rank_memory(log)
    out["notes"] = job.info.get("notes")
    out["checkpointed_layers"] = job.info.get("checkpointed_layers")
    out["adapter_saved"] = job.run.has_adapter()
    return out


# ---- comparing and printing -------------------------------------------------------------------------

def compare(results: dict[str, dict]) -> None:
    pairs = {"ddp-16bit": "single-16bit", **{name: "single-4bit" for name in FSDP_VARIANTS}}
    for case, base_name in pairs.items():
        res, base = results.get(case), results.get(base_name)
        if not res or not base or res.get("error") or base.get("error"):
            continue
        if res.get("tokens_per_s") and base.get("tokens_per_s"):
            res["scaling_efficiency"] = round(res["tokens_per_s"] / (2 * base["tokens_per_s"]), 3)
        a, b = res.get("losses") or [], base.get("losses") or []
        n = min(len(a), len(b))
        if n:
            diffs = [abs(x - y) for x, y in zip(a[:n], b[:n])]
            res["loss_vs_single"] = {"first_step": round(diffs[0], 4), "mean_abs": round(sum(diffs) / n, 4),
                                     "max_abs": round(max(diffs), 4), "steps": n,
                                     "relative_mean": round(sum(d / abs(y) for d, y in zip(diffs, b)) / n, 4)}


def table(results: list[dict]) -> str:
    lines = ["| case | GPUs | strategy | quant | micro-batch x accum x GPUs | tok/s | scaling eff. | "
             "peak alloc / reserved GB per GPU | loss vs 1 GPU (first, mean abs) | state |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        mem = ", ".join(f"{m['peak_allocated_gb']:.1f}/{m['peak_reserved_gb']:.1f}"
                        for m in sorted(r.get("memory") or [], key=lambda m: m["rank"])) or "-"
        lv = r.get("loss_vs_single")
        loss = f"{lv['first_step']}, {lv['mean_abs']}" if lv else "-"
        state = r.get("state", "-") + (f" ({r['error'][:80]})" if r.get("error") else "")
        if r["case"] == "stop":
            state += (f"; gone {r.get('stop_to_gone_s')} s after stop, left {r.get('alive_after_stop')}, "
                      f"GPU MiB before {r.get('gpu_used_mib_before')} after {r.get('gpu_used_mib_after')}")
        lines.append(f"| {r['case']} | {r.get('gpus')} | {r.get('strategy')} | {r.get('quantization')} | "
                     f"{r.get('batch_size')} x {r.get('grad_accum')} x {r.get('gpus')} | {r.get('tokens_per_s', '-')} | "
                     f"{r.get('scaling_efficiency', '-')} | {mem} | {loss} | {state} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", help="a folder with a tokenizer (saved beside the random weights)")
    ap.add_argument("--rows", help="a folder with train.jsonl (chat rows); generated when left out")
    ap.add_argument("--work", default="/tmp/multi-gpu")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--micro-batch", type=int, default=4, help="b: per-GPU micro-batch of the 2-GPU cases")
    ap.add_argument("--accum", type=int, default=1)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--cap-gb", type=float, default=0,
                    help="per-GPU memory cap of the big-shape cases (default 8 for 8b, 12 for 13b)")
    ap.add_argument("--big-shape", default="8b", choices=("8b", "13b"))
    ap.add_argument("--big-steps", type=int, default=8)
    ap.add_argument("--run-oom", action="store_true", help="also run the big shape on one GPU (expected to fail)")
    ap.add_argument("--only", default="", help="comma-separated case names")
    ap.add_argument("--case-timeout", type=float, default=300)
    ap.add_argument("--out", default="multi-gpu.jsonl")
    ap.add_argument("--profile-dir", help="where fsdp-4bit-profile writes each rank's profile (default: beside --out)")
    ap.add_argument("--small-shape", default="1b", choices=("1b", "tiny"))
    ap.add_argument("--cpu-dry-run", action="store_true",
                    help="check this script on a CPU: 2 gloo processes stand for 2 GPUs, DDP and stop cases only")
    ap.add_argument("--build", help=argparse.SUPPRESS)
    a = ap.parse_args()
    work = Path(a.work)
    if a.build:
        model_folder(a.build, work, Path(a.tokenizer))
        return 0
    if not a.tokenizer:
        ap.error("--tokenizer is required")
    os.environ.setdefault("STUDIO_HOME", str(work / "home"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    only = set(filter(None, a.only.split(",")))
    a.cap_gb = a.cap_gb or {"8b": 8.0, "13b": 12.0}[a.big_shape]
    if a.cpu_dry_run:
        import studio.training.distributed as d
        d.gpu_count = lambda: 2
        only = only or {"single-16bit", "ddp-16bit", "stop"}
    want = lambda name: not only or name in only  # noqa: E731
    b, acc, steps = a.micro_batch, a.accum, a.steps
    started = time.monotonic()
    results: dict[str, dict] = {}
    order: list[dict] = []

    def record(res: dict) -> None:
        results[res["case"]] = res
        order.append(res)
        with open(a.out, "a") as f:
            f.write(json.dumps(res, default=str) + "\n")
        brief = {k: res.get(k) for k in ("case", "state", "tokens_per_s", "step_s", "memory", "error", "wall_s")}
        print(json.dumps(brief, default=str), flush=True)
        if res.get("error") or res.get("state") not in ("done", "stopped"):
            print(f"--- {res['case']} log tail ---\n{res.get('log_tail', '')[-3000:]}\n{res.get('traceback', '')}",
                  flush=True)

    try:
        small = build_model(a.small_shape, work, Path(a.tokenizer))
        rows = Path(a.rows) / "train.jsonl" if a.rows else \
            chat_rows(work / "rows" / "train.jsonl", max(64, (steps + 2) * 2 * b * acc), seed=0)
    except Exception as e:
        print(f"setup failed: {type(e).__name__}: {e}\n{traceback.format_exc()}")
        return 1
    L = a.max_length
    cases = [("single-16bit", lambda: config("single-16bit", small, rows, 1, "auto", "none", 2 * b, acc, steps, L)),
             ("ddp-16bit", lambda: config("ddp-16bit", small, rows, 2, "ddp", "none", b, acc, steps, L)),
             # Both 4-bit cases checkpoint every layer (FSDP always does), so the ratio is the distribution's.
             ("single-4bit", lambda: config("single-4bit", small, rows, 1, "auto", "4bit-nf4", 2 * b, acc, steps, L,
                                            "on")),
             *((name, lambda name=name: config(name, small, rows, 2, "fsdp", "4bit-nf4", b, acc, steps, L, "on"))
               for name in FSDP_VARIANTS)]
    for name, make in cases:
        if want(name) and (name == "fsdp-4bit" or name not in FSDP_VARIANTS or name in only):
            env = dict(FSDP_VARIANTS.get(name, {}))
            if name == "fsdp-4bit-profile":
                env.update(profile_env(Path(a.profile_dir or Path(a.out).parent / "profile")))
            record(run_case(name, make(), a.case_timeout, env=env))

    if want("fsdp-big") or (a.run_oom and want("single-big")):
        try:
            big = build_model(a.big_shape, work, Path(a.tokenizer))
            long_rows = chat_rows(work / "rows-long" / "train.jsonl", 4 * (a.big_steps + 2), seed=1,
                                  words_per_row=(40000, 50000))
            length, one, fsdp = big_length(a.big_shape, a.cap_gb, big, long_rows, a.big_steps)
            print(f"{a.big_shape} at {length:,} tokens under {a.cap_gb} GB a GPU: estimate {one} GB on one GPU "
                  f"(does not fit), {fsdp} GB a GPU with FSDP on 2", flush=True)
            for name, gpus, strategy in (("fsdp-big", 2, "fsdp"), ("single-big", 1, "auto")):
                if name == "single-big" and not a.run_oom or not want(name):
                    continue
                cfg = config(name, big, long_rows, gpus, strategy, "4bit-nf4", 1, 1, a.big_steps, length, "on")
                res = run_case(name, cfg, a.case_timeout, cap_gb=a.cap_gb)
                res.update(shape=a.big_shape, estimate_one_gpu_gb=one, estimate_fsdp_per_gpu_gb=fsdp)
                record(res)
        except BaseException as e:
            record({"case": "fsdp-big", "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()})

    if want("stop"):
        cfg = config("stop", small, rows, 2, "ddp", "none", b, acc, 10_000, L, save_steps=0)
        record(run_case("stop", cfg, a.case_timeout, stop_after_steps=5))

    compare(results)
    print()
    print(table(order))
    print(f"\nTotal {time.monotonic() - started:.0f} s. Results appended to {a.out}.")
    with open(a.out, "a") as f:
        f.write(json.dumps({"summary": [{k: v for k, v in r.items() if k not in ("log_tail", "losses")}
                                        for r in order]}, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
