"""Profile a few training steps of every process of a run, without changing the studio's code.

On the PYTHONPATH of a run (``benchmarks/multi_gpu.py --profile`` puts it there), this file is imported
by every Python process at start. When ``STUDIO_BENCH_PROFILE`` names a folder, the trainer's
``training_step`` is wrapped: micro-steps ``START`` to ``START + COUNT`` (``STUDIO_BENCH_PROFILE_STEPS``,
default ``6,3``) run under ``torch.profiler`` and each rank writes what took the host's and the GPU's
time to ``rank-R.txt`` there: the wall time of the profiled steps, the GPU's busy time, the FSDP units
of the model, the top operations by self CPU and by self CUDA time, and the Python stacks of the
operations that made the host wait for the GPU.
"""

import collections
import os

_DIR = os.environ.get("STUDIO_BENCH_PROFILE")


def _patch(trainer_module) -> None:
    import time

    start, count = (int(x) for x in os.environ.get("STUDIO_BENCH_PROFILE_STEPS", "6,3").split(","))
    original = trainer_module.Trainer.training_step
    state = {"calls": 0, "prof": None, "t0": 0.0}

    def training_step(self, model, *args, **kwargs):
        import torch
        state["calls"] += 1
        n = state["calls"]
        if n == start:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
                _watch_syncs(torch, True)
            state["prof"] = torch.profiler.profile(
                activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA])
            state["prof"].__enter__()
            state["t0"] = time.perf_counter()
        out = original(self, model, *args, **kwargs)
        if n == start + count - 1 and state["prof"] is not None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
                _watch_syncs(torch, False)
            wall = time.perf_counter() - state["t0"]
            prof, state["prof"] = state["prof"], None
            prof.__exit__(None, None, None)
            _write(prof, wall, count, model)
        return out

    trainer_module.Trainer.training_step = training_step


class _AfterTrainerImport:
    """Patches ``transformers.trainer`` once it is imported (importing it here, at start, would load
    transformers before the worker has set its environment)."""

    def find_spec(self, name, path=None, target=None):
        if name != "transformers.trainer":
            return None
        import importlib.util
        import sys
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            _patch(module)

        spec.loader.exec_module = exec_and_patch
        return spec


_SYNCS = collections.Counter()


def _watch_syncs(torch, on: bool) -> None:
    """Count the Python stacks of every operation that makes the host wait for the GPU (a copy to
    pageable memory, ``.item()``, a stream synchronisation), from PyTorch's sync warnings."""
    import traceback
    import warnings
    if not on:
        torch.cuda.set_sync_debug_mode(0)
        warnings.showwarning = _watch_syncs.previous
        return
    _watch_syncs.previous = warnings.showwarning

    def record(message, category, filename, lineno, file=None, line=None):
        if "synchroniz" not in str(message):
            return _watch_syncs.previous(message, category, filename, lineno, file, line)
        frames = traceback.extract_stack()[:-2]
        _SYNCS[tuple(f"{f.filename.split('site-packages/')[-1]}:{f.lineno} {f.name}" for f in frames[-14:])] += 1

    warnings.showwarning = record
    warnings.simplefilter("always")
    torch.cuda.set_sync_debug_mode(1)


def _write(prof, wall: float, count: int, model) -> None:
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    rank = int(os.environ.get("RANK", "0"))
    events = prof.key_averages()
    cuda_us = sum(getattr(e, "self_device_time_total", 0) or 0 for e in events)
    nccl = [e for e in events if "nccl" in e.key.lower()]
    units = sum(1 for m in model.modules() if isinstance(m, FSDP))
    lines = [f"rank {rank}: {count} micro-steps in {wall:.3f} s ({wall / count:.3f} s each); GPU busy "
             f"{cuda_us / 1e6:.3f} s ({100 * cuda_us / 1e6 / wall:.0f}%); FSDP units {units}; "
             f"NCCL kernels {sum(e.count for e in nccl)} taking {sum(e.self_device_time_total for e in nccl) / 1e6:.3f} s",
             "", events.table(sort_by="self_cpu_time_total", row_limit=35), "",
             events.table(sort_by="self_device_time_total", row_limit=25)]
    lines += ["", "Where the host waited for the GPU (torch.cuda sync debug mode): calls, then the Python stack"]
    for stack, n in _SYNCS.most_common(12):
        lines += ["", f"{n} x"] + [f"    {frame}" for frame in stack]
    os.makedirs(_DIR, exist_ok=True)
    with open(os.path.join(_DIR, f"rank-{rank}.txt"), "w") as f:
        f.write("\n".join(lines))


if _DIR:
    import sys as _sys
    _sys.meta_path.insert(0, _AfterTrainerImport())
