"""Checkpoint saves that do not stall training: copied at the step boundary, written from a thread.

The Trainer's own ``_save_checkpoint`` writes the adapter, the optimizer state, the schedule, the random
states and its own state into ``checkpoint-N`` on the training thread: at 8B the next step waited
0.5-0.9 s for it (issue 22). ``BackgroundSaver`` replaces it on one trainer:

1. at the step boundary (the training thread): wait for the save before it, if one is still being written
   (at most one in flight), then copy what a resume needs to the CPU — the adapters' weights (pinned
   buffers, reused, on a GPU), the optimizer's state, the schedule, the scaler, the random states, the
   trainer's state — the small ones written there and then, into a temporary folder ``.tmp-checkpoint-N``;
2. a thread writes the large files (adapter weights and config, ``optimizer.pt``, the tokenizer, the
   arguments), syncs them, writes the complete mark (``resume.COMPLETE_MARK``) and renames the folder to
   ``checkpoint-N``: a checkpoint folder is complete the moment it exists, and a save cut off leaves the
   previous one untouched (its temporary folder is skipped by every reader and removed by the next save);
3. the end of training (and Stop, which ends it) waits for the last write; a write that failed is raised
   there, or at the next save, on the training thread, as a failed synchronous save would have been.

The files are the Trainer's own names and formats, so ``trainer.train(resume_from_checkpoint=...)`` reads them
unchanged. Runs of several processes (DDP / FSDP gather their state collectively), DeepSpeed, best-model
tracking and Hub pushes keep the Trainer's own save (``supported``).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from transformers import TrainerCallback

from .resume import COMPLETE_MARK

TMP_PREFIX = ".tmp-checkpoint-"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
OPTIMIZER, SCHEDULER, SCALER, TRAINER_STATE, ARGS = ("optimizer.pt", "scheduler.pt", "scaler.pt",
                                                      "trainer_state.json", "training_args.bin")


@dataclass
class Snapshot:
    """What one checkpoint holds, already on the CPU: safe to write while training goes on."""
    step: int
    tmp: Path                       # the temporary folder (the small files are in it already)
    final: Path                     # checkpoint-N
    adapters: dict = field(default_factory=dict)     # adapter name -> (state dict on the CPU, its peft config)
    torch_files: dict = field(default_factory=dict)  # file name -> object for torch.save
    tokenizer: Any = None
    keep: int | None = None         # save_total_limit: the newest this many checkpoints stay


def supported(trainer: Any) -> bool:
    """Whether this trainer's saves can go to the background (one process, a peft model, no best-model
    tracking or Hub push); otherwise its own ``_save_checkpoint`` stays."""
    from peft import PeftModel
    args = trainer.args
    if args.world_size > 1 or getattr(trainer, "is_deepspeed_enabled", False) or getattr(trainer, "is_fsdp_enabled", False):
        return False
    if args.push_to_hub or args.load_best_model_at_end or args.metric_for_best_model is not None:
        return False
    return isinstance(trainer.model, PeftModel)


class _PinnedPool:
    """CPU copies of GPU tensors into pinned buffers kept from one save to the next (one save is in flight at a
    time, and the next copy waits for it), so a save allocates no page-locked memory after the first."""

    def __init__(self):
        self.buffers: dict = {}

    def copy(self, obj: Any, key: tuple = ()) -> Any:
        if isinstance(obj, torch.Tensor):
            t = obj.detach()
            if not t.is_cuda:
                return t.clone()              # the optimizer changes its CPU tensors in place too
            buf = self.buffers.get(key)
            if buf is None or buf.shape != t.shape or buf.dtype != t.dtype:
                buf = self.buffers[key] = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
            buf.copy_(t, non_blocking=True)
            return buf
        if isinstance(obj, dict):
            return {k: self.copy(v, (*key, k)) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(self.copy(v, (*key, i)) for i, v in enumerate(obj))
        return copy.deepcopy(obj)


def write_files(snap: Snapshot) -> None:
    """Write the large files of ``snap`` into its temporary folder (the thread's work; tests replace it)."""
    from safetensors.torch import save_file
    for name, (state, config) in snap.adapters.items():
        folder = snap.tmp if name == "default" else snap.tmp / name
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "adapter_model.safetensors"),
                  metadata={"format": "pt"})
        config.save_pretrained(str(folder))
    for file, obj in snap.torch_files.items():
        torch.save(obj, snap.tmp / file)
    if snap.tokenizer is not None:
        snap.tokenizer.save_pretrained(str(snap.tmp))


def _sync_folder(folder: Path) -> None:
    """fsync every file and folder under ``folder``, so the rename publishes data that is on the disk."""
    for path in [*sorted(p for p in folder.rglob("*") if p.is_file()), *sorted(p for p in folder.rglob("*") if p.is_dir()),
                 folder]:
        flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if path.is_dir() else 0)
        try:
            fd = os.open(path, flags)
        except OSError:
            continue
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)


