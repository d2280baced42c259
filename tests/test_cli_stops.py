"""SIGTERM and Ctrl-C in `studio train / eval / export / chat --prompt`, as a terminal, a service manager or
`timeout` send them: one stop counted once, no partial file left, exit 130 / 143 with a line saying what
was kept, no SIGABRT ("terminate called without an active exception"), no traceback.

Each command runs in its own process (what is left on disk, and how the interpreter ends, are the
point). Where the moment of the signal matters, a small wrapper sends it from inside the command at a
known point (the first piece of an answer, the partial export written), so no test depends on timing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studio.commands.stops import Stopped, StopSignals

REPO = Path(__file__).resolve().parents[1]


def _env(home: Path) -> dict:
    return {**os.environ, "STUDIO_HOME": str(home), "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": str(REPO)}


def _studio_with(hook: str, argv: list[str], home: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """`studio ARGV` in a new interpreter, after ``hook`` (Python code that patches the point where a
    signal is sent to the process itself)."""
    code = f"import os, signal, sys, time\n{hook}\nfrom studio.cli import main\nsys.exit(main({argv!r}))\n"
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(home), capture_output=True, text=True,
                          timeout=timeout)


def _clean_end(proc, code: int) -> str:
    why = f"rc={proc.returncode}\nstdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert proc.returncode == code, why
    assert "terminate called" not in proc.stderr and "Traceback" not in proc.stderr, why
    return why


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_dir):
    from test_export import train_run
    return train_run(tmp_path_factory.mktemp("stops"), tiny_dir, steps=3)


# ---- one stop counted once ------------------------------------------------------------------------

def test_the_same_signal_twice_within_a_second_is_one_stop():
    now = [100.0]
    recorded = StopSignals(raise_first=False, clock=lambda: now[0])
    recorded.handle(signal.SIGTERM)
    recorded.handle(signal.SIGTERM)            # timeout: to the process, then to its group
    assert recorded.received == [signal.SIGTERM]
    now[0] += 2.0
    recorded.handle(signal.SIGTERM)            # a real second stop, later
    assert recorded.received == [signal.SIGTERM, signal.SIGTERM]

    raising = StopSignals(clock=lambda: now[0])
    with pytest.raises(Stopped) as e:
        raising.handle(signal.SIGTERM)
    assert e.value.code == 143
    raising.handle(signal.SIGTERM)             # the same stop again: nothing more happens


@pytest.mark.slow
def test_one_sigterm_from_timeout_is_counted_once(tmp_path, tiny_dir, studio_home):
    """`timeout` relays its SIGTERM to the command and to the command's process group: two signals."""
    from test_cli_train_chat import write_config
    from test_training_job import write_data
    config = write_config(tmp_path, tiny_dir, write_data(tmp_path, n=10))
    out = tmp_path / "run"
    proc = subprocess.Popen(["timeout", "600", sys.executable, "-m", "studio.cli", "train", "--config", str(config),
                             "--max-steps", "100000", "--output", str(out)], cwd=REPO, env=_env(studio_home),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    seen = []
    try:
        deadline = time.time() + 300
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("step ") and not line.startswith("step 0/") or time.time() > deadline:
                break
        proc.send_signal(signal.SIGTERM)       # to timeout, which passes it on as it does at its deadline
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    why = f"stdout:\n{''.join(seen)[-1500:]}{stdout[-1500:]}\nstderr:\n{stderr[-3000:]}"
    assert proc.returncode == 143, why
    assert "Quit without saving" not in stderr and "Stopped:" in stdout, why
    state = json.loads((out / "state.json").read_text(encoding="utf-8"))
    assert state["state"] == "stopped" and state["finished"], why
    assert (out / "adapter" / "adapter_model.safetensors").is_file()


def test_a_run_stopped_before_training_suggests_nothing_that_fails(tmp_path):
    from studio.commands.train import next_steps
    from studio.runs import RunFolder

    class Job:
        state = "stopped"
        run_dir = tmp_path / "r"
        run = RunFolder(tmp_path / "r")

    Job.run.path.mkdir()
    lines = next_steps(Job)
    assert not any("studio chat" in x or "--resume" in x for x in lines)
    assert any("Nothing was trained yet" in x and str(Job.run.config_path) in x for x in lines)


# ---- eval -------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_stopped_eval_keeps_the_earlier_table_and_leaves_no_partial(run_dir, tmp_path, studio_home, sig, code):
    earlier = run_dir / "eval.jsonl"
    earlier.write_text('{"prompt": "earlier"}\n', encoding="utf-8")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"What is the warranty, case {i}?"}) + "\n" for i in range(40)))
    # the signal arrives while the second prompt is being answered, from inside the answer
    hook = ("import studio.inference as inf\n_real = inf.ChatSession.stream\n_n = [0]\n"
            "def stream(self, *a, **k):\n"
            "    for i, piece in enumerate(_real(self, *a, **k)):\n"
            "        if i == 0:\n"
            "            _n[0] += 1\n"
            f"            if _n[0] == 3: os.kill(os.getpid(), {int(sig)}); time.sleep(0.2)\n"
            "        yield piece\n"
            "inf.ChatSession.stream = stream\n")
    proc = _studio_with(hook, ["eval", "--runs", str(run_dir), "--prompts", str(prompts), "--max-new-tokens", "48"],
                        studio_home)
    why = _clean_end(proc, code)
    assert "Stopped after 1 of 40 prompts" in proc.stderr, why
    assert earlier.read_text(encoding="utf-8") == '{"prompt": "earlier"}\n'
    assert not (run_dir / "eval.jsonl.partial").exists()


