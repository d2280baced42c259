"""Ctrl-C (SIGINT) and SIGTERM in the ``studio`` commands: one stop, counted once, ended cleanly.

A terminal, a service manager or ``timeout`` sends them. Two rules every command keeps:

* One stop is counted once. ``timeout`` signals the command and then its whole process group, so the
  command receives the same SIGTERM twice within microseconds; a terminal's Ctrl-C likewise reaches
  every process of the foreground group. A signal less than ``WINDOW`` seconds after the one before is
  that same stop. A later one is a second stop: quit at once.
* Nothing is left half done: the command's own cleanup runs (a ``.partial`` file removed, a generation
  thread ended and joined) before the process ends with 130 (SIGINT) or 143 (SIGTERM) and one line that
  says what was kept. Ending while a generation thread is still inside torch aborts the interpreter
  ("terminate called without an active exception", SIGABRT): see ``studio/commands/train.py``.

``StopSignals(raise_first=True)`` (eval, export, chat) raises ``Stopped`` in the main thread at the first
stop, so ``finally`` blocks clean up; ``raise_first=False`` (train) only records it for ``wait``, the
training thread being stopped through its job.
"""

from __future__ import annotations

import os
import signal
import sys
import time

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
WINDOW = 1.0     # seconds within which a repeated signal is the same stop


class Stopped(KeyboardInterrupt):
    """The command was asked to stop (``signo``); ``code`` is its exit status."""

    def __init__(self, signo: int):
        super().__init__(signo)
        self.signo = signo
        self.code = EXIT_CODES.get(signo, 128 + signo)


class StopSignals:
    """Handlers for SIGINT/SIGTERM while the block runs (the previous handlers come back after)."""

    def __init__(self, raise_first: bool = True, clock=time.monotonic):
        self.raise_first = raise_first
        self.clock = clock
        self.received: list[int] = []
        self.stopping = False
        self._last: float | None = None
        self._previous: dict = {}

    def __enter__(self) -> "StopSignals":
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self.handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def handle(self, signo: int, frame=None) -> None:
        now = self.clock()
        if self._last is not None and now - self._last < WINDOW:
            return            # the same stop, delivered to the process and to its group
        self._last = now
        if not self.raise_first:
            self.received.append(signo)
            return
        if self.stopping:     # a second stop while the first one is cleaning up: at once, as promised
            print("\nQuit at once.", file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_CODES.get(signo, 128 + signo))
        self.stopping = True
        raise Stopped(signo)

    def handled(self) -> None:
        """The stop was dealt with and the command goes on (interactive chat): the next one stops again."""
        self.stopping = False

    def wait(self, timeout: float) -> int | None:
        """The next recorded signal within ``timeout`` seconds, or None (``raise_first=False``)."""
        deadline = time.monotonic() + timeout
        while not self.received and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.received.pop(0) if self.received else None