def publish(snap: Snapshot) -> None:
    """Mark the temporary folder complete and rename it into place (a same-step folder a resume went back past
    is replaced, as the Trainer would overwrite it), then drop checkpoints beyond ``keep``."""
    (snap.tmp / COMPLETE_MARK).write_text(json.dumps({"step": snap.step}), encoding="utf-8")
    _sync_folder(snap.tmp)
    old = None
    if snap.final.exists():
        old = snap.final.with_name(f".old-{snap.final.name}-{time.time_ns()}")
        snap.final.rename(old)
    snap.tmp.rename(snap.final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    if snap.keep:
        found = sorted((int(m.group(1)), p) for p in snap.final.parent.iterdir()
                       if p.is_dir() and (m := _CHECKPOINT.match(p.name)))
        for _, folder in found[:-snap.keep]:
            shutil.rmtree(folder, ignore_errors=True)


class BackgroundSaver(TrainerCallback):
    """Replaces ``trainer._save_checkpoint``; a callback too, so the end of training waits for the last write.
    ``write`` writes a snapshot's large files (``write_files``; tests pass a slow or failing one)."""

    def __init__(self, trainer: Any, write: Callable[[Snapshot], None] | None = None):
        self.trainer = trainer
        self.write = write
        self.pool = _PinnedPool()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.snapshot_s: list[float] = []        # time each save held the training thread (the copies)
        self.write_s: list[float] = []           # time each write took in the background

    def install(self) -> "BackgroundSaver":
        from .resume import CompleteCheckpointMark
        self.trainer._save_checkpoint = self.save            # this trainer only
        self.trainer.remove_callback(CompleteCheckpointMark)  # the saver marks a checkpoint before it appears
        self.trainer.add_callback(self)
        return self

    # ---- the training thread --------------------------------------------------------------------------
    def save(self, model: Any = None, trial: Any = None) -> None:
        """The Trainer's ``_save_checkpoint``: wait for the previous write, copy, hand the files to a thread."""
        self.wait()
        t0 = time.perf_counter()
        snap = self._snapshot()
        self.snapshot_s.append(time.perf_counter() - t0)
        self._thread = threading.Thread(target=self._write, args=(snap,), name=f"checkpoint-{snap.step}", daemon=True)
        self._thread.start()

    def wait(self, raise_failure: bool = True) -> None:
        """Until the save in flight is written; its failure raised here (once) unless ``raise_failure`` is off."""
        thread = self._thread
        if thread is not None:
            thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None and raise_failure:
            raise error

    def on_train_end(self, args, state, control, **kwargs):
        self.wait()

    def _snapshot(self) -> Snapshot:
        from peft.utils import get_peft_model_state_dict
        from transformers.trainer_callback import ExportableState

        tr = self.trainer
        tr.store_flos()
        root = Path(tr._get_output_dir(trial=None))
        step = tr.state.global_step
        tmp = root / f"{TMP_PREFIX}{step}"
        for stale in root.glob(f"{TMP_PREFIX}*"):      # a save cut off earlier (a crash) left it
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir(parents=True)
        snap = Snapshot(step, tmp, root / f"checkpoint-{step}", keep=tr.args.save_total_limit)
        model = tr.accelerator.unwrap_model(tr.model, keep_torch_compile=False)
        for name, config in model.peft_config.items():
            state = get_peft_model_state_dict(model, adapter_name=name)
            config = copy.deepcopy(config)
            config.inference_mode = True
            if config.base_model_name_or_path is None:
                base = model.base_model if config.is_prompt_learning else model.base_model.model
                config.base_model_name_or_path = base.__dict__.get("name_or_path", None) or None
            snap.adapters[name] = (self.pool.copy(state, ("adapter", name)), config)
        if not tr.args.save_only_model:
            snap.torch_files[OPTIMIZER] = self.pool.copy(tr.optimizer.state_dict(), ("optimizer",))
            torch.save(tr.lr_scheduler.state_dict(), tmp / SCHEDULER)
            tr._save_scaler(str(tmp))
            tr._save_rng_state(str(tmp))
        if torch.cuda.is_available():
            torch.cuda.current_stream().synchronize()     # the pinned copies are complete before training goes on
        snap.torch_files[ARGS] = tr.args
        snap.tokenizer = tr.processing_class
        for cb in [c for c in tr.callback_handler.callbacks + [tr.control] if isinstance(c, ExportableState)]:
            name = cb.__class__.__name__         # as the Trainer records its callbacks' state
            if isinstance(tr.state.stateful_callbacks.get(name), list):
                tr.state.stateful_callbacks[name].append(cb.state())
            else:
                tr.state.stateful_callbacks[name] = cb.state()
        tr.state.save_to_json(str(tmp / TRAINER_STATE))
        return snap

    # ---- the writer thread ----------------------------------------------------------------------------
    def _write(self, snap: Snapshot) -> None:
        t0 = time.perf_counter()
        try:
            (self.write or write_files)(snap)
            publish(snap)
        except BaseException as exc:          # raised on the training thread at the next wait
            self._error = exc
            shutil.rmtree(snap.tmp, ignore_errors=True)
        finally:
            self.write_s.append(time.perf_counter() - t0)


def install(trainer: Any, write: Callable[[Snapshot], None] | None = None) -> BackgroundSaver | None:
    """Background saves on ``trainer`` where they are ``supported``; None where its own saves stay."""
    return BackgroundSaver(trainer, write).install() if supported(trainer) else None
