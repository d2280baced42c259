"""``studio train``: fine-tune from the command line with the same engine and config as the app.

    studio train --preset cpu-demo --max-steps 30 --output runs/demo
    studio train --config my-run.yaml --data my.jsonl --model Qwen/Qwen2.5-0.5B-Instruct

Shows one progress line (step, loss, ETA) and a summary at the end. Ctrl-C stops like the stop
button: the current step ends, the adapter trained so far is saved, and the exit code is 130.
A second Ctrl-C quits at once without saving. Exit codes: 0 done, 1 failed, 2 bad settings, 130 stopped.
"""

from __future__ import annotations

import sys
import time

from ..config import ConfigError, StudioConfig, merge


def add_parser(sub):
    p = sub.add_parser("train", help="fine-tune a model (LoRA / QLoRA) and save the adapter",
                       description="Fine-tune a model with LoRA or QLoRA. Settings come from a preset or a "
                                   "config file (see `studio presets`); the flags below override them.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", help="start from this preset (e.g. cpu-demo)")
    src.add_argument("--config", help="start from this YAML config file (e.g. a run's config.yaml)")
    p.add_argument("--model", help="base model: 'default', a Hub id, a folder or a .gguf file")
    p.add_argument("--data", help="training data: 'demo', a .jsonl/.json/.csv/.tsv/.parquet file or a Hub dataset id")
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    p.add_argument("--output", help="the run folder to create (default: a new folder in the studio's runs folder)")
    p.add_argument("--name", help="a name for the run (used in the folder name)")
    return p


def build_config(args) -> StudioConfig:
    if args.preset:
        from ..presets import load_preset
        cfg = load_preset(args.preset)
    elif args.config:
        cfg = StudioConfig.load(args.config)
    else:
        cfg = StudioConfig()
    overrides: dict = {}
    if args.model:
        overrides.setdefault("model", {})["source"] = args.model
    if args.data:
        overrides.setdefault("data", {})["file"] = args.data
    if args.max_steps is not None:
        overrides.setdefault("training", {})["max_steps"] = args.max_steps
    if args.output:
        overrides.setdefault("training", {})["output_dir"] = args.output
    if args.name:
        overrides["name"] = args.name
    return merge(cfg, overrides).validate()


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

    def __init__(self, stream=sys.stdout):
        self.stream = stream
        self.tty = stream.isatty()
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


def _announce(job) -> None:
    i = job.info
    print(f"Training on {i.get('device')} ({i.get('precision')}, optimizer {i.get('optimizer')}): "
          f"{i.get('train_rows')} training rows, {i.get('validation_rows')} for validation, "
          f"{i.get('trainable_params', 0):,} trainable parameters.")
    for note in i.get("notes", []):
        print(f"Note: {note}")
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
    print(f"  adapter        {r.get('adapter_dir')}")
    print(f"  run folder     {job.run_dir}")
    print(f"Chat with it:    studio chat --run {job.run_dir} --compare")


def run(args) -> int:
    from ..jobs import JobBusy, get_manager

    try:
        cfg = build_config(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    try:
        job = get_manager().start(cfg, keep_model=False)
    except (ConfigError, JobBusy) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"Run folder: {job.run_dir}")
    bar = ProgressLine()
    interrupted = False
    last_message = ""
    announced = False
    while True:
        try:
            while not job.join(timeout=0.25):
                if job.state == "training" and not announced and job.info:
                    _announce(job)
                    announced = True
                if job.state == "training" and job.progress.total_steps:
                    bar.draw(job)
                elif job.message != last_message:
                    bar.end()
                    print(job.message)
                    last_message = job.message
            break
        except KeyboardInterrupt:
            if interrupted:
                bar.end()
                print("Quit without saving.", file=sys.stderr)
                return 130
            interrupted = True
            job.stop()
            bar.end()
            print("Stopping after the current step and saving the adapter (Ctrl-C again quits without saving)...",
                  file=sys.stderr)
    bar.draw(job)
    bar.end()
    if job.state == "failed":
        print(f"error: {job.message}", file=sys.stderr)
        if job.hint:
            print(f"hint: {job.hint}", file=sys.stderr)
        return 1
    _summary(job, time.monotonic() - t0)
    return 130 if interrupted and job.state == "stopped" else 0
