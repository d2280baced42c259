"""What every job runner shares, the in-process ``TrainingJob`` and the ``SubprocessJob`` alike: a run
folder, a state with its message, a stop flag, and a daemon thread that runs ``run_sync``. The job
manager, the UI and the CLI use only this, so they never ask which runner a run has."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .states import ACTIVE_STATES, PENDING, STATE_KEYS

if TYPE_CHECKING:          # for the annotations only
    from ..config import StudioConfig
    from ..runs import RunFolder


class BackgroundRun:
    """Subclasses call ``__init__`` (the attributes every runner has), then set ``progress`` and ``metrics``
    (each runner reads them its own way), and define ``run_sync`` and ``_write_state`` (state.json, from
    ``_state_record``). Every change of ``state``, ``message`` or ``hint`` goes through ``_set``."""

    thread_name = "run"
    # The message as words the app can say in another language: a key of the UI's text table ("job.<key>") and
    # the values its template places ('' when the message has no such words, e.g. a failure's own).
    message_key: str = ""
    message_params: dict = {}

    def __init__(self, cfg: StudioConfig, run: RunFolder, device_lock: Any = None,
                 resume_from: str | Path | None = None, init_adapter: str | Path | None = None,
                 origin: dict | None = None):
        self.cfg, self.run = cfg, run
        self.device_lock = device_lock
        # resume_from: a checkpoint folder of this run (see resume.py); init_adapter: an adapter folder
        # whose weights the new LoRA starts from (extend); origin: where this run came from (fingerprint).
        self.resume_from = Path(resume_from) if resume_from else None
        self.init_adapter = Path(init_adapter) if init_adapter else None
        self.origin = dict(origin or {})
        if self.resume_from is not None:     # before anything reads the run's files: the later steps are
            from .resume import prepare_folder   # logged (and saved) again
            prepare_folder(run, self.resume_from)
        self.state, self.message, self.hint = PENDING, "Waiting to start.", ""
        self.error: str | None = None          # the exception text of a failure (the traceback is in train.log)
        self.failure = None   # the StudioError a failed run reports (message and hint in any language)
        self.result: dict | None = None
        self.started: str | None = None
        self.finished: str | None = None
        self.info: dict = {}                   # device, precision, optimizer, rows… (goes to state.json)
        # The model a finished in-process run may still hold for chat; a run in its own processes never does.
        self.model = self.tokenizer = self.chat_template = None
        self.keep_model = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state_lock = threading.Lock()

    @property
    def run_dir(self) -> Path:
        return self.run.path

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def thread_alive(self) -> bool:
        """Whether the runner's thread is still going: it outlives ``active`` while it frees the model and
        writes the end time (the CLI waits for it before exiting)."""
        return self._thread is not None and self._thread.is_alive()

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
             key: str = "", *, write: bool = True, **params) -> None:
        """The one way ``state``, ``message`` and ``hint`` change (under the state lock), then state.json
        unless ``write`` is False. ``key`` and ``params``: the same message as words of the UI's text table
        (``message_key``)."""
        with self._state_lock:
            if state is not None:
                self.state = state
            if message is not None:
                self.message = message
                self.message_key, self.message_params = key, params
            if hint is not None:
                self.hint = hint
        if write:
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
