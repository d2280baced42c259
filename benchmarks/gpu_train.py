"""GPU benchmark: the QLoRA path and 16-bit LoRA on the built-in model with the demo data.

    python benchmarks/gpu_train.py [--steps 300] [--out results.json]

Each case runs a real ``TrainingJob`` through the job manager (the same path as the app and
``studio train``) and records: optimizer steps, non-padding tokens per second (the metrics rows'
own figure, averaged over the second half of the run), peak GPU memory (allocated and reserved, by
PyTorch), the GPU memory in use before the job and after it ended and was released, first/last loss.
A last case stops a run mid-way and measures how long the stop took and what memory came back.
Prints a markdown table and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from studio.config import StudioConfig, merge  # noqa: E402
from studio.jobs import get_manager  # noqa: E402
from studio.presets import load_preset  # noqa: E402


PROMPT = "How much would an Aurora Pro set me back?"


def fmt(x) -> str:
    return '-' if x is None else f"{x:.3f}"


def gib(n: int) -> float:
    return round(n / 2**30, 3)


def memory_now() -> dict:
    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info()
    return {"allocated_gb": gib(torch.cuda.memory_allocated()), "reserved_gb": gib(torch.cuda.memory_reserved()),
            "device_used_gb": gib(total - free)}


def cases(steps: int) -> list[tuple[str, StudioConfig]]:
    common = {"model": {"source": "default"},
              "data": {"file": "demo", "max_length": 256, "validation": 16},
              "training": {"max_steps": steps, "logging_steps": 5, "eval_steps": max(50, steps // 4),
                           "batch_size": 8, "grad_accum": 2}}
    qlora = merge(load_preset("qlora-paper"), common)
    qlora_fast = merge(qlora, {"training": {"gradient_checkpointing": False}})
    lora16 = merge(load_preset("quality-lora-16bit"), common)
    lora16 = merge(lora16, {"lora": {"r": 64, "alpha": 16, "use_rslora": False},
                            "training": {"epochs": 0, "learning_rate": 2e-4}})
    return [("QLoRA NF4 (qlora-paper preset: double quant, bf16, r64 all-linear, paged AdamW 8-bit, grad. checkpointing)", qlora),
            ("QLoRA NF4, no gradient checkpointing", qlora_fast),
            ("16-bit LoRA bf16, r64 all-linear", lora16)]


def live_cuda_tensors() -> dict:
    """CUDA tensors still reachable from Python: what a leak would be made of."""
    import gc
    gc.collect()
    seen, total, shapes = set(), 0, {}
    for obj in gc.get_objects():
        try:
            if isinstance(obj, torch.Tensor) and obj.is_cuda and id(obj) not in seen:
                seen.add(id(obj))
                n = obj.numel() * obj.element_size()
                total += n
                key = f"{tuple(obj.shape)} {obj.dtype}"
                shapes[key] = shapes.get(key, 0) + 1
        except Exception:
            pass
    top = sorted(shapes.items(), key=lambda kv: -kv[1])[:8]
    return {"count": len(seen), "gb": gib(total), "top_shapes": top}


def chat_check(job, prompt: str) -> dict:
    """The just-trained model in memory vs the same run reloaded from its folder: same answer?"""
    from studio.device import DeviceLock
    from studio.inference import ChatSession
    lock = job.device_lock or DeviceLock()
    mem = ChatSession.from_job(job, device_lock=lock)
    mem.generation.temperature, mem.generation.max_new_tokens = 0.0, 40
    in_memory = mem.reply([], prompt)
    base = mem.reply([], prompt, use_adapter=False)
    del mem
    disk = ChatSession.from_run(job.run_dir, device_lock=lock)
    disk.generation.temperature, disk.generation.max_new_tokens = 0.0, 40
    reloaded = disk.reply([], prompt)
    del disk
    return {"prompt": prompt, "base": base, "tuned_in_memory": in_memory, "tuned_reloaded": reloaded}


def run_case(label: str, cfg: StudioConfig, run_dir: Path, stop_after: int | None = None,
             chat_prompt: str | None = None) -> dict:
    manager = get_manager()
    cfg = merge(cfg, {"training": {"output_dir": str(run_dir)}})
    before = memory_now()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.monotonic()
    job = manager.start(cfg, keep_model=chat_prompt is not None)
    stop_latency = None
    if stop_after is not None:
        while job.active and job.progress.step < stop_after:
            time.sleep(0.05)
        asked_at_step, t_stop = job.progress.step, time.monotonic()
        manager.stop()
        while job.state == "training":
            time.sleep(0.01)
        stop_latency = {"asked_at_step": asked_at_step, "stopped_at_step": job.progress.step,
                        "seconds_to_leave_training": round(time.monotonic() - t_stop, 3)}
    job.join()
    wall = time.monotonic() - t0
    peak = {"peak_allocated_gb": gib(torch.cuda.max_memory_allocated()),
            "peak_reserved_gb": gib(torch.cuda.max_memory_reserved())}
    chat = chat_check(job, chat_prompt) if chat_prompt else None
    job.release()
    after = memory_now()
    live = live_cuda_tensors()
    train = job.metrics.rows("train")
    evals = job.metrics.rows("eval")
    half = train[len(train) // 2:] or train
    tps = [r["tokens_per_sec"] for r in half if r.get("tokens_per_sec")]
    return {"case": label, "state": job.state, "message": job.message, "steps": job.progress.step,
            "wall_s": round(wall, 1), "train_s": job.progress.elapsed_s,
            "tokens_per_sec": round(statistics.mean(tps), 0) if tps else None,
            "first_loss": train[0]["loss"] if train else None,
            "last_loss": train[-1]["loss"] if train else None,
            "last_eval_loss": evals[-1]["eval_loss"] if evals else None,
            "before": before, **peak, "after": after, "stop": stop_latency, "chat": chat, "live_cuda_tensors_after": live, "run_dir": str(job.run_dir),
            "info": job.info}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--out", default="gpu_results.json")
    ap.add_argument("--runs", default="/tmp/bench-runs")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("This benchmark needs an NVIDIA GPU.")
        return 2
    out_dir = Path(args.runs)
    results = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "python": platform.python_version(),
               "date": time.strftime("%Y-%m-%d"), "cases": []}
    import transformers, peft, bitsandbytes  # noqa: E401
    results.update(transformers=transformers.__version__, peft=peft.__version__, bitsandbytes=bitsandbytes.__version__)
    for i, (label, cfg) in enumerate(cases(args.steps)):
        r = run_case(label, cfg, out_dir / f"case{i + 1}", chat_prompt=PROMPT if i != 1 else None)
        results["cases"].append(r)
        print(json.dumps(r), flush=True)
    qlora = cases(args.steps)[0][1]
    stop_cfg = merge(qlora, {"training": {"max_steps": 1000}})
    r = run_case("QLoRA, Stop pressed at step 20 of 1000", stop_cfg, out_dir / "stop", stop_after=20)
    results["cases"].append(r)
    print(json.dumps(r), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2))

    print(f"\n{results['gpu']} · torch {results['torch']} · transformers {results['transformers']} · "
          f"peft {results['peft']} · bitsandbytes {results['bitsandbytes']} · {results['date']}\n")
    print("| case | state | steps | tokens/s (non-pad) | train s | peak alloc GB | peak reserved GB | "
          "GPU used before GB | GPU used after GB | loss first→last | eval loss |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results["cases"]:
        print(f"| {r['case']} | {r['state']} | {r['steps']} | {r['tokens_per_sec']} | {r['train_s']} | "
              f"{r['peak_allocated_gb']} | {r['peak_reserved_gb']} | {r['before']['device_used_gb']} | "
              f"{r['after']['device_used_gb']} | {fmt(r['first_loss'])}→{fmt(r['last_loss'])} | {r['last_eval_loss']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
