"""Resume a run from its last complete checkpoint, and what a run folder records so it can be repeated.

    plan = plan_resume(run_dir)                       # raises ResumeError with a plain message
    get_manager().start(plan.cfg, **plan.start_kwargs())

A fresh run writes ``fingerprint.json`` next to its config: a hash of the prepared data (the exact
token ids and loss masks, so a changed file, template or max length all show), the row counts, the
chat template, the seed, the training-relevant settings, the package versions and the device.
Resuming re-prepares the data and compares: a changed file or setting is refused with a message that
names what differs, because the restored optimizer and data order would silently mean something else.

Checkpoints are the trainer's own (``checkpoints/checkpoint-N``: the LoRA weights, optimizer,
scheduler, RNG and trainer state, never the base model). A callback marks each one complete once the
trainer has written all of it (``COMPLETE_MARK``); a one-process run writes them in the background
(``background_save.py``: the mark written, then the folder renamed from ``.tmp-checkpoint-N``, which no
reader here lists). One without the mark was cut off mid-write and is
skipped with a note instead of being loaded, and removed only once the resume really starts, when no
process owns the run (``prepare_folder``). A checkpoint that has the mark but lacks a file or holds a
damaged one is skipped and named, never removed: it was complete once, and its other files may be
what someone needs.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ..config import StudioConfig
from ..runs import RunFolder

FINGERPRINT = "fingerprint.json"
COMPLETE_MARK = "studio-complete.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")

# Settings that do not change what is learned (where output goes, how often it is logged or saved,
# which kernels compute the same maths, how answers are generated afterwards).
IGNORED_SETTINGS = {"name", "training.output_dir", "training.logging_steps", "training.eval_steps",
                    "training.save_steps", "training.gradient_checkpointing", "training.attention",
                    "training.fused_kernels", "model.trust_remote_code", "training.report_to",
                    "training.master"}     # the main machine may have another address now; nnodes is compared
IGNORED_SECTIONS = {"generation"}


from ..errors import ResumeError


# ---- what a run records ----------------------------------------------------------------------

def data_hash(data: Any) -> str:
    """sha256 of the prepared rows (token ids and loss masks, training then validation rows)."""
    h = hashlib.sha256()
    for part, rows in (("train", data.train), ("validation", data.validation)):
        h.update(part.encode())
        for r in rows:
            h.update(json.dumps(_row_content(r), separators=(",", ":"), ensure_ascii=False).encode())
    return h.hexdigest()


def _row_content(r: Any) -> Any:
    """What a row trains on: token ids and loss mask of a conversation row (as runs have always recorded), every
    field but the row number of the other shapes (a GRPO prompt with its reference, a preference pair...)."""
    if hasattr(r, "labels"):
        return [list(r.input_ids), list(r.labels)]
    return {k: v for k, v in sorted(vars(r).items()) if k != "row"}


def relevant_settings(cfg: StudioConfig) -> dict:
    """The flat ``section.field -> value`` settings that change what a run learns."""
    out = {}
    for section, values in cfg.to_dict().items():
        if section in IGNORED_SECTIONS:
            continue
        if not isinstance(values, dict):
            if section not in IGNORED_SETTINGS:
                out[section] = values
            continue
        for name, value in values.items():
            key = f"{section}.{name}"
            if key not in IGNORED_SETTINGS:
                out[key] = value
    return out


def settings_hash(cfg: StudioConfig) -> str:
    return hashlib.sha256(json.dumps(relevant_settings(cfg), sort_keys=True, default=str).encode()).hexdigest()


def package_versions() -> dict:
    from importlib import metadata
    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "peft", "trl", "accelerate", "bitsandbytes", "datasets", "gguf"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def device_description() -> dict:
    import torch
    if torch.cuda.is_available():
        return {"device": "cuda", "name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count()}
    return {"device": "cpu", "name": platform.processor() or platform.machine(), "os": platform.platform()}


def make_fingerprint(cfg: StudioConfig, data: Any, extra: dict | None = None) -> dict:
    return {"data_hash": data_hash(data), "train_rows": len(data.train), "validation_rows": len(data.validation),
            "data_source": cfg.data.file, "template": data.template_name, "chat_template": data.chat_template,
            "seed": cfg.training.seed, "settings_hash": settings_hash(cfg), "settings": relevant_settings(cfg),
            "versions": package_versions(), "device": device_description(),
            "created": _dt.datetime.now().isoformat(timespec="seconds"), **(extra or {})}


def write_fingerprint(run: RunFolder, fp: dict) -> None:
    path = run.path / FINGERPRINT
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(fp, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    tmp.replace(path)


def read_fingerprint(run_dir: str | Path) -> dict | None:
    try:
        return json.loads((Path(run_dir) / FINGERPRINT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _show(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def setting_differences(before: dict, now: dict) -> list[str]:
    """'lora.r: 8 then, 16 now' for each relevant setting that differs."""
    out = []
    for key in sorted(set(before) | set(now)):
        a, b = before.get(key), now.get(key)
        if a != b:
            out.append(f"{key}: {_show(a)} then, {_show(b)} now")
    return out


# ---- checkpoints ------------------------------------------------------------------------------

class CompleteCheckpointMark(TrainerCallback):
    """Marks a checkpoint folder complete once the trainer has written every file of it."""

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:    # in a multi-GPU run, rank 0 writes the checkpoint's files
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.is_dir():
            (folder / COMPLETE_MARK).write_text(json.dumps({"step": state.global_step}), encoding="utf-8")


def checkpoints(run: RunFolder) -> list[tuple[int, Path]]:
    """(step, folder) of every checkpoint folder, oldest first, complete or not."""
    root = run.checkpoints_dir
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))]
    return sorted(found)


# The file a resume cannot do without: the trainer's state (step, logs, the data position). A truncated
# optimizer, schedule or random state is found by ``damaged_torch_file``.
REQUIRED_FILES = ("trainer_state.json",)


def checkpoint_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot be resumed from, or None when it can. ``INCOMPLETE`` when the trainer never
    finished writing it (no complete mark): only such a checkpoint may ever be removed."""
    from ..models.weights_check import damaged_files
    if not (folder / COMPLETE_MARK).is_file():
        return INCOMPLETE
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        return f"{', '.join(missing)} is missing from it"
    bad = damaged_files(folder)
    if bad:
        return "; ".join(f"{p.name} is damaged ({why})" for p, why in bad)
    return damaged_torch_file(folder)


