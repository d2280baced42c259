"""Why a run in processes of its own failed, said as a ``TrainingFailed`` (message and hint in every
language), from what the processes left behind: rank 0's ``state.json`` (its job's own explained
failure), torch.distributed.run's "Root Cause" summary and each worker's ``STUDIO-RANK-ERROR`` line in
train.log, or the exit code of a process killed by a signal."""

from __future__ import annotations

import re
import signal

from ..errors import StudioError, TrainingFailed
from .node_link import NODE_MARK
from .worker import ERROR_MARK

_ROOT = re.compile(r"Root Cause.*?rank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+)", re.S)


def explain_exit(log: str, processes: int, returncode: int | None, written: dict, log_path: str,
                 several: bool = False) -> StudioError:
    """The failure of a process tree that ended without finishing: which rank failed first and why (on
    a run of several machines, first: which other machine went, from rank 0's ``NODE_MARK`` line)."""
    node = re.search(rf"{NODE_MARK} node=(-?\d+) host=(\S*): (.*)", log)
    if node:
        n = int(node.group(1))
        return TrainingFailed("Machine {machine} (node rank {node}, {host}) left the run: {detail} The run stopped.",
                              code="training.node_failed", machine=n + 1, node=n, host=node.group(2),
                              detail=node.group(3).strip(), log=log_path)
    rank, exitcode = _root_cause(log)
    if processes == 1 and not several:
        rank, exitcode = 0, returncode
    who, who_zh = _who(rank, processes)
    if exitcode is not None and exitcode < 0:
        return TrainingFailed("{who} was killed by {signal}: the system may have run out of memory, or it was "
                              "ended from outside the studio. The run stopped.", code="training.process_killed",
                              signal=_signal_name(-exitcode), log=log_path, who=who, who_zh=who_zh)
    if rank in (None, 0) and written.get("state") == "failed":     # explained in plain words by rank 0's job
        if written.get("failure"):
            return StudioError.from_dict(written["failure"])
        return TrainingFailed("{who} failed: {detail}", code="training.rank_failed", log=log_path,
                              detail=written.get("message") or "the run failed.", who=who, who_zh=who_zh)
    marks = _rank_errors(log)
    error = marks.get(rank) if rank is not None else None
    error = error or (next(iter(marks.values())) if marks else None) or _last_exception(log) or \
        f"it exited with code {exitcode if exitcode is not None else returncode}"
    low = error.lower()
    if "out of memory" in low or "outofmemory" in low:
        return TrainingFailed("{who} failed: {detail}", code="training.rank_oom", detail=error, log=log_path,
                              who=who, who_zh=who_zh)
    if "nccl" in low:
        return TrainingFailed("{who} failed: {detail}", code="training.rank_nccl", detail=error, log=log_path,
                              who=who, who_zh=who_zh)
    return TrainingFailed("{who} failed: {detail}", code="training.rank_failed", detail=error, log=log_path,
                          who=who, who_zh=who_zh)


def _who(rank: int | None, processes: int) -> tuple[str, str]:
    """The failed process in words, for the English and the Chinese message."""
    if rank is None or processes <= 1 and rank == 0:
        return "The training process", "训练进程"
    return (f"Training process {rank + 1} of {processes} (rank {rank})",
            f"第 {rank + 1} 个训练进程（共 {processes} 个，rank {rank}）")


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _root_cause(log: str) -> tuple[int | None, int | None]:
    """(rank, exit code) of torch.distributed.run's "Root Cause (first observed failure)" summary."""
    m = _ROOT.search(log)
    return (int(m.group(1)), int(m.group(2))) if m else (None, None)


def _rank_errors(log: str) -> dict[int, str]:
    """rank -> the error its worker reported (the first report of each rank, in log order)."""
    out: dict[int, str] = {}
    for m in re.finditer(rf"{ERROR_MARK} rank=(\d+) of \d+: (.*)", log):
        out.setdefault(int(m.group(1)), m.group(2).strip())
    return out


def _last_exception(log: str) -> str | None:
    """The last 'SomeError: text' line of a Python traceback in the log."""
    found = re.findall(r"^(?:\[[^\]]*\]:?\s*)?([A-Za-z_.]*(?:Error|Exception|Interrupt)\b.*)$", log, re.M)
    return found[-1].strip() if found else None
