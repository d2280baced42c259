"""What every case of the speed benchmark shares: the spec, the rows, the step recorder, the result.

A case is one training run in its own process (``speed_case.py`` for plain and studio,
``speed_unsloth.py`` for Unsloth). The driver (``speed.py``) writes a spec JSON and the rows once,
starts each case with ``--spec SPEC --case NAME --out RESULT.json`` and reads the result back.

spec: {"shape", "mode" ("4bit" | "16bit"), "model_dir", "train_rows", "eval_rows" (JSONL files of
{"input_ids": [...], "labels": [...]}), "steps", "warmup_steps" (left out of the speed figures),
"batch_size", "grad_accum", "learning_rate", "scheduler", "warmup_ratio", "optimizer",
"max_grad_norm", "seed", "gradient_checkpointing", "lora": {"r", "alpha", "dropout", "target_modules"},
"memory_cap_gb" (0 = none), "max_length", "save_steps" (0: no checkpoint inside the timed steps; the studio
saves once, after the last step, as every run does)}

result: the spec's shape/mode, the case, per-step "step_s", "loss" and "tokens" (non-padding tokens
of the optimizer step), "save_s" (what each checkpoint save held the training loop, timed apart from the steps), "first_step_s" (from the start of the case's process to the end of its first optimizer step:
imports, loading, quantizing and the first step),
"load_s", "peak_allocated_gb", "peak_reserved_gb" (the whole process), "train_peak_allocated_gb" (from the first
step on: without the loading and the studio's 'auto' probes), "eval_loss", "notes", "versions", "error".
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch
from transformers import TrainerCallback

PROCESS_START = time.perf_counter()


def load_spec(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def load_rows(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def cap_memory(spec: dict) -> None:
    """A workstation card inside a big one: the allocator refuses past ``memory_cap_gb``."""
    cap = float(spec.get("memory_cap_gb") or 0)
    if cap > 0:
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, cap * 2**30 / total), 0)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class StepRecorder(TrainerCallback):
    """Wall time, loss and non-padding tokens of every optimizer step.

    The GPU is drained at the end of each step (``synchronize``) so a step's time is its own; the
    trainer drains it there anyway to log the loss. Tokens are the trainer's own count
    (``include_num_input_tokens_seen``: "non_padding" for padded batches, "all" for padding-free
    ones, which have no padding).

    A checkpoint save runs between one step's end and the next step's start; it is timed on its own
    (``save_s``, from the step's end to the save's end) and left out of the next step's time."""

    def __init__(self):
        self.step_s: list[float] = []
        self.save_s: list[float] = []
        self.loss: list[float] = []
        self.tokens: list[int] = []
        self.first_step_s: float | None = None
        self._t_step = 0.0
        self._tokens_seen = 0
        self.outside_allocator = 0
        self.setup_peak = 0

    def on_train_begin(self, args, state, control, **kw):
        _sync()
        if torch.cuda.is_available():
            # The peak before training (loading, and the studio's 'auto' probes, one of which may run out of
            # memory on purpose) is kept apart, so train_peak_allocated_gb is what the steps themselves need.
            self.setup_peak = torch.cuda.max_memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        self._t_step = time.perf_counter()
        self._tokens_seen = state.num_input_tokens_seen

    def on_step_end(self, args, state, control, **kw):
        _sync()
        now = time.perf_counter()
        self.step_s.append(now - self._t_step)
        if self.first_step_s is None:
            self.first_step_s = now - PROCESS_START
        self._t_step = now
        seen = int(state.num_input_tokens_seen)
        self.tokens.append(seen - self._tokens_seen)
        self._tokens_seen = seen
        if torch.cuda.is_available():
            # What the GPU holds beyond PyTorch's allocator: the CUDA context, cuBLAS workspaces and
            # paged optimizer states (bitsandbytes' unified memory). The card must hold it too.
            free, total = torch.cuda.mem_get_info()
            self.outside_allocator = max(self.outside_allocator, total - free - torch.cuda.memory_reserved())

    def on_save(self, args, state, control, **kw):
        _sync()
        now = time.perf_counter()
        self.save_s.append(now - self._t_step)
        self._t_step = now

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs and "eval_loss" not in logs:
            self.loss.append(float(logs["loss"]))


