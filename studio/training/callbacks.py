"""Trainer callbacks: the metrics rows of a run and the stop button.

``MetricsCallback`` turns the trainer's log events into rows of a ``MetricsLog`` (step, epoch, loss,
learning rate, grad norm, NON-padding tokens per second, elapsed and remaining time, GPU memory, and
what the training method logs besides: its ``METRICS``) and keeps the job's progress current.
``StopCallback`` ends training at the next optimizer step, or at the next micro-batch while gradients
are being accumulated, without writing a checkpoint.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from transformers import TrainerCallback

from .gpu_memory import gpu_memory_gb
from ..runs import MetricsLog


@dataclass
class Progress:
    """Where a run is: plain numbers the UI and the CLI can show."""
    step: int = 0
    total_steps: int = 0
    epoch: float = 0.0
    elapsed_s: float = 0.0
    eta_s: float | None = None
    tokens_seen: int = 0
    last_loss: float | None = None
    last_eval_loss: float | None = None

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0

    def to_dict(self) -> dict:
        return {"step": self.step, "total_steps": self.total_steps, "fraction": round(self.fraction, 4),
                "epoch": self.epoch, "elapsed_s": self.elapsed_s, "eta_s": self.eta_s,
                "tokens_seen": self.tokens_seen, "last_loss": self.last_loss,
                "last_eval_loss": self.last_eval_loss}


class MetricsCallback(TrainerCallback):
    """Writes one row per log step and per evaluation; updates ``progress`` on every step."""

    def __init__(self, log: MetricsLog, progress: Progress, on_row: Callable[[dict], None] | None = None,
                 extra_metrics: tuple[str, ...] = ()):
        self.log = log
        self.extra_metrics = extra_metrics    # what the training method logs beyond these (its METRICS), kept too
        self.progress = progress
        self.on_row = on_row
        self.summary: dict = {}          # the trainer's closing numbers (train_runtime, mean train_loss…)
        self._t0 = time.monotonic()
        self._first_step = 0
        self._last_time = self._t0
        self._last_tokens = 0
        self.start_tokens = 0            # tokens seen before this session (a resumed run's earlier steps)

    def _eta(self, step: int, total: int) -> float | None:
        done = step - self._first_step
        if done <= 0 or total <= 0:
            return None
        return round((time.monotonic() - self._t0) / done * max(0, total - step), 1)

    def on_train_begin(self, args, state, control, **kwargs):
        self._t0 = self._last_time = time.monotonic()
        self._first_step = state.global_step
        self._last_tokens = self.start_tokens = int(state.num_input_tokens_seen)
        self.progress.total_steps = state.max_steps
        self.progress.step = state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        p = self.progress
        p.step, p.total_steps, p.epoch = state.global_step, state.max_steps, float(state.epoch or 0)
        p.elapsed_s = round(time.monotonic() - self._t0, 1)
        p.eta_s = self._eta(state.global_step, state.max_steps)
        p.tokens_seen = int(state.num_input_tokens_seen)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        now = time.monotonic()
        common = {"step": state.global_step, "epoch": round(float(state.epoch or 0), 4),
                  "elapsed_s": round(now - self._t0, 2), "time": time.time()}
        if "loss" in logs:
            tokens = int(state.num_input_tokens_seen)
            dt = now - self._last_time
            mem, peak = gpu_memory_gb()
            row = {"type": "train", **common,
                   "loss": float(logs["loss"]),
                   "learning_rate": float(logs.get("learning_rate", 0.0)),
                   "grad_norm": float(logs["grad_norm"]) if logs.get("grad_norm") is not None else None,
                   "tokens_per_sec": round((tokens - self._last_tokens) / dt, 1) if dt > 0 else None,
                   "tokens_seen": tokens,
                   "eta_s": self._eta(state.global_step, state.max_steps),
                   "gpu_mem_gb": mem, "gpu_mem_peak_gb": peak,
                   **{k: float(logs[k]) for k in self.extra_metrics if logs.get(k) is not None}}
            self._last_time, self._last_tokens = now, tokens
            self.progress.last_loss = row["loss"]
            self._emit(row)
        elif "eval_loss" in logs:
            row = {"type": "eval", **common, "eval_loss": float(logs["eval_loss"]),
                   "eval_runtime_s": logs.get("eval_runtime"),
                   # the method's metrics on the validation rows too (DPO's margins there, GRPO's reward): a name
                   # of METRICS with or without its eval_ prefix
                   **{e: float(logs[e]) for e in {k if k.startswith("eval_") else f"eval_{k}" for k in self.extra_metrics}
                      if logs.get(e) is not None}}
            self.progress.last_eval_loss = row["eval_loss"]
            self._emit(row)
        elif "train_runtime" in logs:
            self.summary = dict(logs)

    @staticmethod
    def describe(row: dict, total_steps: int = 0) -> str:
        """A metrics row as train.log shows it: 'step 3/30: loss 2.3104, learning rate 1e-02, 120 tokens/s'."""
        step = f"step {row.get('step')}" + (f"/{total_steps}" if total_steps else "")
        if row.get("type") == "eval":
            return f"{step}: validation loss {row['eval_loss']:.4f}"
        parts = [f"loss {row['loss']:.4f}", f"learning rate {row.get('learning_rate', 0):.2e}"]
        if row.get("grad_norm") is not None:
            parts.append(f"gradient norm {row['grad_norm']:.3f}")
        if row.get("tokens_per_sec"):
            parts.append(f"{row['tokens_per_sec']:.0f} tokens/s")
        if row.get("gpu_mem_peak_gb"):
            parts.append(f"GPU memory peak {row['gpu_mem_peak_gb']:.1f} GB")
        return f"{step} (epoch {row.get('epoch', 0):.2f}): " + ", ".join(parts)

    def _emit(self, row: dict) -> None:
        self.log.append(row)
        if self.on_row is not None:
            self.on_row(row)


class StopCallback(TrainerCallback):
    """Ends training once ``event`` is set: checked at every optimizer step and every accumulated micro-batch.

    It asks the trainer for a checkpoint of the last finished step (LoRA weights and optimizer state, small
    next to the base), so a stopped run can be resumed without losing a step. Stopped inside gradient
    accumulation, that checkpoint is the last finished step's; the half-accumulated step is redone.
    """

    def __init__(self, event: threading.Event):
        self.event = event
        self.stopped_at: int | None = None

    def _check(self, state, control):
        if self.event.is_set():
            control.should_training_stop = True
            control.should_save = state.global_step > 0
            if self.stopped_at is None:
                self.stopped_at = state.global_step
        return control

    def on_step_begin(self, args, state, control, **kwargs):
        return self._check(state, control)

    def on_substep_end(self, args, state, control, **kwargs):
        return self._check(state, control)

    def on_step_end(self, args, state, control, **kwargs):
        return self._check(state, control)
