"""A resume never destroys what was saved: a refused ``studio train --resume`` leaves every checkpoint as it
was, a run still training elsewhere is refused before anything is touched, and a checkpoint with a damaged
file is named and skipped for the complete one before it (issue 18, "Lost" and "Misleading")."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from studio.cli import main
from test_resume import _run, _stopped_run
from tiny import tiny_tokenizer

REPO = Path(__file__).resolve().parents[1]


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_refused_resume_deletes_no_checkpoint(tmp_path, studio_home, capsys):
    _, job = _stopped_run(tmp_path, tiny_tokenizer(), at=4, save_steps=2)
    ckpts = job.run_dir / "checkpoints"
    folders = sorted(p.name for p in ckpts.glob("checkpoint-*"))
    assert len(folders) >= 2
    for folder in ckpts.glob("checkpoint-*"):      # every checkpoint lacks its trainer state
        (folder / "trainer_state.json").unlink()
    before = _hashes(job.run_dir)
    assert main(["train", "--resume", str(job.run_dir)]) == 2
    err = capsys.readouterr().err
    assert "no complete checkpoint" in err and "trainer_state.json is missing" in err
    assert "cut off while writing" not in err
    assert sorted(p.name for p in ckpts.glob("checkpoint-*")) == folders
    assert _hashes(job.run_dir) == before


def test_resuming_a_run_that_is_still_training_elsewhere_touches_nothing(tmp_path, studio_home, capsys):
    _, job = _stopped_run(tmp_path, tiny_tokenizer(), at=4, save_steps=2)
    ckpts = job.run_dir / "checkpoints"
    # The live run is writing its next checkpoint: no complete mark yet.
    writing = ckpts / "checkpoint-6"
    writing.mkdir()
    (writing / "adapter_model.safetensors").write_bytes(b"\0" * 64)
    state = json.loads((job.run_dir / "state.json").read_text())
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from studio.device import DeviceLock; "
         f"DeviceLock().acquire('training', run={job.run_dir.name!r}); print('held', flush=True); time.sleep(600)"],
        cwd=REPO, env={**os.environ, "STUDIO_HOME": str(studio_home)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = _hashes(job.run_dir)
        # Seen through the device lock (state.json still says stopped) ...
        assert main(["train", "--resume", str(job.run_dir)]) == 2
        err = capsys.readouterr().err
        assert "still training" in err and f"process {holder.pid}" in err
        assert _hashes(job.run_dir) == before
        # ... and through state.json's live process alone (below).
    finally:
        holder.kill()
        holder.wait()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        (job.run_dir / "state.json").write_text(json.dumps({**state, "state": "training", "pid": sleeper.pid}))
        before = _hashes(job.run_dir)
        assert main(["train", "--resume", str(job.run_dir)]) == 2
        assert "still training" in capsys.readouterr().err
        assert _hashes(job.run_dir) == before and writing.is_dir()
    finally:
        sleeper.kill()
        sleeper.wait()
    # Once no process owns it, the unfinished checkpoint is removed when the resume starts, not before.
    from studio.training.resume import plan_resume
    plan = plan_resume(job.run_dir, tokenizer=tiny_tokenizer())
    assert plan.step == 5 and writing.is_dir() and any("step 6 is incomplete" in n for n in plan.notes)
    from studio.training import TrainingJob
    from tiny import tiny_model
    tok = tiny_tokenizer()
    resumed = TrainingJob(plan.cfg, job.run_dir, model=tiny_model(tok), tokenizer=tok, data=plan.data,
                          keep_model=False, resume_from=plan.checkpoint)
    assert not writing.exists() and (ckpts / "checkpoint-5").is_dir()
    resumed.start()
    assert resumed.join(120) and resumed.state == "done", resumed.message


def test_a_truncated_optimizer_file_is_named_and_the_older_checkpoint_used(tmp_path, studio_home):
    from studio.training.resume import plan_resume

    tok = tiny_tokenizer()
    _, job = _stopped_run(tmp_path, tok, at=4, save_steps=2)
    ckpts = job.run_dir / "checkpoints"
    optimizer = ckpts / "checkpoint-5" / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:200])
    plan = plan_resume(job.run_dir, tokenizer=tok)
    assert plan.step == 4
    note = " ".join(plan.notes)
    assert "step 5" in note and "optimizer.pt is damaged or incomplete" in note and "left as it is" in note
    resumed = _run(plan.cfg, job.run_dir, tok, data=plan.data, resume_from=plan.checkpoint)
    assert resumed.state == "done", resumed.message