def peak_memory(setup_peak: int = 0) -> dict:
    """The process's peak (setup and training) and, when the recorder kept the setup's apart, the steps' own."""
    steps = torch.cuda.max_memory_allocated()
    out = {"peak_allocated_gb": round(max(steps, setup_peak) / 2**30, 3),
           "peak_reserved_gb": round(torch.cuda.max_memory_reserved() / 2**30, 3)}
    if setup_peak:
        out["train_peak_allocated_gb"] = round(steps / 2**30, 3)
    return out


def versions() -> dict:
    out = {"python": sys.version.split()[0], "torch": torch.__version__,
           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}
    for name in ("transformers", "peft", "trl", "bitsandbytes", "liger_kernel", "unsloth", "datasets"):
        try:
            mod = __import__(name)
            out[name] = getattr(mod, "__version__", "?")
        except Exception:
            pass
    return out


def write_result(out: str | Path, spec: dict, case: str, recorder: StepRecorder | None, **extra: Any) -> None:
    res = {"shape": spec["shape"], "mode": spec["mode"], "case": case, "versions": versions(),
           "wall_s": round(time.perf_counter() - PROCESS_START, 1)}
    if recorder is not None:
        res.update(step_s=recorder.step_s, loss=recorder.loss, tokens=recorder.tokens,
                   first_step_s=recorder.first_step_s, save_s=recorder.save_s)
    if torch.cuda.is_available():
        res.update(peak_memory(recorder.setup_peak if recorder is not None else 0))
        if recorder is not None and recorder.outside_allocator:
            outside = recorder.outside_allocator / 2**30
            res.update(outside_allocator_gb=round(outside, 3),
                       peak_device_gb=round(res["peak_reserved_gb"] + outside, 3))
    res.update(extra)
    Path(out).write_text(json.dumps(res))


def run_guarded(out: str | Path, spec: dict, case: str, body: Callable[[], None]) -> int:
    """Run a case; any failure (out of memory included) becomes a result with ``error``."""
    try:
        body()
        return 0
    except BaseException as exc:  # noqa: BLE001 - the driver must get a row whatever happened
        oom = isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()
        write_result(out, spec, case, None, error=("out of memory: " if oom else "") + f"{type(exc).__name__}: {exc}"[:400],
                     traceback=traceback.format_exc()[-3000:])
        return 1


class Profiler(TrainerCallback):
    """With SPEED_PROFILE=FILE: a torch profile of optimizer steps 5-6, its top kernels and the
    host-device synchronisations per step, written to FILE."""

    def __init__(self, path: str, first: int = 5, last: int = 6):
        self.path, self.first, self.last, self.prof = path, first, last, None

    def on_step_begin(self, args, state, control, **kw):
        if state.global_step + 1 == self.first:
            self.prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                                           torch.profiler.ProfilerActivity.CUDA])
            self.prof.__enter__()

    def on_step_end(self, args, state, control, **kw):
        if self.prof is not None and state.global_step == self.last:
            torch.cuda.synchronize()
            self.prof.__exit__(None, None, None)
            ka = self.prof.key_averages()
            steps = self.last - self.first + 1
            syncs = {e.key: e.count // steps for e in ka
                     if any(s in e.key for s in ("Synchronize", "cudaMemcpy", "aten::item", "aten::nonzero"))}
            gpu_total = sum(e.self_device_time_total for e in ka) / steps / 1e3
            with open(self.path, "w") as f:
                f.write(f"per optimizer step: syncs/copies {syncs}; GPU kernel time {gpu_total:.1f} ms; "
                        f"kernel launches {sum(e.count for e in ka if e.device_type.name == 'CUDA') // steps}\n")
                f.write(ka.table(sort_by="self_device_time_total", row_limit=30, max_name_column_width=70))
                f.write("\n" + ka.table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=70))
            self.prof = None
