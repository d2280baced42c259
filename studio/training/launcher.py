"""The subprocess runner: a run in its own process tree, behind the same interface as ``TrainingJob``.

    job = SubprocessJob(cfg, run, processes=2, strategy="ddp", device_lock=lock)
    job.start(); job.status(); job.metrics.since(cursor); job.stop(); job.join()

One process runs ``python -m studio.training.worker --run-dir RUN`` directly (an isolated one-GPU
run); N processes run it under ``torch.distributed.run`` (one rank per GPU; gloo on a CPU). The tree
starts in its own session, with stdout and stderr appended to the run's ``train.log`` (never a pipe
nobody reads: a full pipe stalls the child). Rank 0 writes ``state.json`` and ``metrics.jsonl``; this
side only reads them (``MetricsFollower``) until the tree has ended, then writes the final state.

- Device lock: held here, by the monitor thread, from before the start until every process of the
  tree has gone; the workers take none (a second acquire from the same workspace would wait forever).
- Stop: SIGTERM to the worker processes (not to torch's launcher, which would kill them after 30 s);
  they agree on a step, save and exit. Whatever is still alive ``stop_grace_s`` later is killed.
- Crash: a rank that fails or is killed ends the run as failed; the message names the rank and its
  error, from torch's "Root Cause" summary and the worker's ``STUDIO-RANK-ERROR`` line in train.log,
  or rank 0's own explained failure (``failure``, in any language: process_failures.py).
- The app closing: the tree gets SIGTERM (the kernel's parent-death signal) and stops as above.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..config import StudioConfig
from ..runs import MetricsFollower, RunFolder
from . import nodes
from .callbacks import Progress
from .background import BackgroundRun
from .states import DONE, FAILED, FINAL_STATES, LOADING, PENDING, SAVING, STATE_KEYS, STOPPED, TRAINING

STOP_GRACE_S = 120.0      # after a stop: time to finish the step and save before everything is killed
LEFTOVER_GRACE_S = 5.0    # after the launcher has exited: time its children get to follow it
POLL_S = 0.25
_REPO_ROOT = Path(__file__).resolve().parents[2]


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


class FollowedMetrics:
    """``MetricsLog``'s reading API (since, rows, last) over the metrics.jsonl another process writes."""

    def __init__(self, path: Path):
        self._follower = MetricsFollower(path)

    def since(self, cursor: int = 0) -> tuple[list[dict], int]:
        return self._follower.since(cursor)

    def rows(self, kind: str | None = None) -> list[dict]:
        return [r for r in self._follower.since(0)[0] if kind is None or r.get("type") == kind]

    def last(self, kind: str | None = None) -> dict | None:
        rows = self.rows(kind)
        return rows[-1] if rows else None

    def __len__(self) -> int:
        return len(self.rows())


def worker_command(run_dir: Path, processes: int, resume_from: Path | None = None,
                   init_adapter: Path | None = None, origin: dict | None = None,
                   cfg: StudioConfig | None = None) -> list[str]:
    worker = ["-m", "studio.training.worker", "--run-dir", str(run_dir)]
    if resume_from is not None:
        worker += ["--resume-from", str(resume_from)]
    if init_adapter is not None:
        worker += ["--init-adapter", str(init_adapter)]
    if origin:
        worker += ["--origin", json.dumps(origin, default=str)]
    if cfg is not None and nodes.several(cfg):
        # One machine of several: the main machine's store is the rendezvous (nodes.py).
        return [sys.executable, "-m", "torch.distributed.run", *nodes.launch_args(cfg),
                f"--nproc-per-node={processes}", *worker]
    if processes <= 1:
        return [sys.executable, *worker]
    # --standalone: a private rendezvous on a free local port, so two runs never collide.
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
            f"--nproc-per-node={processes}", *worker]


