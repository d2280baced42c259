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

The same holds across processes (``studio/device.py``): while ``studio train`` trains in a terminal,
a Start in the app on the same workspace is refused with a message naming that run, and the other
way round.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterable

from .config import StudioConfig
from .device import DeviceLock, RunDeviceLock, describe_holder, device_word
from .errors import ConfigError, DeviceBusy, JobBusy
from .training.distributed import plan_for_start, with_strategy
from .training.job import ACTIVE_STATES, TrainingJob
from .runs import RunFolder, list_run_folders, slug
from .training.launcher import SubprocessJob
from .training.nodes import helper_folder, is_helper

__all__ = ["JobBusy", "DeviceBusy", "JobManager", "get_manager", "workspace_output_dir"]




def _score_after_training(job, log):
    """The held-out questions a finished run is asked before it lets the device go (data.score_prompts)."""
    from .evaluation import score_after_training
    return score_after_training(job, log)


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
              callbacks: Iterable = (), run_dir: str | Path | None = None, keep_model: bool = True,
              in_workspace: bool = False, resume_from: str | Path | None = None,
              init_adapter: str | Path | None = None, origin: dict | None = None) -> TrainingJob:
        """Validate ``cfg``, create the run folder and start the run: in a background thread (one GPU, the
        default: the trained model stays in memory for chat), or in a process tree of its own
        (``training.gpus`` > 1, or ``training.isolate``; see training/launcher.py), which loads
        everything itself: ``model``, ``tokenizer``, ``data`` and ``callbacks`` are then not used.

        Raises ``JobBusy`` when a run is active, in this process (two simultaneous calls start exactly
        one run) or in another one on the same workspace (the app and ``studio train``), and
        ``ConfigError`` for a setting that cannot work, before anything is loaded. The previous
        job's model is freed first, unless it is the ``model`` passed in. ``in_workspace`` (the app):
        ``training.output_dir`` is a name inside the runs folder, never a path. ``resume_from`` (a
        checkpoint of ``run_dir``, see training/resume.py), ``init_adapter`` and ``origin`` (extend, see
        training/extend.py) pass through to the job.
        """
        cfg.validate()
        if in_workspace:
            cfg = _with_output_dir(cfg, workspace_output_dir(cfg.training.output_dir))
        with self._lock:
            prev = self._job
            if prev is not None and prev.state in ACTIVE_STATES:
                p = prev.progress
                where = f" (step {p.step} of {p.total_steps})" if p.total_steps else ""
                raise JobBusy("A training run is already going{where}: {name}.", code="job.busy", where=where,
                              name=prev.run.name, step=p.step, total=p.total_steps)
            elsewhere = self.device_lock.other_process_holder()
            if elsewhere is not None:
                raise JobBusy("The {device} is in use by {holder}, started from another window or terminal on this "
                              "workspace.", code="job.other_process", device=device_word(),
                              holder=describe_holder(elsewhere))
            runner = plan_for_start(cfg)     # ConfigError first: e.g. 2 GPUs asked for, 1 found
            if runner.subprocess:
                if any(x is not None for x in (model, tokenizer, data)) or tuple(callbacks):
                    # A caller's error, not a user's: objects of this process cannot go to another one.
                    raise ValueError("A run in its own process (training.gpus > 1 or training.isolate) loads its "
                                     "model and data itself; model, tokenizer, data and callbacks cannot be passed.")
                cfg = with_strategy(cfg, runner)
            if prev is not None and prev.model is not None and prev.model is not model:
                prev.release()
            if run_dir is None and is_helper(cfg):
                # Another machine of a run of several: the main machine writes the run folder.
                run = RunFolder.create(cfg, helper_folder(cfg))
            elif run_dir is None:
                run = RunFolder.create(cfg, cfg.training.output_dir or None)
            else:
                run = RunFolder(run_dir)
            lock = RunDeviceLock(self.device_lock, run.name)
            if runner.subprocess:
                # Its own process tree (launcher.py); objects loaded here cannot go with it.
                job = SubprocessJob.for_run(cfg, run, runner, device_lock=lock, resume_from=resume_from,
                                            init_adapter=init_adapter, origin=origin)
            else:
                job = TrainingJob(cfg, run, model=model, tokenizer=tokenizer, data=data, callbacks=callbacks,
                                  keep_model=keep_model, device_lock=lock,
                                  resume_from=resume_from, init_adapter=init_adapter, origin=origin,
                                  after_training=_score_after_training)
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
        """Past and current runs, newest first, from their ``state.json`` (what a Runs table shows), each with
        ``run_dir`` and ``has_adapter`` added.

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
            state["has_adapter"] = folder.has_adapter()
            out.append(state)
        out.sort(key=lambda s: s.get("started") or "", reverse=True)
        return out


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


def workspace_output_dir(value: str) -> str:
    """The run folder for an output-folder setting given in the app: '' (a new dated folder) or a name,
    sanitised like a run name, inside the workspace's runs folder. A path is refused: through the app
    (and its API) runs live in the workspace, where the Runs tab lists them."""
    import os

    from . import paths
    name = (value or "").strip()
    if not name:
        return ""
    seps = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    if any(s in name for s in seps) or name.startswith("~") or name in (".", ".."):
        raise ConfigError("The output folder '{value}' (training.output_dir) is a path. In the studio app a run folder "
                          "is a name inside the studio's runs folder ({runs}), for example 'support-bot-v2'; leave it "
                          "empty for a new dated folder. (`studio train` accepts any folder.)", code="config.output_path",
                          value=value, runs=str(paths.runs_dir()))
    return str(paths.runs_dir() / slug(name))


def _with_output_dir(cfg: StudioConfig, output_dir: str) -> StudioConfig:
    import dataclasses
    return dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, output_dir=output_dir))


_manager: JobManager | None = None
_manager_lock = threading.Lock()


def get_manager() -> JobManager:
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = JobManager()
        return _manager