INCOMPLETE = "incomplete"


def damaged_torch_file(folder: Path) -> str | None:
    """A truncated ``optimizer.pt`` / ``scheduler.pt`` / ``rng_state*.pth``, named (torch.save writes a zip
    archive, whose directory at the end is what a cut-off copy lacks)."""
    import zipfile
    for path in sorted(folder.glob("*.pt")) + sorted(folder.glob("*.pth")):
        try:
            ok = zipfile.is_zipfile(path)
        except OSError:
            ok = False
        if not ok:
            return f"{path.name} is damaged or incomplete ({_size(path)})"
    return None


def _size(path: Path) -> str:
    try:
        n = path.stat().st_size
    except OSError:
        return "unreadable"
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n:,} bytes"


def is_complete(folder: Path) -> bool:
    return checkpoint_problem(folder) is None


def last_complete_checkpoint(run: RunFolder) -> tuple[Path | None, list[str]]:
    """The newest complete checkpoint and a note on each newer one skipped, saying why. Nothing is
    removed here: a refused resume must leave every file as it was (see ``prepare_folder``)."""
    notes = []
    for step, folder in reversed(checkpoints(run)):
        why = checkpoint_problem(folder)
        if why is None:
            return folder, notes
        if why == INCOMPLETE:
            notes.append(f"The checkpoint at step {step} is incomplete (the run was cut off while writing it); "
                         "it was skipped.")
        else:
            notes.append(f"The checkpoint at step {step} ({folder}) cannot be used: {why}; it was skipped and "
                         "left as it is.")
    return None, notes


# ---- who owns a run ----------------------------------------------------------------------------

def _pid_alive(pid) -> bool:
    import os
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:            # alive, but another user's
        return True
    return True


def live_owner(run: RunFolder) -> dict | None:
    """The process training ``run`` now (``{"pid": ...}``), or None: its state.json says it is going and
    the process that wrote it is alive, or another process holds the device lock for this run."""
    from ..device import DeviceLock
    from .states import ACTIVE_STATES
    state = run.read_state() or {}
    if state.get("state") in ACTIVE_STATES and _pid_alive(state.get("pid")):
        return {"pid": state["pid"]}
    holder = DeviceLock().other_process_holder()
    if holder and holder.get("who") == "training" and holder.get("run") == run.name:
        return holder
    return None


def prepare_folder(run: RunFolder, checkpoint: Path) -> list[Path]:
    """When a resume really starts (nothing refused it): drop the metric rows after the checkpoint and remove
    the checkpoints after it that the trainer never finished writing (its rotation would count them, and
    they can never be loaded). Only provably incomplete ones go, and only when no other process owns the
    run. Returns the folders removed."""
    import os
    step = checkpoint_step(checkpoint)
    trim_metrics(run, step)
    owner = live_owner(run)
    if owner is not None and owner.get("pid") != os.getpid():
        return []
    removed = []
    for n, folder in checkpoints(run):
        if n > step and checkpoint_problem(folder) == INCOMPLETE:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def checkpoint_step(folder: Path) -> int:
    return int(_CHECKPOINT.match(folder.name).group(1))


# ---- the plan of a resume ----------------------------------------------------------------------

