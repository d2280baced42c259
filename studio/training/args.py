"""The trainer arguments from the studio's ``TrainingConfig`` that every training method shares, and the
notes on what had to change for this device; how long a run is (epochs, steps, checkpoints).

Kept apart from the job so the mapping can be read (and tested) in one place. A method adds its own
arguments and names its arguments class (``methods/sft.py``: TRL's ``SFTConfig``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.utils import is_liger_kernel_available

from ..config import StudioConfig

# bitsandbytes optimizers need an NVIDIA GPU; on a CPU the plain PyTorch AdamW does the same job.
_CUDA_ONLY_OPTIMIZERS = {"paged_adamw_8bit", "adamw_8bit", "paged_adamw_32bit"}


@dataclass
class ResolvedArgs:
    args: Any                           # the method's arguments (SFT: TRL's SFTConfig)
    optimizer: str
    precision: str                      # "bf16" | "fp16" | "fp32"
    notes: list[str] = field(default_factory=list)   # plain-language changes made for this device


def _compatible(config_class: type, kwargs: dict) -> dict:
    """Rename arguments for older transformers 5.x releases (5.17 is on many GPU images), which call
    activation checkpointing ``gradient_checkpointing`` and take a warmup ratio separately."""
    import dataclasses
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    out = dict(kwargs)
    if "activation_checkpointing" not in fields:
        out["gradient_checkpointing"] = out.pop("activation_checkpointing")
        out["gradient_checkpointing_kwargs"] = out.pop("activation_checkpointing_kwargs")
    if "float" not in str(fields["warmup_steps"].type) and "warmup_ratio" in fields:
        out["warmup_ratio"] = out.pop("warmup_steps")
    return {k: v for k, v in out.items() if k in fields}


# A checkpoint holds only the LoRA weights and their optimizer state (about 3 x 4 bytes per trainable
# parameter: a few MB to a few hundred MB), written in well under a second to a few seconds. Every tenth
# of the run keeps that near 1% of the training time; the cap bounds what a crash can cost on long runs.
AUTO_CHECKPOINTS = 10
AUTO_CHECKPOINT_CAP = 200


def checkpoint_every(cfg: StudioConfig, train_rows: int = 0) -> int:
    """``training.save_steps``, or with 0 (automatic) about a tenth of the run, at most every 200 steps."""
    import math
    if cfg.training.save_steps > 0:
        return cfg.training.save_steps
    total = estimate_total_steps(cfg, train_rows)
    return max(1, min(AUTO_CHECKPOINT_CAP, math.ceil(total / AUTO_CHECKPOINTS)))


def auto_epochs(train_rows: int) -> int:
    """Passes over the data for ``training.epochs: 0`` (auto). A small data set must be read several times
    for its facts to stick: on the built-in model and the demo FAQ (284 rows), one pass learned the house
    style and 0 of 8 held-out facts, three passes 5 to 8 of 8 (docs/BENCHMARKS.md, "Learning the facts").
    A large one repeats itself within one pass."""
    if train_rows <= 2_000:
        return 3
    return 2 if train_rows <= 10_000 else 1


def epochs_for(cfg: StudioConfig, train_rows: int) -> float:
    """``training.epochs``, with 0 (auto) resolved for this many training rows."""
    return cfg.training.epochs if cfg.training.epochs > 0 else float(auto_epochs(train_rows))


def estimate_total_steps(cfg: StudioConfig, train_rows: int) -> int:
    """Optimizer steps the run will take (the trainer's own count replaces it once training starts)."""
    import math
    t = cfg.training
    if t.max_steps > 0:
        return t.max_steps
    updates_per_epoch = max(1, math.ceil(train_rows / t.batch_size) // t.grad_accum)
    return math.ceil(epochs_for(cfg, train_rows) * updates_per_epoch) if train_rows else 0


def build_training_args(cfg: StudioConfig, output_dir: str, on_cuda: bool, dtype: torch.dtype,
                        has_validation: bool, train_rows: int, config_class: type, own: dict) -> ResolvedArgs:
    """``config_class`` (a method's arguments class) made of the arguments every method shares and the
    method's ``own``, with the optimizer and precision used and what had to change for this device."""
    t = cfg.training
    notes: list[str] = []

    optimizer = t.optimizer
    if optimizer in _CUDA_ONLY_OPTIMIZERS and not on_cuda:
        notes.append(f"The optimizer '{optimizer}' needs an NVIDIA GPU; using 'adamw_torch' on this CPU instead.")
        optimizer = "adamw_torch"

    precision = "fp32"
    if dtype == torch.bfloat16:             # a GPU, or a CPU with native bf16 maths (models/load.py: dtype_and_note)
        precision = "bf16"
    elif on_cuda and dtype == torch.float16:
        precision = "fp16"

    # The trainer's own test, so the studio asks for Liger exactly when the trainer can apply it.
    liger = bool(t.fused_kernels and on_cuda and is_liger_kernel_available())
    if t.fused_kernels and on_cuda and not liger:
        notes.append("Fused kernels are on but liger-kernel is not installed (`pip install liger-kernel`); "
                     "training uses the model's own layers.")

    evaluate = has_validation and t.eval_steps > 0
    steps = {"max_steps": t.max_steps} if t.max_steps > 0 else {"num_train_epochs": epochs_for(cfg, train_rows)}
    if t.max_steps == 0 and t.epochs == 0:
        notes.append(f"Epochs: auto, {steps['num_train_epochs']:g} passes over the {train_rows} training rows "
                     "(small data sets are read more often, so their facts are learned).")
    kwargs = dict(
        output_dir=output_dir,
        **steps,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.scheduler,
        warmup_steps=t.warmup_ratio,          # a float below 1 is a ratio of the total steps
        weight_decay=t.weight_decay,
        optim=optimizer,
        max_grad_norm=t.max_grad_norm,
        # NEFTune's noise is added by the job, scaled to each row (neftune.py), not by the trainer's hook.
        neftune_noise_alpha=None,
        # The job enables checkpointing itself (models/lora.py: apply_lora), layer by layer for 'auto'
        # (checkpointing.py); the trainer would switch it on for every layer.
        activation_checkpointing=False,
        activation_checkpointing_kwargs=None,
        seed=t.seed,
        data_seed=t.seed,
        logging_strategy="steps",
        logging_steps=t.logging_steps,
        eval_strategy="steps" if evaluate else "no",
        eval_steps=t.eval_steps if evaluate else None,
        save_strategy="steps",
        save_steps=checkpoint_every(cfg, train_rows),
        save_total_limit=2,                    # checkpoints carry optimizer state; keep the last two
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        report_to=t.report_to,                 # 'none' or one tracker; TensorBoard's folder: the job's _setup_trainer
        disable_tqdm=True,
        dataloader_num_workers=0,              # workers would fork a process holding the model
        dataloader_pin_memory=on_cuda,
        remove_unused_columns=False,           # our rows are already tokenised; keep every column
        # RMSNorm, RoPE and SwiGLU as fused Triton kernels; TRL computes the loss with its own chunked
        # LM head (the float32 logits of the whole vocabulary are never materialised).
        use_liger_kernel=liger,
        liger_kernel_config={"rms_norm": True, "rope": True, "swiglu": True, "cross_entropy": False,
                             "fused_linear_cross_entropy": False} if liger else None,
        use_cpu=not on_cuda,
        save_only_model=False,
        log_level="info",
    )
    kwargs.update(own)                         # the method's own (SFT: how it batches the rows)
    from .distributed import trainer_kwargs
    kwargs.update(trainer_kwargs(on_cuda))     # DDP / FSDP settings of a multi-process run (none for one)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)   # use_liger_kernel's deprecation note
        args = config_class(**_compatible(config_class, kwargs))
    one_gpu_per_process(args)
    return ResolvedArgs(args=args, optimizer=optimizer, precision=precision, notes=notes)


def one_gpu_per_process(args) -> None:
    """A process that is not one of several (the app's thread, an isolated run) trains on one GPU even
    when the workstation has more: the trainer would otherwise wrap the model in ``nn.DataParallel``,
    which TRL refuses, so a second card in the machine would stop every single-GPU run. Several GPUs
    are used through the subprocess runner (``training.gpus``), one process each."""
    from .distributed import world_size
    if world_size() == 1 and args.n_gpu > 1:
        args._n_gpu = 1
