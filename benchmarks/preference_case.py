"""One case of the preference benchmark, in its own process: ``trl``, ``studio`` (DPO) or ``grpo``.

    python benchmarks/preference_case.py --spec SPEC.json --case trl|studio|grpo --out RESULT.json

trl: DPO as TRL's documentation gives it for QLoRA: ``AutoModelForCausalLM`` with a 4-bit
``BitsAndBytesConfig``, ``DPOTrainer(model, args=DPOConfig(...), train_dataset, processing_class,
peft_config=LoraConfig(...))`` on conversational pairs, TRL's defaults for everything the spec does not set
(gradient checkpointing on, batches padded to their longest pair). The one addition is
``include_num_input_tokens_seen="non_padding"``, so tokens are counted the same way in both cases.

studio: a real ``TrainingJob`` with ``training.method: dpo`` on the same pairs file and settings; the rest is
what the studio does by default. ``studio:KEY=VALUE+KEY=VALUE`` (in preference_speed.py's ``--cases``) changes
training settings, e.g. ``studio:gradient_checkpointing=on``. ``SPEED_PROFILE=FILE`` profiles steps 5-6.

grpo: a real ``TrainingJob`` with ``training.method: grpo`` on the spec's questions: the time of one step
(generation of every answer, rewards, the update).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from speed_case import _callbacks, _overrides  # noqa: E402
from speed_common import StepRecorder, cap_memory, load_spec, run_guarded, write_result  # noqa: E402


def _conversational(path: str) -> list[dict]:
    rows = [json.loads(x) for x in open(path, encoding="utf-8") if x.strip()]
    return [{"prompt": [{"role": "user", "content": r["prompt"]}],
             "chosen": [{"role": "assistant", "content": r["chosen"]}],
             "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows]


def trl_recipe(spec: dict, out: str) -> None:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    from trl import DPOConfig, DPOTrainer

    tok = AutoTokenizer.from_pretrained(spec["model_dir"])
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16) if spec["mode"] == "4bit" else None
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=torch.bfloat16, quantization_config=quant)
    lora = spec["lora"]
    args = DPOConfig(output_dir="/tmp/pref-trl", max_steps=spec["steps"], per_device_train_batch_size=spec["batch_size"],
                     gradient_accumulation_steps=spec["grad_accum"], learning_rate=spec["learning_rate"],
                     beta=spec["beta"], max_length=spec["max_length"], bf16=torch.cuda.is_available(), logging_steps=1, seed=spec["seed"],
                     report_to="none", save_strategy="no", disable_tqdm=True,
                     include_num_input_tokens_seen="non_padding")
    rec = StepRecorder()
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(_conversational(spec["pairs"])),
                         processing_class=tok, callbacks=_callbacks(rec),
                         peft_config=LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                                                target_modules=lora["target_modules"], task_type="CAUSAL_LM"))
    trainer.train()
    write_result(out, spec, "trl", rec, notes=[f"gradient checkpointing {args.gradient_checkpointing}"])


def _studio_config(spec: dict, method: str, data_file: str, extra: dict, overrides: dict):
    from studio.config import StudioConfig

    lora = spec["lora"]
    return StudioConfig.from_dict({
        "name": f"pref-{method}-{spec['shape']}",
        "model": {"source": spec["model_dir"], "quantization": "4bit-nf4" if spec["mode"] == "4bit" else "none",
                  "double_quant": True, "compute_dtype": "bfloat16"},
        "data": {"file": data_file, "max_length": spec["max_length"], "validation": 0},
        "lora": {"r": lora["r"], "alpha": lora["alpha"], "dropout": lora["dropout"],
                 "target_modules": lora["target_modules"]},
        "training": {"method": method, "max_steps": spec["steps"], "batch_size": spec["batch_size"],
                     "grad_accum": spec["grad_accum"], "learning_rate": spec["learning_rate"], "seed": spec["seed"],
                     "logging_steps": 1, "eval_steps": 0,
                     # one save, after the last step, outside the timed steps (as the TRL case saves none)
                     "save_steps": spec["steps"], **overrides},
        **extra})


def studio_job(spec: dict, out: str, case: str, overrides: dict) -> None:
    from studio.training import TrainingJob

    if case == "grpo":
        g = spec["grpo"]
        cfg = _studio_config(spec, "grpo", spec["questions"], {"grpo": g}, overrides)
    else:
        cfg = _studio_config(spec, "dpo", spec["pairs"], {"preference": {"beta": spec["beta"]}}, overrides)
    rec = StepRecorder()
    job = TrainingJob(cfg, f"/tmp/pref-{case}-{spec['shape']}", callbacks=_callbacks(rec), keep_model=False)
    job.run_sync()
    if job.state != "done":
        raise RuntimeError(f"{job.state}: {job.message} {job.error or ''}")
    rows = job.metrics.rows("train")
    keys = ("reward", "reward_std", "rewards/margins", "rewards/accuracies")
    last = {k: rows[-1][k] for k in keys if rows and k in rows[-1]}
    write_result(out, spec, case, rec, last_logged=last,
                 overrides=overrides, notes=[f"attention {job.info.get('attention')}",
                        f"fused kernels {job.info.get('fused_kernels')}",
                        f"checkpointed layers {job.info.get('checkpointed_layers')}", *job.info.get("notes", [])])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", required=True)
    ap.add_argument("--case", choices=("trl", "studio", "grpo"), required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("overrides", nargs="*", help="studio training settings, KEY=VALUE")
    a = ap.parse_args()
    spec = load_spec(a.spec)
    cap_memory(spec)
    body = (lambda: trl_recipe(spec, a.out)) if a.case == "trl" else (lambda: studio_job(spec, a.out, a.case, _overrides(a.overrides)))
    return run_guarded(a.out, spec, a.case, body)


if __name__ == "__main__":
    sys.exit(main())