def _child_setup() -> None:
    """In the child before exec. The stop signals unblocked: a signal mask survives exec, and
    ``studio train`` starts its job with them blocked (commands/train.py), which would make the
    workers deaf to a stop. And SIGTERM when the studio that started it dies (Linux), so a closed app
    stops its run (which saves) instead of leaving it training unseen with the device lock gone."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGINT, signal.SIGTERM))
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except Exception:
        pass


class SubprocessJob(BackgroundRun):
    """A run in its own process tree; the attributes and methods of ``TrainingJob`` that the job
    manager, the UI and the CLI use."""

    def __init__(self, cfg: StudioConfig, run: RunFolder, processes: int = 1, strategy: str = "single",
                 device_lock: Any = None, resume_from: str | Path | None = None,
                 init_adapter: str | Path | None = None, origin: dict | None = None,
                 stop_grace_s: float = STOP_GRACE_S, env: dict | None = None):
        super().__init__(cfg, run, device_lock, resume_from, init_adapter, origin)
        self.processes, self.strategy = max(1, processes), strategy
        self.stop_grace_s = stop_grace_s
        self.extra_env = dict(env or {})
        self.metrics = FollowedMetrics(run.metrics_path)
        self.progress = Progress()
        self.several, self.helper = nodes.several(cfg), nodes.is_helper(cfg)
        self.info.update(processes=self.processes, strategy=strategy)
        if self.several:
            self.info.update(nnodes=cfg.training.nnodes, node_rank=cfg.training.node_rank, master=cfg.training.master)
        self.pid: int | None = None              # the launcher's (or the only worker's) pid
        self.returncode: int | None = None
        self._proc: subprocess.Popen | None = None
        self._tree: dict[int, float] = {}        # pid -> create time of every process of the tree seen
        self._signalled_at: float | None = None
        self._log_offset = 0
        self._write_state()

    @classmethod
    def for_run(cls, cfg: StudioConfig, run: RunFolder, plan: Any, **kwargs: Any) -> "SubprocessJob":
        """A job for ``plan`` (distributed.Plan); the run's config.yaml becomes ``cfg``, which the workers read."""
        cfg.save(run.config_path)
        job = cls(cfg, run, plan.processes, plan.strategy, **kwargs)
        job.info["notes"] = list(plan.notes)
        return job

    # ---- the TrainingJob interface (the rest is BackgroundRun's) ---------------------------
    thread_name = "runner"

    def stop(self) -> None:
        """Ask every process to stop after the current step and save; killed after ``stop_grace_s``."""
        self._stop.set()
        if self.active:
            # Not written: once started, the workers write state.json (see _write_state).
            self._set(message="Stopping: finishing the current step, then saving the adapter.", key="stopping",
                      write=False)
        self._signal_workers()

    def release(self) -> None:
        """Nothing to free here: the model lived (and died) in the child processes."""

    def alive_pids(self) -> list[int]:
        """The processes of this run's tree that are still running (zombies count as gone)."""
        self._record_tree()
        return [pid for pid, created in list(self._tree.items()) if _alive(pid, created)]

    # ---- the run -------------------------------------------------------------------------
    def run_sync(self) -> "SubprocessJob":
        self.started = _now()
        t0 = time.monotonic()
        holding = False
        try:
            holding = self._acquire_device()
            if holding or self.device_lock is None:
                if not self._stop.is_set():
                    self._launch()
                    self._watch()
                    self._finish()
                else:
                    self._set(STOPPED, "Stopped before training began; nothing was trained.")
        except Exception as exc:      # the launch itself failed (no python, disk full...), or a bug here
            self._kill_tree()
            self.error = f"{type(exc).__name__}: {exc}"
            self._set(FAILED, f"The training processes could not be run: {exc}",
                      f"The log is in {self.run.log_path}.")
        finally:
            if holding:
                self.device_lock.release()
            self.progress.elapsed_s = round(time.monotonic() - t0, 1)
            self.finished = _now()
            self._write_state()
        return self

    def _launch(self) -> None:
        from .distributed import STRATEGY_ENV
        cmd = worker_command(self.run.path, self.processes, self.resume_from, self.init_adapter, self.origin, self.cfg)
        env = dict(os.environ, PYTHONUNBUFFERED="1", **{STRATEGY_ENV: self.strategy}, **nodes.worker_env(self.cfg),
                   **self.extra_env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        # Memory freed between steps of different lengths can be reused for larger blocks: without it a
        # capped FSDP run failed with 1.7 GiB reserved but free (docs/BENCHMARKS.md). The user's wins.
        env.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
        word = "process" if self.processes == 1 else f"{self.processes} processes ({self.strategy.upper()})"
        if self.helper:
            self._set(LOADING, f"Starting the training {word} of this machine; the main machine at "
                               f"{self.cfg.training.master} writes the run folder.")
        elif self.several:
            self._set(LOADING, f"Starting the training {word}; waiting for the other "
                               f"{self.cfg.training.nnodes - 1} machine(s) to join at {self.cfg.training.master}.")
        else:
            self._set(LOADING, f"Starting the training {word}.")
        with open(self.run.log_path, "ab") as log:
            self._log_offset = log.tell()
            if self.several:
                log.write(f"{_now()} {nodes.launch_note(self.cfg, self.run.path)}\n".encode())
            log.write(f"{_now()} studio: starting {' '.join(cmd)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          env=env, start_new_session=True,   # cwd kept: relative data paths
                                          preexec_fn=_child_setup)
        self.pid = self._proc.pid
        self._tree[self.pid] = _create_time(self.pid)
        if self._stop.is_set():       # stop() came while starting, before there was anything to signal
            self._signal_workers()

    def _watch(self) -> None:
        proc = self._proc
        while proc.poll() is None:
            self._record_tree()
            self._refresh()
            if self._stop.is_set() and self._signalled_at is None:
                self._signal_workers()
            if self._signalled_at is not None and time.monotonic() - self._signalled_at > self.stop_grace_s:
                self._kill_tree()
            time.sleep(POLL_S)
        self.returncode = proc.returncode
        # Children still alive after the launcher ended (it was killed, or it left them): a short
        # grace, then killed. The run is over only when no process of it is left holding a GPU.
        deadline = time.monotonic() + LEFTOVER_GRACE_S
        while self.alive_pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.alive_pids():
            self._kill_tree()
        deadline = time.monotonic() + 10
        while self.alive_pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        self._refresh()

    def _finish(self) -> None:
        """The final state, once every process has gone: rank 0's own when it finished cleanly, else
        a stop or a failure worded here."""
        if self.helper:
            return self._finish_helper()
        written = self.run.read_state() or {}
        final = written.get("state") in FINAL_STATES
        if self._stop.is_set() and final and written["state"] in (STOPPED, DONE):
            self._take(written)
        elif self._stop.is_set():
            saved = " The adapter saved before is in the run folder." if self.run.has_adapter() else \
                " Nothing was saved."
            self._set(STOPPED, "Stopped before the run could save." + saved if self.progress.step else
                      "Stopped before training began; nothing was trained.")
        elif self.returncode == 0 and final:
            self._take(written)
        else:
            message, hint = self._failure(written)
            self._set(FAILED, message, hint)

    def _finish_helper(self) -> None:
        """Another machine of a run of several: its workers write no state here; the log says how it ended."""
        from .node_link import MAIN_LOST_MARK, STOPPED_MARK
        log = _read_from(self.run.log_path, self._log_offset)
        main = self.cfg.training.master
        if STOPPED_MARK in log or self._stop.is_set() and self.returncode == 0:
            self._set(STOPPED, f"The run was stopped; the main machine at {main} has its run folder.")
        elif self.returncode == 0:
            self._set(DONE, f"This machine's part of the run is done; the main machine at {main} has the run folder.")
        elif MAIN_LOST_MARK in log:
            detail = log[log.rindex(MAIN_LOST_MARK) + len(MAIN_LOST_MARK) + 1:].splitlines()[0].strip()
            self.error = detail
            self._set(FAILED, f"This machine left the run: {detail}", f"The log is in {self.run.log_path}.")
        else:
            message, hint = self._failure({})
            self._set(FAILED, message, hint)

    def _take(self, written: dict) -> None:
        self.result = written.get("result")
        self.error = written.get("error")
        self._set(written["state"], written.get("message", ""), written.get("hint", ""),
                  written.get("message_key") or "", **(written.get("message_params") or {}))

    def _failure(self, written: dict) -> tuple[str, str]:
        """The message and hint of a failed run (process_failures.py); ``failure`` says them in any language."""
        from .process_failures import explain_exit
        log = _read_from(self.run.log_path, self._log_offset)
        self.failure = explain_exit(log, self.processes, self.returncode, written, str(self.run.log_path),
                                    several=self.several)
        self.error = written.get("error") if written.get("state") == FAILED else self.failure.message
        return self.failure.message, self.failure.hint

    # ---- reading the child's files ---------------------------------------------------------
    def _refresh(self) -> None:
        written = self.run.read_state()
        if not written or written.get("started") is None and written.get("state") == PENDING:
            return
        p = self.progress
        for key in ("step", "total_steps", "epoch", "elapsed_s", "eta_s"):
            if written.get(key) is not None:
                setattr(p, key, written[key])
        last = self.metrics.last("train")
        if last:
            p.last_loss = last.get("loss")
            p.tokens_seen = int(last.get("tokens_seen") or 0)
        p.last_eval_loss = written.get("final_eval_loss")
        self.info.update({k: v for k, v in written.items() if k not in STATE_KEYS})
        state = written.get("state")
        if state in FINAL_STATES:       # rank 0 is done, but the processes are still ending
            state = SAVING
        if state in (LOADING, TRAINING, SAVING) and not self._stop.is_set():
            self._set(state, written.get("message", self.message), written.get("hint", ""),
                      written.get("message_key") or "", write=False, **(written.get("message_params") or {}))
        elif state in (LOADING, TRAINING, SAVING):
            self._set(state, write=False)

    def _write_state(self) -> None:
        """state.json from this side: before the launch, and at the end (rank 0 writes it between)."""
        if self._proc is not None and self.state not in FINAL_STATES:
            return
        written = self.run.read_state() or {}
        self._save_state({**written, **self.info, **self._state_record()})

    # ---- the process tree ------------------------------------------------------------------
    def _record_tree(self) -> None:
        import psutil
        if self.pid is None:
            return
        try:
            children = psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            return
        for c in children:
            try:
                self._tree.setdefault(c.pid, c.create_time())
            except psutil.Error:
                pass

    def _workers(self) -> list[int]:
        """The training processes: the only one, or the launcher's direct children."""
        import psutil
        if self.pid is None:
            return []
        if self.processes == 1 and not self.several:
            return [self.pid]
        try:
            return [c.pid for c in psutil.Process(self.pid).children()]
        except psutil.Error:     # the launcher is gone: every process of the tree that is left
            return self.alive_pids()

    def _signal_workers(self) -> None:
        if self.pid is None:
            return
        self._record_tree()
        for pid in self._workers():
            _kill(pid, signal.SIGTERM)
        if self._signalled_at is None:
            self._signalled_at = time.monotonic()

    def _kill_tree(self) -> None:
        self._record_tree()
        for pid in self.alive_pids():
            _kill(pid, signal.SIGKILL)


# ---- helpers ---------------------------------------------------------------------------------

def _create_time(pid: int) -> float:
    import psutil
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return 0.0


def _alive(pid: int, created: float) -> bool:
    import psutil
    try:
        p = psutil.Process(pid)
        return (not created or abs(p.create_time() - created) < 0.01) and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
