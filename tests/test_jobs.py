"""The job manager: one run at a time (race-free), chat refused while training, run history."""

from __future__ import annotations

import json
import threading
import time

import pytest
from transformers import TrainerCallback

from test_training_job import make_cfg, prepared, write_data
from tiny import tiny_model, tiny_tokenizer


class Hold(TrainerCallback):
    """Keeps the run busy at its first step until released, so the test controls timing."""

    def __init__(self):
        self.reached = threading.Event()
        self.release = threading.Event()

    def on_step_begin(self, args, state, control, **kw):
        self.reached.set()
        self.release.wait(30)


def start(manager, tmp_path, callbacks=(), **training):
    tok = tiny_tokenizer()
    cfg = make_cfg(write_data(tmp_path), **{"max_steps": 3, **training})
    return manager.start(cfg, model=tiny_model(tok), tokenizer=tok, data=prepared(cfg, tok), callbacks=callbacks)


def test_two_simultaneous_starts_give_exactly_one_run(tmp_path, studio_home):
    from studio.jobs import JobManager
    from studio.errors import JobBusy

    manager = JobManager()
    hold = Hold()
    barrier = threading.Barrier(2)
    outcomes: list = []

    def go():
        barrier.wait()
        try:
            outcomes.append(start(manager, tmp_path, callbacks=[hold]))
        except JobBusy as e:
            outcomes.append(e)

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    jobs = [o for o in outcomes if not isinstance(o, Exception)]
    refusals = [o for o in outcomes if isinstance(o, JobBusy)]
    assert len(jobs) == 1 and len(refusals) == 1
    assert "already" in str(refusals[0]) and "Stop it or wait" in str(refusals[0])
    assert len(list((studio_home / "runs").iterdir())) == 1     # the refused start made no folder
    hold.release.set()
    assert jobs[0].join(60) and jobs[0].state == "done"
    # Once it has ended, a new run may start.
    again = start(manager, tmp_path)
    assert again.join(60) and again.state == "done"


def test_chat_is_refused_while_training_and_works_after(tmp_path, studio_home):
    from studio.errors import DeviceBusy
    from studio.inference import ChatSession
    from studio.jobs import JobManager

    manager = JobManager()
    hold = Hold()
    job = start(manager, tmp_path, callbacks=[hold])
    assert hold.reached.wait(30)
    other = tiny_tokenizer()
    chat = ChatSession(tiny_model(other), other, device_lock=manager.device_lock)
    with pytest.raises(DeviceBusy, match="Training is using the .*; chat will be available when it finishes or is stopped"):
        chat.reply([], "Hello")
    assert manager.stop() is True
    hold.release.set()
    assert job.join(60) and job.state == "stopped"
    assert chat.reply([], "Hello") is not None        # the device is free again
    assert manager.stop() is False                     # nothing left to stop


def test_a_new_run_frees_the_model_the_last_one_kept(tmp_path, studio_home):
    from studio.jobs import JobManager

    manager = JobManager()
    first = start(manager, tmp_path)
    assert first.join(60) and first.model is not None      # kept for chat
    second = start(manager, tmp_path)
    assert first.model is None
    assert second.join(60) and second.state == "done"


def test_a_bad_setting_is_refused_before_anything_starts(tmp_path, studio_home):
    from studio.errors import ConfigError
    from studio.jobs import JobManager

    cfg = make_cfg(write_data(tmp_path), learning_rate=5.0)
    with pytest.raises(ConfigError, match="learning rate"):
        JobManager().start(cfg)
    assert not (studio_home / "runs").exists() or not any((studio_home / "runs").iterdir())


def test_runs_lists_state_files_and_marks_cut_off_runs(tmp_path, studio_home):
    from studio.jobs import JobManager

    manager = JobManager()
    job = start(manager, tmp_path)
    job.join(60)
    # A run whose process died mid-training (a pid that cannot exist).
    ghost = studio_home / "runs" / "20000101-000000-ghost"
    ghost.mkdir(parents=True)
    (ghost / "state.json").write_text(json.dumps({"state": "training", "pid": 2**22 + 12345,
                                                  "started": "2000-01-01T00:00:00"}))
    runs = manager.runs()
    by_dir = {r["run_dir"]: r for r in runs}
    assert by_dir[str(job.run_dir)]["state"] == "done"
    assert by_dir[str(ghost)]["state"] == "interrupted" and "cut off" in by_dir[str(ghost)]["message"]
    assert runs[0]["run_dir"] == str(job.run_dir)        # newest first


def test_get_manager_is_one_per_process():
    from studio.jobs import get_manager

    seen = []
    threads = [threading.Thread(target=lambda: seen.append(get_manager())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(m) for m in seen}) == 1 and seen[0] is get_manager()


def test_both_runners_change_their_state_only_through_set_and_share_one_init():
    """``BackgroundRun._set`` (under the state lock) is the one place a runner's state, message or hint
    changes, and ``BackgroundRun.__init__`` the one place the attributes both runners have are made."""
    import ast
    import inspect

    from studio.training import background, job, launcher

    shared = {"state", "message", "hint", "message_key", "message_params", "error", "failure", "result",
              "started", "finished", "info", "device_lock", "resume_from", "init_adapter", "origin", "cfg", "run",
              "_stop", "_thread", "_state_lock"}
    for module in (job, launcher):
        tree = ast.parse(inspect.getsource(module))
        for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
            for node in ast.walk(fn):
                targets = node.targets if isinstance(node, ast.Assign) else \
                    [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
                names = {e.attr for t in targets for e in ast.walk(t)
                         if isinstance(e, ast.Attribute) and isinstance(e.value, ast.Name) and e.value.id == "self"}
                assert not names & {"state", "message", "hint", "message_key", "message_params"}, \
                    f"{module.__name__}.{fn.name} sets {names} (use _set)"
                if fn.name == "__init__":
                    assert not names & shared, f"{module.__name__}.__init__ sets {names & shared}"
    made = background.BackgroundRun.__new__(background.BackgroundRun)
    assert not hasattr(made, "_thread")        # made by __init__, not class attributes
    assert "thread_alive" in dir(background.BackgroundRun)
