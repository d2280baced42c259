"""One case of the speed benchmark, in its own process: ``plain`` or ``studio``.

    python benchmarks/speed_case.py --spec SPEC.json --case plain|studio --out RESULT.json

plain: the recipe of the QLoRA articles as shipped: transformers ``Trainer``, rows padded to the
longest of each batch, SDPA, ``prepare_model_for_kbit_training`` (4-bit), peft LoRA, gradient
checkpointing as the spec says, the spec's optimizer (paged 8-bit AdamW), Trainer defaults otherwise.

studio: a real ``TrainingJob`` (the path of the app and ``studio train``) with the same settings and
the same rows; everything else is what the studio does by default, gradient checkpointing included
('auto': only the layers this GPU's memory needs).

Any ``KEY=VALUE`` after the arguments overrides a studio training setting (``attention=sdpa``,
``packing=false``, ``fused_kernels=false``...): that is how the technique rows are measured.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from speed_common import (Profiler, StepRecorder, cap_memory, load_rows, load_spec, run_guarded,  # noqa: E402
                          write_result)


def _callbacks(rec: StepRecorder) -> list:
    import os
    path = os.environ.get("SPEED_PROFILE")
    return [rec, Profiler(path)] if path else [rec]


def _dataset(rows):
    from datasets import Dataset
    return Dataset.from_dict({"input_ids": [r["input_ids"] for r in rows], "labels": [r["labels"] for r in rows]})


def plain(spec: dict, out: str) -> None:
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import (AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, DataCollatorForSeq2Seq,
                              Trainer, TrainingArguments, set_seed)

    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(spec["model_dir"])
    if tok.pad_token is None:        # as the articles do
        tok.pad_token = tok.eos_token
    quant = None
    if spec["mode"] == "4bit":
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=torch.bfloat16, quantization_config=quant,
                                                 device_map={"": 0}, attn_implementation="sdpa")
    gc = spec["gradient_checkpointing"]
    if quant is not None:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gc)
    elif gc:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    set_seed(spec["seed"])
    lora = spec["lora"]
    model = get_peft_model(model, LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                                             target_modules=lora["target_modules"], task_type="CAUSAL_LM"))
    load_s = time.perf_counter() - t0
    args = TrainingArguments(
        output_dir="/tmp/speed-plain", max_steps=spec["steps"], per_device_train_batch_size=spec["batch_size"],
        per_device_eval_batch_size=spec["batch_size"], gradient_accumulation_steps=spec["grad_accum"],
        learning_rate=spec["learning_rate"], lr_scheduler_type=spec["scheduler"], warmup_steps=spec["warmup_ratio"],
        optim=spec["optimizer"], max_grad_norm=spec["max_grad_norm"], bf16=True, logging_steps=1, seed=spec["seed"],
        data_seed=spec["seed"], report_to="none", remove_unused_columns=False, **save_args(spec),
        include_num_input_tokens_seen="non_padding", disable_tqdm=True, **_checkpointing_arg(gc))
    rec = StepRecorder()
    trainer = Trainer(model=model, args=args, train_dataset=_dataset(load_rows(spec["train_rows"])),
                      eval_dataset=_dataset(load_rows(spec["eval_rows"])),
                      data_collator=DataCollatorForSeq2Seq(tok, label_pad_token_id=-100, padding=True),
                      callbacks=_callbacks(rec))
    trainer.train()
    eval_loss = trainer.evaluate()["eval_loss"]
    write_result(out, spec, "plain", rec, eval_loss=eval_loss, load_s=round(load_s, 1),
                 notes=["padded batches, SDPA, prepare_model_for_kbit_training" if quant else "padded batches, SDPA"])


def save_args(spec: dict) -> dict:
    """The Trainer's checkpoint settings of a case: every ``save_steps`` steps, or none (0)."""
    every = int(spec.get("save_steps") or 0)
    return {"save_strategy": "steps", "save_steps": every} if every else {"save_strategy": "no"}


def _checkpointing_arg(on: bool) -> dict:
    import dataclasses

    from transformers import TrainingArguments
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    key = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    return {key: on}


def studio(spec: dict, out: str, overrides: dict) -> None:
    from studio.config import StudioConfig
    from studio.training import TrainingJob

    lora = spec["lora"]
    training = {"max_steps": spec["steps"], "batch_size": spec["batch_size"], "grad_accum": spec["grad_accum"],
                "learning_rate": spec["learning_rate"], "scheduler": spec["scheduler"],
                "warmup_ratio": spec["warmup_ratio"], "optimizer": spec["optimizer"],
                "max_grad_norm": spec["max_grad_norm"], "seed": spec["seed"], "logging_steps": 1, "eval_steps": 0,
                # the spec's saves; none: only the one every run writes after its last step, outside the timed steps
                "save_steps": int(spec.get("save_steps") or 0) or spec["steps"]}
    # The spec's checkpointing is the plain recipe's; the studio decides it ('auto') unless overridden.
    training.update(overrides)
    cfg = StudioConfig.from_dict({
        "name": f"speed-{spec['shape']}-{spec['mode']}",
        "model": {"source": spec["model_dir"], "quantization": "4bit-nf4" if spec["mode"] == "4bit" else "none",
                  "double_quant": True, "compute_dtype": "bfloat16"},
        "data": {"file": spec["train_rows"], "max_length": spec["max_length"]},
        "lora": {"r": lora["r"], "alpha": lora["alpha"], "dropout": lora["dropout"],
                 "target_modules": lora["target_modules"]},
        "training": training})
    rows = lambda path: [SimpleNamespace(**r) for r in load_rows(path)]  # noqa: E731
    data = SimpleNamespace(train=rows(spec["train_rows"]), validation=rows(spec["eval_rows"]),
                           chat_template="", template_name="model", report=None)
    rec = StepRecorder()
    job = TrainingJob(cfg, f"/tmp/speed-studio-{spec['shape']}-{spec['mode']}", data=data, callbacks=_callbacks(rec),
                      keep_model=False)
    job.run_sync()
    if job.state != "done":
        raise RuntimeError(f"{job.state}: {job.message} {job.error or ''}")
    evals = job.metrics.rows("eval")
    write_result(out, spec, "studio", rec, eval_loss=evals[-1]["eval_loss"] if evals else None,
                 overrides=overrides, notes=[f"attention {job.info.get('attention')}",
                                             f"checkpointed layers {job.info.get('checkpointed_layers')}",
                                             f"activation offload {job.info.get('activation_offload', False)}",
                                             f"padding-free {job.info.get('padding_free')}",
                                             f"fused kernels {job.info.get('fused_kernels')}",
                                             *job.info.get("notes", [])])


def _overrides(pairs: list[str]) -> dict:
    import yaml
    out = {}
    for p in pairs:
        key, _, value = p.partition("=")
        out[key] = yaml.safe_load(value)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", required=True)
    ap.add_argument("--case", choices=("plain", "studio"), required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()
    spec = load_spec(a.spec)
    cap_memory(spec)
    if a.case == "plain":
        return run_guarded(a.out, spec, "plain", lambda: plain(spec, a.out))
    return run_guarded(a.out, spec, "studio", lambda: studio(spec, a.out, _overrides(a.overrides)))


if __name__ == "__main__":
    sys.exit(main())
