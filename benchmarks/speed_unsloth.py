"""The Unsloth column of the speed benchmark: one run of the spec with Unsloth, in its own process.

    PYTHONPATH=/tmp/site-unsloth python benchmarks/speed_unsloth.py --spec SPEC.json --case unsloth --out RESULT.json

/tmp/site-unsloth holds the wheels of .whl-unsloth/ (its README.txt lists them and how to install).
Unsloth is run the way its own notebooks run it: FastLanguageModel + get_peft_model + TRL's
SFTTrainer with no collator of ours, so Unsloth picks the batching itself (on an H100/H200 it turns
padding-free on; the override `padding=padded|padding_free` after --out, as speed.py passes
`unsloth:padding=padded`, forces one). The result's notes say what it chose and which kernels ran.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

# The GPU machine has no network: without these Unsloth pings huggingface.co ("statistics") on every
# load, TRL sends telemetry, and Unsloth writes its generated trainer code to ./unsloth_compiled_cache.
WORK = tempfile.mkdtemp(prefix="speed-unsloth-")
os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                   "HF_HUB_DISABLE_TELEMETRY": "1", "UNSLOTH_DISABLE_STATISTICS": "1"})
os.environ.setdefault("UNSLOTH_COMPILE_LOCATION", os.path.join(WORK, "unsloth_compiled_cache"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PADDING = {"auto": None, "padded": False, "padding_free": True}


def train(spec: dict, out: str, case: str, overrides: dict, sc) -> None:
    import torch
    import unsloth
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer
    from unsloth import FastLanguageModel

    sc.cap_memory(spec)
    lora, seed = spec["lora"], int(spec["seed"])
    # "unsloth" is Unsloth's own default: checkpointed activations are offloaded to CPU memory; the override
    # checkpointing=true is its checkpointing without the offload (unsloth:checkpointing=true).
    wanted = overrides.get("checkpointing", "unsloth")
    gc = {"unsloth": "unsloth", True: True, "true": True, False: False, "false": False}[wanted] \
        if spec["gradient_checkpointing"] else False
    t0 = time.perf_counter()
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=spec["model_dir"], max_seq_length=int(spec["max_length"]), dtype=torch.bfloat16,
        load_in_4bit=spec["mode"] == "4bit", load_in_16bit=spec["mode"] == "16bit",
        local_files_only=True, use_exact_model_name=True,  # a local folder, never a hub name to remap
        use_gradient_checkpointing=gc, random_state=seed)
    targets = lora["target_modules"]
    model = FastLanguageModel.get_peft_model(
        model, r=int(lora["r"]), lora_alpha=lora["alpha"], lora_dropout=float(lora["dropout"]),
        target_modules=ALL_LINEAR if targets == "all-linear" else list(targets), bias="none",
        use_gradient_checkpointing=gc, random_state=seed)
    torch.cuda.synchronize()
    load_s = round(time.perf_counter() - t0, 2)

    def rows(path):  # exactly the spec's rows, in its order; the trainer's sampler shuffles by seed
        return Dataset.from_list([{"input_ids": r["input_ids"], "labels": r["labels"]} for r in sc.load_rows(path)])

    unknown = set(overrides) - {"padding", "checkpointing"}
    if unknown or overrides.get("padding", "auto") not in PADDING:
        raise ValueError(f"overrides: only padding=auto|padded|padding_free and checkpointing=unsloth|true|false, "
                         f"got {overrides}")
    padding = overrides.get("padding", "auto")
    args = SFTConfig(
        output_dir=os.path.join(WORK, "out"), max_steps=int(spec["steps"]),
        per_device_train_batch_size=int(spec["batch_size"]), per_device_eval_batch_size=int(spec["batch_size"]),
        gradient_accumulation_steps=int(spec["grad_accum"]), learning_rate=float(spec["learning_rate"]),
        lr_scheduler_type=spec["scheduler"], warmup_steps=float(spec.get("warmup_ratio") or 0.0),  # < 1: a ratio
        optim=spec["optimizer"], max_grad_norm=float(spec["max_grad_norm"]),
        weight_decay=float(spec.get("weight_decay", 0.0)),  # Unsloth's config would default to 0.001
        seed=seed, data_seed=seed, bf16=True, fp16=False, gradient_checkpointing=bool(spec["gradient_checkpointing"]),
        max_length=int(spec["max_length"]), padding_free=PADDING[padding], dataset_num_proc=1,
        logging_steps=1, eval_strategy="no", report_to="none",
        **({"save_strategy": "steps", "save_steps": int(spec["save_steps"])} if spec.get("save_steps")
           else {"save_strategy": "no"}),
        prediction_loss_only=True, disable_tqdm=True, include_num_input_tokens_seen="non_padding")
    recorder = sc.StepRecorder()
    trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer, callbacks=[recorder],
                         train_dataset=rows(spec["train_rows"]), eval_dataset=rows(spec["eval_rows"]))
    # Only now is Unsloth's batching known; a padding-free batch has no padding, so count all of it.
    collator = trainer.data_collator
    padding_free = bool(getattr(collator, "padding_free", False))
    trainer.args.include_num_input_tokens_seen = "all" if padding_free else "non_padding"

    notes = [f"unsloth {unsloth.__version__}; FastLanguageModel ({type(model.get_base_model()).__name__}) + "
             f"get_peft_model + TRL SFTTrainer; {'NF4 4-bit, double quant, ' if spec['mode'] == '4bit' else ''}"
             "bf16 compute; load_s = from_pretrained + get_peft_model",
             ("padding-free batches (Unsloth's default for SFT here: each micro-batch flattened into one "
              "row, varlen attention)" if padding_free else "padded batches (pad to the longest row)")
             + f" [padding={padding}, collator {type(collator).__name__}]",
             "gradient checkpointing: " + ("Unsloth's ('unsloth', activations offloaded to CPU)" if gc == "unsloth"
                                           else "Unsloth's, without the offload" if gc else "off"),
             f"PYTORCH_ALLOC_CONF={os.environ.get('PYTORCH_ALLOC_CONF', '')} (set by unsloth_zoo at import); "
             f"Unsloth config default kept: torch_empty_cache_steps={trainer.args.torch_empty_cache_steps}"]
    # Unsloth's defaults, all on here: Triton RMSNorm, RoPE, SwiGLU and chunked cross-entropy kernels,
    # fused LoRA for QKV/O/MLP (counted, since Unsloth silently falls back per layer), its own loop.
    def backend():
        from unsloth.utils.attention_dispatch import select_attention_backend
        return select_attention_backend(use_varlen=padding_free)

    def fused():
        from unsloth.models.llama import _fused_lora_modules
        return len(_fused_lora_modules(model))

    for label, probe in (("attention backend", backend), ("modules on Unsloth's fused LoRA kernels", fused)):
        try:
            notes.append(f"{label}: {probe()}")
        except Exception as exc:  # noqa: BLE001 - a note, not a result
            notes.append(f"{label}: unknown ({type(exc).__name__})")

    trainer.train()
    eval_loss = float(trainer.evaluate()["eval_loss"])
    # Unsloth moves the input embedding to host RAM by itself when it thinks the GPU is short of room.
    notes.append(f"input embedding on: {model.get_input_embeddings().weight.device}")
    sc.write_result(out, spec, case, recorder, eval_loss=eval_loss, load_s=load_s, overrides=overrides, notes=notes)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", required=True)
    ap.add_argument("--case", default="unsloth")
    ap.add_argument("--out", required=True)
    ap.add_argument("overrides", nargs="*", help="key=value; only padding=auto|padded|padding_free, "
                                                      "checkpointing=unsloth|true|false")
    a = ap.parse_args()
    overrides = dict(p.partition("=")[::2] for p in a.overrides)
    # Unsloth must be imported before transformers/trl/peft (it patches them); speed_common imports
    # transformers, so it comes second. A failed import still has to leave a result row.
    try:
        import unsloth  # noqa: F401
        import_error = None
    except BaseException as exc:  # noqa: BLE001
        import_error = f"unsloth import failed: {type(exc).__name__}: {exc}"[:400], traceback.format_exc()[-3000:]
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import speed_common as sc

    spec = sc.load_spec(a.spec)
    if import_error:
        sc.write_result(a.out, spec, a.case, None, error=import_error[0], traceback=import_error[1])
        return 1
    return sc.run_guarded(a.out, spec, a.case, lambda: train(spec, a.out, a.case, overrides, sc))


if __name__ == "__main__":
    sys.exit(main())
