"""A CPU run trains on all cores while the other programs leave them idle, gives one back within seconds
when another program needs it, and takes it again once that program is idle; OMP_NUM_THREADS wins."""

from __future__ import annotations

import time

from studio.training import cpu_threads as ct


def test_the_decision_gives_a_core_back_and_takes_it_again():
    assert ct.next_threads(2, 2, 0.9) == 1          # a browser busy on one core: it gets it
    assert ct.next_threads(1, 2, 0.2) == 1          # between the marks: no flapping
    assert ct.next_threads(1, 2, 0.05) == 2         # idle again: both cores
    assert ct.next_threads(2, 2, 0.1) == 2
    assert ct.next_threads(1, 1, 0.0) == 1          # one core: nothing to decide
    assert ct.next_threads(2, 2, None) == 2         # unknown: keep what it has


def _stat(path, user, idle, cpus=("cpu0", "cpu1")):
    lines = [f"cpu  {user * len(cpus)} 0 0 {idle * len(cpus)} 0 0 0 0 0 0"]
    lines += [f"{c} {user} 0 0 {idle} 0 0 0 0 0 0" for c in cpus]
    path.write_text("\n".join(lines) + "\n")


def test_other_programs_are_measured_from_proc_stat_minus_this_process(tmp_path, monkeypatch):
    import os

    stat = tmp_path / "stat"
    hz = os.sysconf("SC_CLK_TCK")
    clock = {"wall": 100.0, "own": 5.0}
    monkeypatch.setattr(time, "monotonic", lambda: clock["wall"])
    monkeypatch.setattr(time, "process_time", lambda: clock["own"])
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    _stat(stat, user=0, idle=0)
    others = ct.OtherPrograms(str(stat))
    # 10 s later: the two cores were busy 15 s in all, 12 of them this process's own (training + the app)
    clock["wall"], clock["own"] = 110.0, 17.0
    _stat(stat, user=int(7.5 * hz), idle=int(2.5 * hz))
    assert abs(others.used() - 0.3) < 0.01
    clock["wall"], clock["own"] = 120.0, 36.0        # then only this process: nothing used by others
    _stat(stat, user=int(17.0 * hz), idle=int(3.0 * hz))
    assert others.used() == 0.0


def test_cores_outside_this_process_are_not_counted(tmp_path, monkeypatch):
    import os

    stat = tmp_path / "stat"
    hz = os.sysconf("SC_CLK_TCK")
    clock = {"wall": 0.0}
    monkeypatch.setattr(time, "monotonic", lambda: clock["wall"])
    monkeypatch.setattr(time, "process_time", lambda: 0.0)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    _stat(stat, 0, 0, cpus=("cpu0", "cpu1", "cpu2", "cpu3"))
    others = ct.OtherPrograms(str(stat))
    clock["wall"] = 10.0
    stat.write_text(f"cpu0 0 0 0 {10 * hz} 0 0 0 0\ncpu1 0 0 0 {10 * hz} 0 0 0 0\n"
                    f"cpu2 {10 * hz} 0 0 0 0 0 0 0\ncpu3 {10 * hz} 0 0 0 0 0 0 0\n")   # busy, but not ours
    assert others.used() == 0.0


def test_omp_num_threads_wins_and_is_not_watched(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert ct.starting_threads(0) == (3, None)
    assert "OMP_NUM_THREADS" in ct.note(3, 2, watching=False)


def test_the_watcher_changes_torch_threads_between_steps(monkeypatch):
    import logging

    import torch

    class Busy:                                        # other programs: busy, then idle
        def __init__(self):
            self.values = [0.9, 0.0]

        def used(self):
            return self.values.pop(0)

    monkeypatch.setattr(ct, "cpu_cores", lambda: 2)
    before = torch.get_num_threads()
    info: dict = {}
    state = type("S", (), {"global_step": 0})()
    w = ct.watcher(2, Busy(), logging.getLogger("t"), info, every_s=0.0)
    try:
        state.global_step = 5
        w.on_step_end(None, state, None)
        assert w.threads == 1 and torch.get_num_threads() == 1 and info["cpu_threads"] == 1
        state.global_step = 9
        w.on_step_end(None, state, None)
        assert w.threads == 2 and torch.get_num_threads() == 2 and w.changes == [(5, 1), (9, 2)]
    finally:
        torch.set_num_threads(before)
