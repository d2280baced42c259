"""One training process of a run started by the subprocess runner (launcher.py):

    python -m studio.training.worker --run-dir RUN [--resume-from CKPT] [--init-adapter DIR] [--origin JSON]

It trains the run's own ``config.yaml`` through ``TrainingJob`` (the same path as a run in the app's
thread). Started alone it is an isolated one-GPU run; started by ``torch.distributed.run`` it is one
rank of a DDP or FSDP run (RANK, WORLD_SIZE, LOCAL_RANK and STUDIO_STRATEGY in its environment).

- Rank 0 writes the run folder (state.json, metrics.jsonl, train.log, adapter/) exactly as a thread
  job does; the other ranks keep their job's files in a scratch folder that is deleted at exit.
  Checkpoints are the Trainer's, in the run's checkpoints/ folder.
- SIGTERM / SIGINT stop the run: while loading, at once (nothing to save); while training, every rank
  stops after the same optimizer step (they agree through an all-reduce, since ranks that stopped
  at different steps would wait on each other's collectives forever), saves a checkpoint and rank 0
  saves the adapter. Later signals are ignored: saving must finish.
- The device lock is the parent's (it holds it for the whole run); workers take none.
- A failure is printed to stderr (the run's train.log) with a ``STUDIO-RANK-ERROR`` line naming the
  rank, which the parent quotes in the run's message; the exit code is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

from transformers import TrainerCallback

from ..config import StudioConfig, merge
from ..runs import RunFolder
from . import distributed as dist_info

ERROR_MARK = "STUDIO-RANK-ERROR"
MEMORY_MARK = "STUDIO-RANK-MEMORY"
LOADING, TRAINING, FINISHING = "loading", "training", "finishing"


class _RankFolder(RunFolder):
    """A rank other than 0: its job's state, metrics and log go to a scratch folder, never the run's;
    the trainer's checkpoints still go to the run's checkpoints/ (FSDP saves them collectively)."""

    def __init__(self, run: RunFolder, scratch: Path):
        super().__init__(scratch)
        self._run = run

    @property
    def checkpoints_dir(self) -> Path:
        return self._run.checkpoints_dir


class StopRequests:
    """SIGTERM/SIGINT handling of one worker (see the module docstring)."""

    def __init__(self):
        self.requested = threading.Event()
        self.phase = LOADING
        self.link = None        # node_link.NodeLink on a run of several machines

    def from_main(self) -> None:
        """Another machine: the main machine stopped the run (called from the link's thread)."""
        from .node_link import STOPPED_MARK
        if self.phase == LOADING:
            print(f"{STOPPED_MARK}: the main machine stopped the run while loading; nothing to save.",
                  file=sys.stderr, flush=True)
            os._exit(0)
        self.requested.set()

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signo, frame) -> None:
        if self.phase == LOADING:
            if self.link is not None and dist_info.is_main():
                self.link.announce_stop()
            print(f"[rank {dist_info.rank()}] Stopped while loading; nothing to save.", file=sys.stderr, flush=True)
            os._exit(128 + signo)
        self.requested.set()


class SyncedStop(TrainerCallback):
    """Turns a stop request of any rank into a stop of every rank after the same optimizer step.

    At each step's end the ranks all-reduce (max) their request flag; once it is set the job's own
    stop is called on every rank, and the job's StopCallback ends training at the next step's
    beginning, saving a checkpoint there, the same on every rank."""

    def __init__(self, requests: StopRequests):
        self.requests = requests
        self.job = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.requests.phase = TRAINING

    def on_train_end(self, args, state, control, **kwargs):
        self.requests.phase = FINISHING

    def on_step_end(self, args, state, control, **kwargs):
        if self.job is None or self.job.stop_requested:
            return
        flag = self.requests.requested.is_set()
        if dist_info.world_size() > 1:
            import torch
            import torch.distributed as dist
            if dist.is_available() and dist.is_initialized():
                device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else "cpu"
                t = torch.tensor([1 if flag else 0], device=device)
                dist.all_reduce(t, op=dist.ReduceOp.MAX)
                flag = bool(t.item())
        if flag:
            if self.requests.link is not None and dist_info.is_main():
                self.requests.link.announce_stop()      # the other machines' messages say who stopped it
            self.job.stop()
            self.requests.phase = FINISHING


