"""What every job runner shares, the in-process ``TrainingJob`` and the ``SubprocessJob`` alike: a run
folder, a state with its message, a stop flag, and a daemon thread that runs ``run_sync``. The job
manager, the UI and the CLI use only this, so they never ask which runner a run has."""

from __future__ import annotations

import os
import threading
from pathlib import Path

PENDING, LOADING, TRAINING, SAVING, SCORING = "pending", "loading", "training", "saving", "scoring"
DONE, STOPPED, FAILED = "done", "stopped", "failed"
ACTIVE_STATES = (PENDING, LOADING, TRAINING, SAVING, SCORING)
FINAL_STATES = (DONE, STOPPED, FAILED)
# What ``_state_record`` writes of every run; anything else in state.json is the runner's ``info``.
STATE_KEYS = frozenset({"state", "message", "hint", "error", "name", "started", "finished", "step", "total_steps",
                        "epoch", "elapsed_s", "eta_s", "final_loss", "final_eval_loss", "model_source",
                        "data_source", "adapter", "pid", "result", "failure", "message_key", "message_params"})


class BackgroundRun:
    """Subclasses set ``run``, ``cfg``, ``state``, ``message``, ``hint``, ``error``, ``failure``, ``progress``,
    ``metrics``, ``result``, ``started``, ``finished``, ``_stop`` (an Event), ``_state_lock`` and ``_thread``
    (None until started), and define ``run_sync`` and ``_write_state`` (state.json, from
    ``_state_record``)."""

    thread_name = "run"
    # The message as words the app can say in another language: a key of the UI's text table ("job.<key>") and
    # the values its template places ('' when the message has no such words, e.g. a failure's own).
    message_key: str = ""
    message_params: dict = {}

    @property
    def run_dir(self) -> Path:
        return self.run.path

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def start(self):
        """Run in a background (daemon) thread and return at once."""
        if self._thread is not None:
            raise RuntimeError("This job was already started.")
        self._thread = threading.Thread(target=self.run_sync, name=f"{self.thread_name}-{self.run.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True when the job has ended."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.active

    def status(self) -> dict:
        """A snapshot for the UI: state, message, hint, the engine error of a failed run, progress, folder."""
        return {"state": self.state, "message": self.message, "hint": self.hint,
                "failure": self.failure, "progress": self.progress.to_dict(),
                "run_dir": str(self.run.path), "name": self.run.name, "result": self.result,
                "message_key": self.message_key, "message_params": dict(self.message_params)}

    def _state_record(self) -> dict:
        """The run as state.json says it (``STATE_KEYS``), the same for both runners."""
        p = self.progress
        metrics = getattr(self, "metrics", None)     # not there yet while the job is being made
        last = metrics.last("train") if metrics is not None else None
        return {"state": self.state, "message": self.message, "hint": self.hint, "error": self.error,
                "name": self.run.name, "started": self.started, "finished": self.finished,
                "step": p.step, "total_steps": p.total_steps, "epoch": p.epoch, "elapsed_s": p.elapsed_s,
                "eta_s": p.eta_s, "final_loss": last["loss"] if last else None,
                "final_eval_loss": p.last_eval_loss, "model_source": self.cfg.model.source,
                "data_source": self.cfg.data.file,
                "adapter": str(self.run.adapter_dir) if self.run.has_adapter() else None,
                "pid": os.getpid(), "result": self.result,
                "message_key": self.message_key, "message_params": dict(self.message_params),
                # A run in its own processes is reported by the app's process: in the user's language too.
                "failure": self.failure.to_dict() if self.failure is not None else None}

    def _save_state(self, state: dict) -> None:
        try:
            self.run.write_state(state)
        except OSError:
            pass  # a full disk must not turn into a second failure while reporting the first

    def _set(self, state: str | None = None, message: str | None = None, hint: str | None = None,
             key: str = "", **params) -> None:
        """``key`` and ``params``: the same message as words of the UI's text table (``message_key``)."""
        with self._state_lock:
            if state is not None:
                self.state = state
            if message is not None:
                self.message = message
                self.message_key, self.message_params = key, params
            if hint is not None:
                self.hint = hint
        self._write_state()

    def _acquire_device(self) -> bool:
        """Take the device lock (chat's answer in progress first finishes); False when stopped while
        waiting, or when there is no lock to take."""
        if self.device_lock is None:
            return False
        first = True
        while not self._stop.is_set():
            if self.device_lock.acquire("training", timeout=0.5):
                return True
            if first:
                self._set(message="Waiting for the chat to finish its answer before training starts.")
                first = False
        return False