# ---- chat --prompt ----------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_stop_during_a_chat_answer_ends_cleanly(run_dir, studio_home, sig, code):
    # The signal comes after the first piece of the answer, or, when the sampled answer of the tiny model is
    # shorter than that, after its last one: either way while the answer is being printed.
    hook = ("import studio.commands.chat as c\n_say = c._say\n"
            "def say(label, pieces):\n"
            "    def first_then_stop():\n"
            "        sent = False\n"
            "        for i, p in enumerate(pieces):\n"
            f"            if i == 1: os.kill(os.getpid(), {int(sig)}); time.sleep(0.2); sent = True\n"
            "            yield p\n"
            f"        if not sent: os.kill(os.getpid(), {int(sig)}); time.sleep(0.2)\n"
            "    return _say(label, first_then_stop())\n"
            "c._say = say\n")
    proc = _studio_with(hook, ["chat", "--run", str(run_dir), "--prompt", "What is the warranty?",
                               "--max-new-tokens", "300", "--temperature", "1.0"], studio_home)
    why = _clean_end(proc, code)
    assert "Stopped: the answer was cut off" in proc.stderr, why


# ---- export -----------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_stopped_export_removes_its_partial_file(run_dir, studio_home, sig, code):
    hook = ("import studio.export.merge as m\n_save = m.save_merged\n"
            "def save(model, tok, template, folder, run):\n"
            "    _save(model, tok, template, folder, run)\n"
            f"    os.kill(os.getpid(), {int(sig)}); time.sleep(0.5)\n"
            "m.save_merged = save\n")
    proc = _studio_with(hook, ["export", str(run_dir), "--to", "merged"], studio_home)
    why = _clean_end(proc, code)
    assert "Stopped: nothing was exported" in proc.stderr, why
    exports = studio_home / "exports"
    assert not list(exports.glob("*")) if exports.exists() else True, list(exports.iterdir())


@pytest.mark.slow
def test_a_sigterm_while_the_run_sets_up_suggests_only_what_works(tmp_path, tiny_dir, studio_home):
    """SIGTERM as soon as the run folder is made (while the model loads): whatever was saved by then,
    every command suggested at the end works on the files left behind."""
    from test_cli_train_chat import write_config
    from test_training_job import write_data
    config = write_config(tmp_path, tiny_dir, write_data(tmp_path, n=10))
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "studio.cli", "train", "--config", str(config),
                             "--max-steps", "100000", "--output", str(out)], cwd=REPO, env=_env(studio_home),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    stdout = first + stdout
    why = f"stdout:\n{stdout[-2000:]}\nstderr:\n{stderr[-2000:]}"
    assert first.startswith("Run folder:") and proc.returncode == 143, why
    assert "terminate called" not in stderr and "Traceback" not in stderr, why
    state = json.loads((out / "state.json").read_text(encoding="utf-8"))
    assert state["state"] == "stopped" and state["finished"], why
    from studio.cli import main
    if "studio chat --run" in stdout:
        assert main(["chat", "--run", str(out), "--prompt", "Hi?", "--max-new-tokens", "4"]) == 0, why
    if "studio train --resume" in stdout:
        from studio.training.resume import plan_resume
        assert plan_resume(out).step > 0, why
    if "Nothing was trained yet" in stdout:
        assert not (out / "adapter").exists() and "studio chat" not in stdout, why


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 0), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_stop_at_the_interactive_chat_prompt(run_dir, studio_home, sig, code):
    """Ctrl-C at `you:` leaves the chat as Ctrl-D does; SIGTERM (a service manager) ends it with 143."""
    proc = subprocess.Popen([sys.executable, "-m", "studio.cli", "chat", "--run", str(run_dir)], cwd=REPO,
                            env=_env(studio_home), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline, seen = time.time() + 120, ""
        while "Type a message" not in seen and time.time() < deadline:
            seen += proc.stderr.readline()
        time.sleep(1.0)                        # at input() by now
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    why = f"rc={proc.returncode}\nstdout:\n{stdout[-1000:]}\nstderr:\n{seen[-500:]}{stderr[-1500:]}"
    assert proc.returncode == code, why
    assert "Traceback" not in stderr and "terminate called" not in stderr, why
    if sig == signal.SIGTERM:
        assert "Stopped: the chat ended" in stderr, why
