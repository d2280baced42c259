"""The process-wide job manager: at most one training run at a time, the device lock, run history.

    from studio.jobs import get_manager
    job = get_manager().start(cfg)          # raises JobBusy while another run is active
    get_manager().current().status()        # what the UI polls
    get_manager().stop()

Chat during training: the device (GPU, or the CPU's cores) belongs to the training run from the
moment it starts loading until its adapter is saved. A chat request in that time is refused at once
with ``DeviceBusy`` ("Training is using the GPU; chat will be available when it finishes or is
stopped") instead of waiting or competing: on a GPU a second model could push training out of
memory, and on a CPU both would crawl. This holds on CPU too, for one rule everywhere. The other
way round, a run started while a chat answer is being generated waits for that answer (seconds)
and then starts.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterable

from .config import StudioConfig
from .training.job import ACTIVE_STATES, TrainingJob
from .training.run_folder import RunFolder, list_run_folders


class JobBusy(RuntimeError):
    """A run is already active; the message says which and what to do."""


class DeviceBusy(RuntimeError):
    """The device is in use by training (or another answer); the message is for people."""


class DeviceLock:
    """A lock on the compute device with a name for its holder.

    Unlike ``threading.RLock`` it may be released by a thread other than the one that took it: a
    streamed chat answer is generated in one thread and consumed (and abandoned) in others.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self.holder: str | None = None

    def acquire(self, who: str, timeout: float | None = None) -> bool:
        ok = self._lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout))
        if ok:
            self.holder = who
        return ok

    def release(self) -> None:
        self.holder = None
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def busy_message(self) -> str:
        device = _device_word()
        if self.holder == "training":
            return f"Training is using the {device}; chat will be available when it finishes or is stopped."
        return f"The {device} is busy with another answer; try again in a moment."

    def hold(self, who: str, timeout: float = 0.0) -> "_Held":
        """``with lock.hold("chat"):`` — raises DeviceBusy at once when someone else holds it."""
        if not self.acquire(who, timeout):
            raise DeviceBusy(self.busy_message())
        return _Held(self)


class _Held:
    def __init__(self, lock: DeviceLock):
        self.lock = lock

    def __enter__(self):
        return self.lock

    def __exit__(self, *exc):
        self.lock.release()


def _device_word() -> str:
    try:
        import torch
        return "GPU" if torch.cuda.is_available() else "processor"
    except ImportError:
        return "processor"


class JobManager:
    """Owns the one training job of this process (and its thread)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._job: TrainingJob | None = None
        self.device_lock = DeviceLock()

    def current(self) -> TrainingJob | None:
        """The running job, or the last one (finished) so a reloaded page finds it."""
        return self._job

    def start(self, cfg: StudioConfig, model: Any = None, tokenizer: Any = None, data: Any = None,
              callbacks: Iterable = (), run_dir: str | Path | None = None, keep_model: bool = True) -> TrainingJob:
        """Validate ``cfg``, create the run folder and start the run in a background thread.

        Raises ``JobBusy`` when a run is active (two simultaneous calls start exactly one run) and
        ``ConfigError`` for a setting that cannot work, before anything is loaded. The previous
        job's model is freed first, unless it is the ``model`` passed in.
        """
        cfg.validate()
        with self._lock:
            prev = self._job
            if prev is not None and prev.state in ACTIVE_STATES:
                p = prev.progress
                where = f" (step {p.step} of {p.total_steps})" if p.total_steps else ""
                raise JobBusy(f"A training run is already going{where}: {prev.run.name}. "
                              "Stop it or wait for it to finish before starting another.")
            if prev is not None and prev.model is not None and prev.model is not model:
                prev.release()
            if run_dir is None:
                run = RunFolder.create(cfg, cfg.training.output_dir or None)
            else:
                run = RunFolder(run_dir)
            job = TrainingJob(cfg, run, model=model, tokenizer=tokenizer, data=data, callbacks=callbacks,
                              keep_model=keep_model, device_lock=self.device_lock)
            self._job = job
            job.start()
            return job

    def stop(self) -> bool:
        """Ask the active run to stop (it saves its adapter). False when nothing is running."""
        job = self._job
        if job is None or not job.active:
            return False
        job.stop()
        return True

    def release(self) -> None:
        """Free the memory the last finished job still holds."""
        job = self._job
        if job is not None and not job.active:
            job.release()

    def runs(self, root: Path | None = None) -> list[dict]:
        """Past and current runs, newest first, from their ``state.json`` (what a Runs table shows).

        A run whose state says it is still going but that no live job of this process owns was cut
        off (the app was closed or crashed); it is listed as ``interrupted``.
        """
        out = []
        current = self._job
        folders = {f.path.resolve(): f for f in list_run_folders(root)}
        if current is not None:
            folders.setdefault(current.run.path.resolve(), current.run)
        for path, folder in folders.items():
            state = folder.read_state()
            if state is None:
                continue
            live = current is not None and current.run.path.resolve() == path and current.active
            if state.get("state") in ACTIVE_STATES and not live and not _pid_alive(state.get("pid"), own=False):
                state = {**state, "state": "interrupted",
                         "message": "The run was cut off (the studio was closed or crashed) before it finished."}
            state["run_dir"] = str(folder.path)
            out.append(state)
        out.sort(key=lambda s: s.get("started") or "", reverse=True)
        return out

    list_runs = runs


def _pid_alive(pid: Any, own: bool) -> bool:
    """Whether another process (a subprocess runner) that wrote the state is still alive."""
    import os
    if not isinstance(pid, int) or (pid == os.getpid() and not own):
        return False
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


_manager: JobManager | None = None
_manager_lock = threading.Lock()


def get_manager() -> JobManager:
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = JobManager()
        return _manager
