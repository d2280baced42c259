"""More than one machine, inside a worker: what the ranks tell each other through the TCPStore the main
machine serves (the rendezvous store of ``torch.distributed.run``, at MASTER_ADDR:MASTER_PORT).

- The config: the main machine's first rank puts the run's config.yaml (and what the machines must
  have in common: the studio's and torch's versions, the data file's path and SHA-256) in the store;
  every other machine's ranks train that config, after checking they have the same (``receive_config``).
- Heartbeats: every rank adds 1 to ``beat/<rank>`` each second from a thread of its own.
- The main machine's rank 0 watches the other machines' beats and errors: a machine silent for
  ``STUDIO_NODE_LOST_S`` (60 s) or reporting an error ends the run at once, naming that machine
  (``NODE_MARK`` line in train.log, which process_failures.py says in words), instead of a collective
  waiting for torch's timeout. After a failed collective ``who_failed`` finds the machine that went.
- Stop: rank 0 sets ``stop`` (``announce_stop``); the other machines' ranks see it within a second:
  while loading they exit at once (nothing to save), while training the synced stop (worker.py) ends
  every rank after the same step. A machine that loses the store (the main machine has gone) exits
  with ``MAIN_LOST_MARK``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

from ..process_env import nnodes, node_rank, rank, world_size

NODE_MARK = "STUDIO-NODE-FAILED"       # rank 0: "<mark> node=N host=H: what happened"
MAIN_LOST_MARK = "STUDIO-MAIN-LOST"    # another machine: the main machine has gone
STOPPED_MARK = "STUDIO-NODE-STOPPED"   # another machine: the main machine stopped the run
BEAT_S = 1.0
CONNECT_S = 60.0


def lost_after_s() -> float:
    try:
        return max(3.0, float(os.environ.get("STUDIO_NODE_LOST_S", 60)))
    except ValueError:
        return 60.0


class NodeLink:
    def __init__(self, store, on_stop=None):
        self.store = store
        self.rank, self.world, self.node, self.nodes = rank(), world_size(), node_rank(), nnodes()
        self._lock = threading.Lock()
        self._on_stop = on_stop            # called (from the watcher thread) when the main machine stops the run
        self.stop_seen = False
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    @classmethod
    def open(cls, on_stop=None) -> "NodeLink | None":
        """The link of a worker of a run on several machines, or None on one machine."""
        if nnodes() <= 1 or world_size() <= 1:
            return None
        from torch.distributed import PrefixStore, TCPStore
        store = TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                         timeout=_dt.timedelta(seconds=CONNECT_S))
        link = cls(PrefixStore("studio", store), on_stop)
        link._call("set", f"rank/{link.rank}", json.dumps({"node": link.node, "host": socket.gethostname()}))
        return link

    # ---- the store, one call at a time ---------------------------------------------------
    def _call(self, op: str, *args):
        with self._lock:
            return getattr(self.store, op)(*args)

    def _has(self, key: str) -> bool:
        return bool(self._call("check", [key]))

    def _text(self, key: str) -> str:
        return self._call("get", key).decode("utf-8", errors="replace")

    # ---- the config ------------------------------------------------------------------------
    def share_config(self, config_text: str, data_file: str) -> None:
        """Rank 0: the config the other machines train, and what they must have in common."""
        self._call("set", "config", json.dumps({"config": config_text, **machine_facts(data_file)}))

    def receive_config(self, timeout_s: float) -> tuple[str, dict]:
        """Another machine: the main machine's config (text) and its facts; polls, so heartbeats go on."""
        deadline = time.monotonic() + timeout_s
        while not self._has("config"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the main machine sent no settings within {timeout_s:.0f} s.")
            time.sleep(0.2)
        shared = json.loads(self._text("config"))
        return shared.pop("config"), shared

    # ---- stop and errors -------------------------------------------------------------------
    def announce_stop(self) -> None:
        try:
            self._call("set", "stop", "1")
        except Exception:   # the store is gone: the others find out by losing it
            pass

    def stopped_by_main(self) -> bool:
        try:
            return self.stop_seen or self._has("stop")
        except Exception:
            return self.stop_seen

    def report_error(self, text: str) -> None:
        try:
            self._call("set", f"error/{self.rank}", text[:2000])
        except Exception:
            pass

    def _whereabouts(self, r: int) -> dict:
        try:
            return json.loads(self._text(f"rank/{r}")) if self._has(f"rank/{r}") else {}
        except Exception:
            return {}

    def _other_ranks(self) -> list[int]:
        return [r for r in range(self.world) if self._whereabouts(r).get("node", -1) != self.node]

    def _errors(self, ranks: list[int]) -> dict[int, str]:
        return {r: self._text(f"error/{r}") for r in ranks if self._has(f"error/{r}")}

    def _beats(self, ranks: list[int]) -> dict[int, int]:
        return {r: int(self._call("add", f"beat/{r}", 0)) for r in ranks}

    def who_failed(self, window_s: float = 3.0) -> list[str]:
        """Rank 0, after a failure: a line for each other machine that reported an error or went silent."""
        try:
            ranks = self._other_ranks()
            errors = self._errors(ranks)
            silent: list[int] = []
            if not errors:
                before = self._beats(ranks)
                time.sleep(window_s)
                after = self._beats(ranks)
                silent = [r for r in ranks if after[r] == before[r]]
                errors = self._errors(ranks)
        except Exception:
            return []
        return _lines(self, errors, silent)

    # ---- the thread ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="studio-node-link", daemon=True)
        self._thread.start()

    def close(self) -> bool:
        """Ends the thread; False if it is still inside a call to the store (the process must then leave with
        os._exit: an interpreter shutting down under a thread inside torch's C++ code aborts)."""
        self._closed.set()
        if self._thread is not None:
            self._thread.join(3.0)
            return not self._thread.is_alive()
        return True

    def _run(self) -> None:
        lost_after = lost_after_s()
        last_ok = time.monotonic()
        seen: dict[int, tuple[int, float]] = {}
        while not self._closed.is_set():
            now = time.monotonic()
            try:
                self._call("add", f"beat/{self.rank}", 1)
                last_ok = now
                if self.rank == 0:
                    others = self._other_ranks()
                    self._watch(others, seen, now, lost_after)
                elif not self.stop_seen and self._has("stop"):
                    self.stop_seen = True
                    if self._on_stop is not None:
                        self._on_stop()
                elif self._has("error/0"):
                    _exit(f"{MAIN_LOST_MARK}: the main machine's training failed: {self._text('error/0')}", 1)
            except Exception as e:     # the store is unreachable: the main machine (its launcher) has gone
                if self.rank != 0 and now - last_ok > min(lost_after, 10.0):
                    if self.stop_seen:
                        _exit(f"{STOPPED_MARK}: the main machine stopped the run.", 0)
                    _exit(f"{MAIN_LOST_MARK}: lost the main machine at {os.environ.get('MASTER_ADDR')}:"
                          f"{os.environ.get('MASTER_PORT')} ({type(e).__name__}: {e}).", 1)
            self._closed.wait(BEAT_S)

    def _watch(self, others: list[int], seen: dict, now: float, lost_after: float) -> None:
        """Rank 0: an error of another machine, or one silent too long, ends the run naming it."""
        errors = self._errors(others)
        beats = self._beats(others)
        silent = []
        for r, n in beats.items():
            if r not in seen or seen[r][0] != n:
                seen[r] = (n, now)
            elif now - seen[r][1] > lost_after:
                silent.append(r)
        if errors or silent:
            for line in _lines(self, errors, silent, lost_after):
                print(line, file=sys.stderr, flush=True)
            self.report_error("another machine of the run failed or went silent.")
            os._exit(1)


def _lines(link: NodeLink, errors: dict[int, str], silent: list[int], after_s: float | None = None) -> list[str]:
    by_node: dict[int, tuple[str, str]] = {}
    for r in sorted(set(errors) | set(silent)):
        where = link._whereabouts(r)
        node = int(where.get("node", -1))
        if node in by_node:
            continue
        if r in errors:
            detail = errors[r]
        elif after_s:
            detail = f"no word from it for {after_s:.0f} s (its processes ended, or the network to it failed)."
        else:
            detail = "its processes ended (they were killed, or the machine or the network to it failed)."
        by_node[node] = (str(where.get("host", "?")), detail)
    return [f"{NODE_MARK} node={node} host={host}: {detail}" for node, (host, detail) in by_node.items()]


def _exit(line: str, code: int) -> None:
    print(line, file=sys.stderr, flush=True)
    os._exit(code)


# ---- what the machines must have in common ---------------------------------------------------

def machine_facts(data_file: str) -> dict:
    """The studio's and torch's versions and the data file (absolute path and SHA-256, when a file)."""
    import torch

    import studio
    facts = {"studio": studio.__version__, "torch": torch.__version__.split("+")[0], "data_path": "", "data_sha": ""}
    p = Path(data_file).expanduser()
    if data_file and p.is_file():
        facts["data_path"], facts["data_sha"] = str(p.resolve()), _sha256(p)
    return facts


def differences(main: dict, data_file: str) -> list[str]:
    """What this machine has that differs from the main machine's ``main`` facts, in words."""
    mine = machine_facts(main.get("data_path") or data_file)
    out = []
    for key, what in (("studio", "studio version"), ("torch", "torch version")):
        if main.get(key) != mine[key]:
            out.append(f"its {what} is {mine[key]}, the main machine's {main.get(key)}")
    if main.get("data_sha"):
        if not mine["data_sha"]:
            out.append(f"the data file {main['data_path']} is not on this machine (put a copy at the same path)")
        elif mine["data_sha"] != main["data_sha"]:
            out.append(f"its copy of the data file {main['data_path']} differs from the main machine's")
    return out


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
