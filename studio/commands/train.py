"""``studio train``: fine-tune from the command line with the same engine and config as the app.

    studio train --preset cpu-demo --max-steps 30 --output demo     a run named demo, in the workspace
    studio train --preset cpu-demo lora.r=32 training.learning_rate=1e-4 data.file=my.jsonl
    studio train --config my-run.yaml --data my.jsonl --model Qwen/Qwen2.5-0.5B-Instruct
    studio train --config demo                           repeat a run (its name, folder or config.yaml)
    studio train --resume demo                           go on from the run's last complete checkpoint
    studio train --extend demo --max-steps 50            a new run starting from the run's adapter
    studio train --config big.yaml --gpus 2 --strategy fsdp   one run on two GPUs (one process each)
    studio train --config big.yaml --nnodes 2 --node-rank 0 --master 192.168.1.10:29500   two machines: the main one
    studio train --nnodes 2 --node-rank 1 --master 192.168.1.10:29500   ... and the other (its settings come from the main one)

Shows one progress line (step, loss, ETA) and a summary at the end. Ctrl-C (SIGINT) and SIGTERM stop
like the stop button: the current step ends, the adapter trained so far is saved, state.json is
completed, and the exit code is 130 (SIGINT) or 143 (SIGTERM). A second signal quits at once without
saving; the same signal again within a second is the same stop (``timeout`` sends its SIGTERM to the
command and to its process group: see studio/commands/stops.py). Exit codes: 0 done, 1 failed, 2 bad settings (or the device is busy), 130/143 stopped.

Why the signals only set a flag: on Python 3.11, a KeyboardInterrupt raised while the main thread is
inside ``Thread.join`` makes the Thread object believe the still-running thread has ended (CPython's
bpo-45274 handling releases the running thread's own state lock). The main thread then (a) spun in
``join(timeout)`` calls that returned at once, starving the training thread of the GIL (a 1 s step
took 74 s), and (b) returned while the training thread was still freeing the model and writing
state.json, so the interpreter shut down with that daemon thread inside torch's C++ code: "terminate
called without an active exception", SIGABRT, state.json without its end time. So the handlers raise
nothing: they record the signal, the main thread polls for it between checks of the job, and the
process ends only after the training thread has really ended. The training thread (and the native
threads torch starts from it, which inherit the mask) block SIGINT/SIGTERM, so the kernel delivers
them to the main thread.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from ..config import StudioConfig, merge
from ..errors import StudioError
from ..runs import find_run, is_bare_name
from . import report
from .fields import HelpFormatter, add_settings, overrides
from .stops import EXIT_CODES, STOP_SIGNALS, StopSignals


def add_parser(sub):
    p = sub.add_parser("train", help="fine-tune a model (LoRA / QLoRA) and save the adapter",
                       formatter_class=HelpFormatter,
                       usage="studio train [--preset P | --config FILE | --resume RUN_DIR | --extend RUN_DIR] "
                             "[KEY=VALUE ...] [--SECTION.NAME VALUE ...]",
                       description="Fine-tune a model with LoRA or QLoRA. Settings come from a preset or a "
                                   "config file (see `studio presets`); KEY=VALUE settings and the options below "
                                   "override them, e.g. `studio train --preset cpu-demo lora.r=32 "
                                   "training.learning_rate=1e-4 data.file=my.jsonl`.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", help="start from this preset (e.g. cpu-demo)")
    src.add_argument("--config", help="start from this YAML config file, or repeat a run (its folder or name)")
    src.add_argument("--resume", metavar="RUN_DIR",
                     help="resume a stopped, failed or interrupted run from its last complete checkpoint, in its "
                          "own folder (optimizer, schedule, random state and data order restored)")
    src.add_argument("--extend", metavar="RUN_DIR",
                     help="train a finished run further: a new run folder that starts from its adapter "
                          "(say how long with --max-steps or --epochs)")
    p.add_argument("--from-run", metavar="RUN_DIR",
                   help="start from a finished run's adapter (e.g. an SFT run's, then --training.method dpo on "
                        "preference data): its base model, LoRA settings and template are kept")
    p.add_argument("--epochs", type=float, help="train this many epochs (the same as training.epochs=N; with --extend: "
                                                "this many more)")
    # Short forms of the settings used most (kept from before the settings were generated).
    for flag, key in SHORT_FLAGS.items():
        p.add_argument(flag, default=None, help=f"the same as {key}=VALUE")
    p.add_argument("--name", help="a name for the run (used in the folder name)")
    p.add_argument("--isolate", action="store_true",
                   help="the same as training.isolate=true: a one-GPU run in a separate process")
    add_settings(p)
    return p


# flag -> setting; ``--max-steps`` with ``--extend`` says how many more steps to train.
SHORT_FLAGS = {"--method": "training.method", "--model": "model.source", "--data": "data.file", "--max-steps": "training.max_steps",
               "--output": "training.output_dir", "--gpus": "training.gpus", "--strategy": "training.strategy",
               "--nnodes": "training.nnodes", "--node-rank": "training.node_rank", "--master": "training.master"}


def _settings(args) -> dict:
    """Every setting given on the command line (short flags, --section.name options, KEY=VALUE)."""
    out = overrides(args)
    for flag, key in SHORT_FLAGS.items():
        value = getattr(args, flag[2:].replace("-", "_"), None)
        if value is not None:
            section, name = key.split(".")
            out.setdefault(section, {}).setdefault(name, value)
    if args.name:
        out["name"] = args.name
    if getattr(args, "isolate", False):
        out.setdefault("training", {}).setdefault("isolate", True)
    out_dir = out.get("training", {}).get("output_dir")
    if isinstance(out_dir, str) and is_bare_name(out_dir):
        # A name, like the app's output folder: the run goes into the workspace, where the app lists it.
        from ..jobs import workspace_output_dir
        out["training"]["output_dir"] = workspace_output_dir(out_dir)
    if getattr(args, "epochs", None) is not None and not getattr(args, "extend", None):
        out.setdefault("training", {}).setdefault("epochs", args.epochs)
    return out


def _length_from_epochs(cfg: StudioConfig, settings: dict) -> StudioConfig:
    """Epochs asked for on the command line decide the length: a max_steps that came from the preset or the
    config would otherwise win without a word (max_steps > 0 ignores epochs)."""
    from ..errors import ConfigError
    training = settings.get("training", {})
    if "epochs" not in training or cfg.training.max_steps == 0:
        return cfg
    if "max_steps" in training:
        raise ConfigError("Both training.epochs ({epochs}) and training.max_steps ({steps}) were given; a run's length "
                          "is one or the other.", code="config.epochs_and_steps", epochs=cfg.training.epochs,
                          steps=cfg.training.max_steps)
    print(f"Note: training for {cfg.training.epochs:g} epochs as asked; the {cfg.training.max_steps} steps "
          "(training.max_steps) of the preset or config are not used.")
    return merge(cfg, {"training": {"max_steps": 0}})


def _resume_or_extend(args) -> tuple[StudioConfig, dict]:
    """The config and the job's extra arguments for --resume / --extend (ResumeError when refused)."""
    from ..errors import ResumeError
    settings = _settings(args)
    if getattr(args, "from_run", None):
        raise ResumeError("--from-run starts a new run from another run's adapter; it does not go with --resume or "
                          "--extend.", code="from_run.with_resume")
    if args.resume:
        if settings or args.epochs is not None:
            raise ResumeError("--resume continues the run exactly as it was set up; it takes no other settings.",
                              code="resume.no_settings")
        from ..training.resume import plan_resume
        plan = plan_resume(find_run(args.resume))
        for note in plan.notes:
            print(f"Note: {note}")
        print(f"Resuming {plan.run.name} from step {plan.step}.")
        return plan.cfg, plan.start_kwargs()
    from ..training.extend import plan_extend
    training = settings.get("training", {})
    extra = {k for k in training if k not in ("max_steps", "epochs", "output_dir")} | set(settings) - {"training", "name"}
    if extra:
        raise ResumeError("--extend continues the run with its own settings; only how long to train "
                          "(training.max_steps, training.epochs), training.output_dir and name can be given.",
                          code="extend.settings")
    merged = merge(StudioConfig(), {"training": training})     # the values typed, checked as settings
    cfg, origin = plan_extend(find_run(args.extend), merged.training.max_steps if "max_steps" in training else None,
                              args.epochs or (merged.training.epochs if "epochs" in training else None),
                              merged.training.output_dir or None)
    if "name" in settings:
        cfg = merge(cfg, {"name": settings["name"]})
    return cfg, {"init_adapter": origin["extended_from"]["adapter"], "origin": origin}