def _setup_device() -> None:
    """This rank's GPU as the current device (bitsandbytes quantizes onto it, NCCL talks from it), and
    the optional memory cap of STUDIO_GPU_MEMORY_CAP_GB (a smaller card inside a big one)."""
    import torch
    if not torch.cuda.is_available():
        return
    torch.cuda.set_device(dist_info.local_rank())
    cap = os.environ.get(dist_info.CAP_ENV, "").strip()
    if cap:
        total = torch.cuda.get_device_properties(dist_info.local_rank()).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, float(cap) * 2**30 / total), dist_info.local_rank())


def _sharded_loading(quantization: str) -> None:
    """transformers reads these while loading: with FSDP only rank 0 reads a 16-bit model's weights
    from disk; the others get them from it when FSDP syncs the module states. A 4-bit model is
    loaded and quantized by every rank onto its own GPU, as on one GPU, and sharded after."""
    if dist_info.sharded() and quantization == "none":
        os.environ.setdefault("ACCELERATE_USE_FSDP", "true")
        os.environ.setdefault("FSDP_CPU_RAM_EFFICIENT_LOADING", "true")


def _job_class():
    from .job import TrainingJob

    class WorkerJob(TrainingJob):
        """A TrainingJob that saves the adapter once, on rank 0; with FSDP from the Trainer's own last
        checkpoint (whose adapter_model.safetensors the Trainer gathered from every rank's shards)."""

        def _save_adapter(self, peft_model, tokenizer, chat_template: str) -> None:
            if not dist_info.is_main():
                return
            if not dist_info.sharded():
                return super()._save_adapter(peft_model, tokenizer, chat_template)
            save_adapter_from_checkpoint(self.run, tokenizer, chat_template)

    return WorkerJob


def save_adapter_from_checkpoint(run: RunFolder, tokenizer, chat_template: str) -> None:
    """adapter/ from the newest checkpoint's PEFT files (plain adapter_model.safetensors +
    adapter_config.json), written atomically like TrainingJob's own save."""
    from .resume import checkpoints
    found = [p for _, p in checkpoints(run) if (p / "adapter_model.safetensors").is_file()]
    if not found:
        raise RuntimeError("The trainer wrote no checkpoint with the adapter, so there is no adapter to save.")

    from ..models.lora import converts_on_save

    def fill(folder: Path) -> None:
        for name in ("adapter_model.safetensors", "adapter_config.json"):
            shutil.copy2(found[-1] / name, folder / name)
        if converts_on_save(run.config().lora):      # PiSSA / OLoRA: for the original base, as a one-GPU run saves
            from .initial_adapter import convert_folder
            convert_folder(folder, run.path)
    run.write_adapter(fill, tokenizer, chat_template)


def _join_machines(run: RunFolder, requests: StopRequests):
    """The config this rank trains: the run's own, or on another machine of a run of several, the main
    machine's (node_link.py), once this machine is found to have what the run needs."""
    from .node_link import NodeLink, differences
    link = requests.link = NodeLink.open(on_stop=requests.from_main)
    if link is not None:
        _LINKS.append(link)
    cfg = run.config()
    if link is None:
        return cfg
    from .nodes import JOIN_TIMEOUT_S
    if dist_info.is_main():
        data = Path(cfg.data.file).expanduser()
        if cfg.data.file and data.is_file():     # the other machines read it at the same (absolute) path
            cfg = merge(cfg, {"data": {"file": str(data.resolve())}})
        link.share_config(cfg.to_yaml(), cfg.data.file)
        link.start()
        return cfg
    link.start()
    text, facts = link.receive_config(JOIN_TIMEOUT_S)
    cfg = StudioConfig.from_yaml(text, "the main machine's settings")
    problems = differences(facts, cfg.data.file)
    if problems:
        raise RuntimeError(f"machine {dist_info.node_rank() + 1} cannot join the run: {'; '.join(problems)}.")
    if cfg.training.strategy in ("ddp", "fsdp"):       # as the main machine decided
        os.environ[dist_info.STRATEGY_ENV] = cfg.training.strategy
    return cfg


