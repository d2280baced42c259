"""The device lock: one user of the GPU (or of the CPU's cores) at a time, across threads and processes.

A training run takes it from loading to the end of saving; a chat answer while it is generated. Inside
one process a ``threading.Lock`` decides; across processes (the app and ``studio train`` in a terminal
on the same workspace) a lock file ``<workspace>/device.lock`` taken with ``fcntl.flock`` does. The file
holds who took it (pid, "training" or "chat", the run's name, since when), so the one refused is told
which run has the device. The operating system drops a flock when its process dies, so a killed
holder never leaves the device locked.

    lock = DeviceLock()
    with lock.hold("chat"):                 # DeviceBusy at once when someone else has it
        ...
    lock.other_process_holder()             # {"pid": ..., "run": ...} while another process has it
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from . import paths

LOCK_NAME = "device.lock"


from .errors import DeviceBusy


def device_word() -> str:
    try:
        import torch
        return "GPU" if torch.cuda.is_available() else "processor"
    except ImportError:
        return "processor"


def lock_path() -> Path:
    return paths.workspace() / LOCK_NAME


class _ProcessFileLock:
    """The flock on one lock file, shared by every DeviceLock of this process and counted: in-process
    exclusion is the thread locks' job, this one only keeps other processes out."""

    _registry: dict[str, "_ProcessFileLock"] = {}
    _registry_lock = threading.Lock()

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None
        self._count = 0
        self._lock = threading.Lock()

    @classmethod
    def for_path(cls, path: Path) -> "_ProcessFileLock":
        key = str(path.resolve())
        with cls._registry_lock:
            if key not in cls._registry:
                cls._registry[key] = cls(path)
            return cls._registry[key]

    def try_acquire(self, info: dict) -> bool:
        import fcntl
        with self._lock:
            if self._count:
                self._count += 1
                return True
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return False
            try:   # who holds it, for the message the next one gets; the lock itself is the flock
                os.ftruncate(fd, 0)
                os.write(fd, json.dumps(info).encode("utf-8"))
            except OSError:
                pass
            self._fd, self._count = fd, 1
            return True

    def release(self) -> None:
        import fcntl
        with self._lock:
            if not self._count:
                return
            self._count -= 1
            if self._count == 0 and self._fd is not None:
                try:
                    os.ftruncate(self._fd, 0)
                except OSError:
                    pass
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
                self._fd = None

    @property
    def held_here(self) -> bool:
        return self._count > 0

    def other_holder(self) -> dict | None:
        """Who holds the lock in another process, or None when it is free (or held by this process)."""
        import fcntl
        if self.held_here or not self.path.exists():
            return None
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return _read_info(self.path)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


def _read_info(path: Path) -> dict:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def describe_holder(info: dict) -> str:
    """'the training run "x" (studio train, process 123, since 12:03)' from a lock file's contents."""
    who = info.get("who") or "another job"
    run = info.get("run")
    what = f"the training run '{run}'" if who == "training" and run else (
        "a training run" if who == "training" else "a chat answer" if who == "chat" else who)
    details = [d for d in (info.get("program"), f"process {info['pid']}" if info.get("pid") else "",
                           f"since {info['since'][11:16]}" if len(str(info.get("since", ""))) >= 16 else "") if d]
    return what + (f" ({', '.join(details)})" if details else "")


class DeviceLock:
    """A lock on the compute device with a name for its holder.

    Unlike ``threading.RLock`` it may be released by a thread other than the one that took it: a
    streamed chat answer is generated in one thread and consumed (and abandoned) in others.
    ``path`` is the lock file shared with other processes (default: the workspace's, looked up at
    each acquire, so a changed ``STUDIO_HOME`` is honoured).
    """

    def __init__(self, path: str | Path | None = None):
        self._lock = threading.Lock()
        self._path = Path(path) if path else None
        self._file: _ProcessFileLock | None = None
        self.holder: str | None = None
        self.run: str = ""
        self.refused_by: dict | None = None    # the other process's holder when the last acquire failed

    def _file_lock(self) -> _ProcessFileLock:
        return _ProcessFileLock.for_path(self._path or lock_path())

    def acquire(self, who: str, timeout: float | None = None, run: str = "") -> bool:
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        if not self._lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            return False
        file_lock = self._file_lock()
        info = {"pid": os.getpid(), "who": who, "run": run, "program": _program(),
                "since": _dt.datetime.now().isoformat(timespec="seconds")}
        while not file_lock.try_acquire(info):
            if deadline is not None and time.monotonic() >= deadline:
                self.refused_by = file_lock.other_holder() or {}
                self._lock.release()
                return False
            time.sleep(0.2)
        self._file, self.holder, self.run, self.refused_by = file_lock, who, run, None
        return True

    def release(self) -> None:
        file_lock, self._file = self._file, None
        self.holder, self.run = None, ""
        if file_lock is not None:
            file_lock.release()
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def other_process_holder(self) -> dict | None:
        """The holder in another process (pid, who, run, since), or None."""
        return self._file_lock().other_holder()

    def busy_error(self) -> DeviceBusy:
        device = device_word()
        if self.refused_by is not None:
            return other_process_error(self.refused_by)
        if self.holder == "training":
            return DeviceBusy("Training is using the {device}; chat will be available when it finishes or is stopped.",
                              code="device.training", device=device)
        return DeviceBusy("The {device} is busy with another answer; try again in a moment.", code="device.answering",
                          device=device)

    def hold(self, who: str, timeout: float = 0.0, run: str = "") -> "_Held":
        """``with lock.hold("chat"):`` — raises DeviceBusy at once when someone else holds it."""
        self.refused_by = None
        if not self.acquire(who, timeout, run):
            raise self.busy_error()
        return _Held(self)

    def check_free_elsewhere(self, what: str) -> None:
        """Raise DeviceBusy naming the holder when another process has the device (before loading a model)."""
        info = self.other_process_holder()
        if info is not None:
            raise other_process_error(info, what)


def other_process_error(info: dict, what: str = "") -> DeviceBusy:
    return DeviceBusy("The {device} is in use by {holder}, started from another window or terminal.",
                      code="device.other_process", device=device_word(), holder=describe_holder(info))


def _program() -> str:
    """'studio train', 'the studio app'...: where the holder was started, for the message."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if name in ("studio", "cli.py"):          # the console script, or python -m studio.cli
        return "studio " + (sys.argv[1] if len(sys.argv) > 1 else "")
    if name == "launch.py":
        return "the studio app"
    return name


class _Held:
    def __init__(self, lock: DeviceLock):
        self.lock = lock

    def __enter__(self):
        return self.lock

    def __exit__(self, *exc):
        self.lock.release()


class AlreadyHeld:
    """The device lock as seen by work done inside its holder (the questions a training run asks its
    model before it lets the device go): there is nothing more to take, and no other process can have it."""

    holder = "training"

    def hold(self, who: str, timeout: float = 0.0, run: str = "") -> "_Held":
        return _Held(self)

    def release(self) -> None:
        pass

    def check_free_elsewhere(self, what: str) -> None:
        pass


class RunDeviceLock:
    """The device lock as one training run sees it: every acquire records the run's name in the lock
    file, so another process that is refused is told which run has the device."""

    def __init__(self, lock: DeviceLock, run: str):
        self._device_lock = lock
        self._run = run

    def acquire(self, who: str, timeout: float | None = None, run: str = "") -> bool:
        return self._device_lock.acquire(who, timeout, run or self._run)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._device_lock, name)
