"""How many CPU threads a CPU run trains with, decided while it trains.

All cores are about twice as fast as all but one (built-in model on 2 cores: 78.9 against 44.0 tokens/s,
the same losses), but only while nothing else needs a core: on a two-core machine that was also doing
something else, two threads were three times slower than one (every parallel step waits for the thread
that was descheduled). So the run starts on all cores when the others are idle, and every few seconds
looks at how much CPU the other programs used (``/proc/stat`` minus this process's own time): one that
needs a core gets it back within seconds, and the run takes it again once it is idle. The app's own
work is inside this process and is not counted against it. ``OMP_NUM_THREADS``, when set, wins."""

from __future__ import annotations

import os
import time

BUSY = 0.3     # cores' worth used by other programs at which the run gives one core back
IDLE = 0.15    # ... below which it takes all cores again


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))   # the cores this process may use, not the host's
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def fixed_threads() -> int | None:
    """The thread count OMP_NUM_THREADS asks for, or None."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(env) if env.isdigit() and int(env) > 0 else None


def next_threads(current: int, cores: int, others: float | None) -> int:
    """The threads for the next steps, from how many cores' worth the other programs used lately."""
    if cores < 2 or others is None:
        return current
    if current >= cores and others > BUSY:
        return cores - 1
    if current < cores and others < IDLE:
        return cores
    return current


class OtherPrograms:
    """Cores' worth of CPU the other programs used since the last call, on the cores this process may use
    (None where ``/proc/stat`` cannot be read)."""

    def __init__(self, proc_stat: str = "/proc/stat"):
        self.proc_stat = proc_stat
        try:
            self.cpus = os.sched_getaffinity(0)
        except (AttributeError, OSError):
            self.cpus = None
        self._last = self._read()

    def _read(self) -> tuple[float, float, float] | None:
        try:
            with open(self.proc_stat, encoding="ascii") as f:
                lines = f.read().splitlines()
            hz = os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, AttributeError):
            return None
        busy = 0
        for line in lines:
            name, *fields = line.split()
            if not (name.startswith("cpu") and name[3:].isdigit()):
                continue
            if self.cpus is not None and int(name[3:]) not in self.cpus:
                continue
            ticks = [int(x) for x in fields[:8]]
            busy += sum(ticks) - ticks[3] - ticks[4]          # all but idle and iowait
        return time.monotonic(), busy / hz, time.process_time()

    def used(self) -> float | None:
        now = self._read()
        last, self._last = self._last, now
        if now is None or last is None or now[0] - last[0] <= 0:
            return None
        return max(0.0, (now[1] - last[1]) - (now[2] - last[2])) / (now[0] - last[0])


def starting_threads(sample_s: float = 0.5) -> tuple[int, OtherPrograms | None]:
    """(threads to start with, the sampler that keeps watching, None when the count is fixed)."""
    cores, fixed = cpu_cores(), fixed_threads()
    if fixed is not None or cores < 2:
        return fixed or cores, None
    others = OtherPrograms()
    time.sleep(sample_s)
    return next_threads(cores - 1, cores, others.used()), others


def note(threads: int, cores: int, watching: bool) -> str:
    """Why a CPU run uses the threads it does, in words."""
    if not watching and fixed_threads() is not None:
        return f"Training on {threads} processor core{'s' if threads != 1 else ''}, as OMP_NUM_THREADS asks."
    if threads < cores:
        return (f"Training on {threads} of this computer's {cores} processor cores: other programs are using the "
                "computer; the run takes all cores once they are idle.")
    plural = "s" if cores != 1 else ""
    return f"Training on all {cores} processor core{plural}" + (
        "; one is given back whenever another program needs it." if watching else ".")


def watcher(threads: int, others: OtherPrograms, log, info: dict, every_s: float = 10.0):
    """A TrainerCallback that re-decides the thread count every ``every_s`` seconds, between steps (where
    ``torch.set_num_threads`` takes effect for the training thread's forward and backward)."""
    import torch
    from transformers import TrainerCallback

    cores = cpu_cores()

    class WatchCpu(TrainerCallback):
        def __init__(self):
            self.threads, self.changes, self._t = threads, [], time.monotonic()

        def on_step_end(self, args, state, control, **kwargs):
            if time.monotonic() - self._t < every_s:
                return
            self._t = time.monotonic()
            used = others.used()
            new = next_threads(self.threads, cores, used)
            if new != self.threads:
                torch.set_num_threads(new)
                self.threads = info["cpu_threads"] = new
                self.changes.append((state.global_step, new))
                log.info("Step %d: other programs used %.1f cores' worth; training on %d of %d cores now.",
                         state.global_step, used, new, cores)

    return WatchCpu()