@dataclass
class ResumePlan:
    run: RunFolder
    cfg: StudioConfig
    checkpoint: Path
    step: int
    tokenizer: Any
    data: Any
    notes: list[str] = field(default_factory=list)
    # The adapter a run started from (``--from-run``): loaded again before the checkpoint, in this process or in
    # the worker (``--init-adapter``), as when the run started. DPO's and KTO's reference (that adapter, frozen as
    # "ref", methods/reference.py) does not depend on it: the checkpoint holds "ref" in its own subfolder, which the
    # Trainer loads back with the trained adapter, so a resume still measures against the SFT model when the other
    # run's folder is gone (None then; tests/test_worker_resume.py).
    init_adapter: Path | None = None

    def start_kwargs(self) -> dict:
        """``JobManager.start``'s arguments for this resume. A run in processes of its own (several GPUs,
        or isolated) loads its tokenizer and data there: what was prepared here only checked them."""
        from .distributed import plan_for_start
        kw: dict = {"run_dir": self.run.path, "resume_from": self.checkpoint}
        if self.init_adapter is not None:
            kw["init_adapter"] = self.init_adapter
        if not plan_for_start(self.cfg).subprocess:
            kw.update(tokenizer=self.tokenizer, data=self.data)
        return kw


def plan_resume(run_dir: str | Path, tokenizer: Any = None, data: Any = None) -> ResumePlan:
    """Check that ``run_dir`` can be resumed and prepare what the job needs; raise ``ResumeError`` if not.

    The data is prepared again from the config (the same file, template and split seed) and must hash
    the same as when the run started; the run's config.yaml must not have changed in a setting that
    matters. Neither check loads the model."""
    run = RunFolder(run_dir)
    if not run.config_path.is_file():
        raise ResumeError("{path} is not a run folder (it has no config.yaml).", code="run.not_a_run", path=str(run.path))
    cfg = run.config()
    state = run.read_state() or {}
    if state.get("state") == "done":
        raise ResumeError("The run {name} already finished all its steps; nothing is left to resume.",
                          code="resume.finished", name=run.name)
    if cfg.training.nnodes > 1:
        # The other machines' workers would start over while rank 0 goes on (their parts of a checkpoint,
        # e.g. rng_state_1.pth, stayed on them): refused rather than a run whose ranks disagree on the step.
        raise ResumeError("The run {name} trained on {nodes} machines (training.nnodes); resuming a run of several "
                          "machines is not supported yet.", code="resume.several_machines", name=run.name,
                          nodes=cfg.training.nnodes)
    fp = read_fingerprint(run.path)
    if fp is None:
        raise ResumeError("The run {name} has no {file} (it was made before runs recorded their data and settings), so "
                          "a resume could not be checked.", code="resume.no_fingerprint", name=run.name, file=FINGERPRINT)
    # A setting added since the run started (training.method) had its default then: that is how it trained.
    before = {**relevant_settings(StudioConfig()), **fp.get("settings", {})}
    diffs = setting_differences(before, relevant_settings(cfg))
    if diffs:
        raise ResumeError("The settings of {name} changed since it started, so it cannot be resumed: {changes}.",
                          code="resume.settings_changed", name=run.name, changes="; ".join(diffs))
    owner = live_owner(run)
    if owner is not None:
        raise ResumeError("The run {name} is still training (process {pid}); a run can be resumed only once it has "
                          "stopped. Nothing was changed.", code="resume.running", name=run.name, pid=owner.get("pid"))
    folder, notes = last_complete_checkpoint(run)
    if folder is None:
        raise ResumeError("The run {name} has no complete checkpoint to resume from{notes}.", code="resume.no_checkpoint",
                          name=run.name, notes=f" ({' '.join(notes)})" if notes else "")
    if tokenizer is None:
        from ..models.load import load_tokenizer
        tokenizer = load_tokenizer(cfg.model)
    if data is None:
        from ..data.pipeline import prepare
        from .methods import of
        shape = of(cfg).DATA
        data = (prepare(cfg.data, tokenizer, cfg.training.seed) if shape == "conversation"
                else prepare(cfg.data, tokenizer, cfg.training.seed, shape=shape))
    now = data_hash(data)
    if now != fp.get("data_hash"):
        counts = (f"{fp.get('train_rows')} training and {fp.get('validation_rows')} validation rows then, "
                  f"{len(data.train)} and {len(data.validation)} now")
        raise ResumeError("The training data of {name} ({file}) is not what the run started with ({counts}; the "
                          "prepared text or tokens differ). Resuming would continue on other data.",
                          code="resume.data_changed", name=run.name, file=cfg.data.file, counts=counts)
    start = (fp.get("started_from") or {}).get("adapter")
    init_adapter = Path(start) if start and Path(start).is_dir() else None
    return ResumePlan(run, cfg, folder, checkpoint_step(folder), tokenizer, data, notes, init_adapter)


def trim_metrics(run: RunFolder, step: int) -> None:
    """Drop the metric rows logged after ``step`` (the resumed run logs those steps again)."""
    path = run.metrics_path
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue                 # a half-written last line of a crash
        if int(row.get("step", 0)) <= step:
            kept.append(line)
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    tmp.replace(path)