def _report_failure(job, folder: RunFolder) -> None:
    """The failure in the run's train.log (this process's stderr): the marker line the parent quotes,
    then the traceback the job wrote to its own log (a scratch log on ranks other than 0)."""
    r, n = dist_info.rank(), dist_info.world_size()
    print(f"{ERROR_MARK} rank={r} of {n}: {job.error or job.message}", file=sys.stderr, flush=True)
    if r != 0:
        try:
            text = folder.log_path.read_text(encoding="utf-8", errors="replace")
            tail = text[text.rfind("The run failed:"):] if "The run failed:" in text else text[-4000:]
            print(f"[rank {r}] {tail}", file=sys.stderr, flush=True)
        except OSError:
            pass


def _report_memory() -> None:
    """Each rank's own peak GPU memory, one line in train.log (rank 0's is also in state.json)."""
    import torch
    if not torch.cuda.is_available():
        return
    dev = torch.cuda.current_device()
    alloc = torch.cuda.max_memory_allocated(dev) / 2**30
    reserved = torch.cuda.max_memory_reserved(dev) / 2**30
    print(f"{MEMORY_MARK} rank={dist_info.rank()} gpu={dev} peak_allocated_gb={alloc:.3f} "
          f"peak_reserved_gb={reserved:.3f}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m studio.training.worker")
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--resume-from")
    ap.add_argument("--init-adapter")
    ap.add_argument("--origin", help="JSON: where the run came from (extend)")
    a = ap.parse_args(argv)

    requests = StopRequests()
    requests.install()
    _setup_device()
    run = RunFolder(a.run_dir)
    try:
        cfg = _join_machines(run, requests)
    except Exception as e:      # another machine that cannot join: said here, quoted by its parent and rank 0
        text = f"{type(e).__name__}: {e}" if not isinstance(e, RuntimeError) else str(e)
        if requests.link is not None:
            requests.link.report_error(text)
        print(f"{ERROR_MARK} rank={dist_info.rank()} of {dist_info.world_size()}: {text}", file=sys.stderr, flush=True)
        return 1
    cfg, notes = dist_info.adjust_for_processes(cfg)
    _sharded_loading(cfg.model.quantization)
    if dist_info.fsdp_layer_units():
        dist_info.wrap_whole_layers()
    try:
        if dist_info.sharded():
            dist_info.check_fsdp_model(cfg)
    except Exception as e:      # before any job exists: said here, quoted by the parent
        print(f"{ERROR_MARK} rank={dist_info.rank()} of {dist_info.world_size()}: {e}", file=sys.stderr, flush=True)
        return 1
    if dist_info.is_main():
        for note in notes:
            print(f"Note: {note}", file=sys.stderr, flush=True)
    scratch = None
    folder = run
    if not dist_info.is_main():
        scratch = Path(tempfile.mkdtemp(prefix=f"studio-rank{dist_info.rank()}-"))
        folder = _RankFolder(run, scratch)
        cfg.save(folder.config_path)
    synced = SyncedStop(requests)
    job = _job_class()(cfg, folder, keep_model=False, device_lock=None, callbacks=[synced],
                       resume_from=a.resume_from, init_adapter=a.init_adapter,
                       origin=json.loads(a.origin) if a.origin else None)
    synced.job = job
    try:
        job.run_sync()
        _report_memory()
        link = requests.link
        if job.state == "failed":
            if link is not None:
                # rank 0 first asks which machine went (before its own error makes the others leave)
                for line in (link.who_failed() if dist_info.is_main() else []):
                    print(line, file=sys.stderr, flush=True)
                link.report_error(job.error or job.message)
            _report_failure(job, folder)
            return 1
        if link is not None and not dist_info.is_main() and link.stopped_by_main():
            from .node_link import STOPPED_MARK
            print(f"{STOPPED_MARK}: the main machine stopped the run.", file=sys.stderr, flush=True)
        return 0
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _exit(code: int) -> None:
    """Exit; past a link thread still inside a store call, without the interpreter's shutdown (node_link.close)."""
    link = _LINKS[0] if _LINKS else None
    if link is not None and not link.close():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


_LINKS: list = []       # the link of this process, once opened (for _exit)

if __name__ == "__main__":
    _exit(main())