def _is_run_config(path: str, cfg: StudioConfig) -> bool:
    from pathlib import Path
    out = cfg.training.output_dir
    try:
        return bool(out) and Path(out).expanduser().resolve() == Path(path).expanduser().resolve().parent
    except OSError:
        return False


def build_config(args) -> StudioConfig:
    if args.preset:
        from ..presets import load_preset
        cfg = load_preset(args.preset)
    elif args.config:
        path = str(find_run(args.config))
        if Path(path).is_dir() and (Path(path) / "config.yaml").is_file():
            path = str(Path(path) / "config.yaml")      # a run folder (or a run's name): repeat that run
        cfg = StudioConfig.load(path)
        if _is_run_config(path, cfg):
            # A run's own config.yaml names that run's folder; repeating it makes a new one.
            cfg = merge(cfg, {"training": {"output_dir": ""}})
    else:
        cfg = StudioConfig()
    # Types are checked here; the settings as a whole are validated once, when the run starts (jobs.py).
    settings = _settings(args)
    return _length_from_epochs(merge(cfg, settings), settings)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _num(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


class ProgressLine:
    """One line redrawn with \\r on a terminal; one line per logged step when output goes to a file."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout      # looked up now: sys.stdout may have been replaced since import
        self.tty = self.stream.isatty()
        self.width = 0
        self.last_step = -1

    def draw(self, job) -> None:
        p = job.progress
        row = job.metrics.last("train") or {}
        # Off a terminal, one line per logged row (so each line shows that step's own loss).
        logged = row.get("step", 0)
        if not p.total_steps or (not self.tty and logged == self.last_step):
            return
        self.last_step = logged
        step = p.step if self.tty else logged
        fraction = min(1.0, step / p.total_steps)
        filled = int(20 * fraction)
        parts = [f"step {step}/{p.total_steps} [{'#' * filled}{'-' * (20 - filled)}] {fraction:4.0%}",
                 f"loss {_num(p.last_loss)}"]
        if p.last_eval_loss is not None:
            parts.append(f"eval {_num(p.last_eval_loss)}")
        parts.append(f"ETA {_clock(p.eta_s)}")
        if row.get("tokens_per_sec"):
            parts.append(f"{row['tokens_per_sec']:.0f} tok/s")
        line = "  ".join(parts)
        if self.tty:
            self.stream.write("\r" + line.ljust(self.width))
            self.width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()
        self.width = 0


def _context_warnings(cfg) -> list[str]:
    """E.g. a maximum length past the model's context (the model is on disk by now: its config says)."""
    from ..config_checks import context_warnings
    try:
        from ..models.size import facts_for
        facts = facts_for(cfg.model) or {}
    except Exception:  # a warning is optional; the run itself reports real problems
        return []
    return context_warnings(cfg, facts.get("context_length"))


def _announce(job) -> None:
    i = job.info
    where = i.get("device")
    if i.get("processes", 1) > 1:
        where = f"{i['processes']} GPUs ({str(i.get('strategy', '')).upper()}, one process each)"
    print(f"Training on {where} ({i.get('precision')}, optimizer {i.get('optimizer')}): "
          f"{i.get('train_rows')} training rows, {i.get('validation_rows')} for validation, "
          f"{i.get('trainable_params', 0):,} trainable parameters.")
    for note in i.get("notes", []):
        print(f"Note: {note}")
    for warning in _context_warnings(job.cfg):
        print(f"Warning: {warning}")
    print(f"Log: {job.run.log_path}")


def _summary(job, wall: float) -> None:
    r = job.result or {}
    first = job.metrics.rows("train")[:1]
    print(f"{job.state.capitalize()}: {job.message}")
    print(f"  steps          {r.get('steps', job.progress.step)} of {r.get('total_steps', job.progress.total_steps)}")
    loss = _num(r.get("train_loss"))
    if first:
        loss += f" (first logged step: {_num(first[0]['loss'])})"
    print(f"  train loss     {loss}")
    print(f"  eval loss      {_num(r.get('eval_loss'))}")
    tps = r.get("tokens_per_sec")
    print(f"  tokens/s       {'n/a' if tps is None else f'{tps:.0f}'} (non-padding tokens, over the whole run "
          "with its evaluations)")
    print(f"  time           {_clock(wall)} in all, {_clock(r.get('train_runtime_s'))} training")
    scores = r.get("scores") or {}
    if (scores.get("tuned") or {}).get("scored"):
        tuned, base = scores["tuned"], scores["base"]
        print(f"  facts right    {tuned['right']} of {tuned['scored']} held-out questions "
              f"(base {base['right']} of {base['scored']}); answers in {job.run_dir / 'eval.jsonl'}")
    if (r.get("preference") or {}).get("sentence"):
        print(f"  preference     {r['preference']['sentence']}")
    print(f"  adapter        {r.get('adapter_dir') or 'none (nothing was saved)'}")
    print(f"  run folder     {job.run_dir}")
    for line in next_steps(job):
        print(line)


def next_steps(job) -> list[str]:
    """The commands that work on this run now: chat needs an adapter, resume a complete checkpoint (a
    run stopped before its first step has neither, and both commands would fail)."""
    from ..training.resume import last_complete_checkpoint
    lines = []
    if job.run.has_adapter():
        lines.append(f"Chat with it:    studio chat --run {job.run_dir} --compare")
    if job.state == "stopped":
        if last_complete_checkpoint(job.run)[0] is not None:
            lines.append(f"Resume it:       studio train --resume {job.run_dir}")
        elif not job.run.has_adapter():
            lines.append(f"Nothing was trained yet. Start it again: studio train --config {job.run.config_path}")
    return lines




def run(args) -> int:
    from ..jobs import get_manager

    start_kwargs: dict = {}
    try:
        if getattr(args, "resume", None) or getattr(args, "extend", None):
            cfg, start_kwargs = _resume_or_extend(args)
        else:
            cfg = build_config(args)
            if getattr(args, "from_run", None):
                from ..training.extend import plan_from_run
                cfg, origin = plan_from_run(find_run(args.from_run), cfg)
                start_kwargs = {"init_adapter": origin["started_from"]["adapter"], "origin": origin}
    except StudioError as e:     # a setting, a run that cannot resume, data that cannot be read any more...
        report(e)
        return 2
    t0 = time.monotonic()
    with _StopSignals() as signals:
        return _train(cfg, t0, get_manager(), signals, start_kwargs)


class _StopSignals(StopSignals):
    """SIGINT/SIGTERM recorded by handlers that raise nothing; ``wait`` returns the next one, or None."""

    def __init__(self):
        super().__init__(raise_first=False)

    @staticmethod
    def start_blocked(manager, cfg, start_kwargs: dict | None = None):
        """Start the job with the signals blocked: its thread and every thread started from it inherit that."""
        kwargs = {"keep_model": False, **(start_kwargs or {})}
        if not hasattr(signal, "pthread_sigmask"):
            return manager.start(cfg, **kwargs)
        old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            return manager.start(cfg, **kwargs)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _train(cfg, t0: float, manager, signals: _StopSignals, start_kwargs: dict | None = None) -> int:
    try:
        job = signals.start_blocked(manager, cfg, start_kwargs)
    except StudioError as e:     # a setting that cannot work, or the device is busy
        report(e)
        return 2
    helper = getattr(job, "helper", False)
    if helper:
        from ..training.nodes import launch_note
        print(launch_note(job.cfg, job.run_dir).removeprefix("studio: "))
    else:
        print(f"Run folder: {job.run_dir}")
    bar = ProgressLine()
    stop_code = 0
    last_message = ""
    announced = False
    # Until the training thread has ended: not only its state says so, also the model is freed and
    # state.json has its end time (an exit before that aborts inside torch).
    while job.active or job.thread_alive:
        signo = signals.wait(0.25)
        if signo is not None:
            code = EXIT_CODES.get(signo, 130)
            if stop_code:
                bar.end()
                print("Quit without saving.", file=sys.stderr)
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)   # at once, as promised; the run is listed as interrupted
            stop_code = code
            job.stop()
            bar.end()
            again = "Ctrl-C" if code == 130 else "another stop signal"
            print(f"Stopping after the current step and saving the adapter ({again} quits without saving)...",
                  file=sys.stderr)
            continue
        if not job.active:
            continue
        if job.state == "training" and not announced and job.info:
            _announce(job)
            announced = True
        if job.state == "training" and job.progress.total_steps:
            bar.draw(job)
        elif job.message != last_message:
            bar.end()
            print(job.message)
            last_message = job.message
    bar.draw(job)
    bar.end()
    if job.state == "failed":
        report(job.failure) if job.failure is not None else print(f"error: {job.message}", file=sys.stderr)
        return 1
    if helper:
        print(f"{job.state.capitalize()}: {job.message}\n  log            {job.run.log_path}")
    else:
        _summary(job, time.monotonic() - t0)
    return stop_code if stop_code and job.state == "stopped" else 0
