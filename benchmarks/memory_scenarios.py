"""The QLoRA articles' own models through the studio: measured peak memory against the articles'
claims and against the studio's estimate (``studio.models.estimate_memory``), on one CUDA GPU.

    python benchmarks/memory_scenarios.py --tokenizer DIR [--only gptj-6b,llama2-13b] [--out FILE.jsonl]

Each scenario builds the exact architecture with random weights in bfloat16 (speed and memory do not
depend on weight values), trains it for a few steps through a real ``TrainingJob`` (speed_case.py, each
scenario in its own process) on rows of exactly the max length (the estimate's worst case), and prints
claim | measured peak | estimate | estimate / measured | tokens/s. Llama-2-70B is not built here: in
bfloat16 it does not fit the disk of a 64 GB machine; it needs a layer-by-layer build saved in 4-bit.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

_NEOX = {"model_type": "gpt_neox", "hidden_size": 6144, "num_hidden_layers": 44, "num_attention_heads": 64,
         "intermediate_size": 24576, "vocab_size": 50432, "rotary_pct": 0.25, "tie_word_embeddings": False}
_GPTJ = {"model_type": "gptj", "n_embd": 4096, "n_layer": 28, "n_head": 16, "rotary_dim": 64,
         "n_positions": 2048, "vocab_size": 50400}
_MISTRAL = {"model_type": "mistral", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 32000, "tie_word_embeddings": False}
_LLAMA2_7B = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
              "intermediate_size": 11008, "vocab_size": 32000, "tie_word_embeddings": False}
_LLAMA2_13B = {"model_type": "llama", "hidden_size": 5120, "num_hidden_layers": 40, "num_attention_heads": 40,
               "intermediate_size": 13824, "vocab_size": 32000, "tie_word_embeddings": False}

_ARTICLE = {"quant": "4bit", "r": 8, "alpha": 32, "batch": 1, "accum": 8, "checkpointing": "on"}
SCENARIOS = [
    # name, config, the article's claim, settings
    ("neox-20b", _NEOX, "~15 GB peak", {**_ARTICLE, "targets": ["query_key_value"], "max_length": 512}),
    ("gptj-6b", _GPTJ, "fits a 12 GB card", {**_ARTICLE, "targets": "all-linear", "max_length": 512}),
    ("mistral-7b", _MISTRAL, "fits one consumer card", {"quant": "4bit", "r": 16, "alpha": 32, "batch": 1,
                                                        "accum": 8, "checkpointing": "on", "targets": "all-linear",
                                                        "max_length": 1024}),
    ("llama2-13b", _LLAMA2_13B, "fits 24 GB", {"quant": "4bit", "r": 64, "alpha": 16, "batch": 1, "accum": 8,
                                               "checkpointing": "on", "targets": "all-linear", "max_length": 1024}),
    ("llama2-7b-qlora", _LLAMA2_7B, "~10 GB with QLoRA", {"quant": "4bit", "r": 64, "alpha": 16, "batch": 1,
                                                          "accum": 8, "checkpointing": "on",
                                                          "targets": "all-linear", "max_length": 1024}),
    ("llama2-7b-lora16", _LLAMA2_7B, "> 24 GB with 16-bit LoRA; QLoRA 20-30% slower than it",
     {"quant": "16bit", "r": 64, "alpha": 16, "batch": 1, "accum": 8, "checkpointing": "on",
      "targets": "all-linear", "max_length": 1024}),
]


def build_folder(config: dict, tokenizer_dir: Path, folder: Path) -> Path:
    """Random bfloat16 weights of ``config`` with the tokenizer beside them (made once, on the GPU)."""
    if (folder / "config.json").exists() and any(folder.glob("*.safetensors")):
        return folder
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    cfg = dict(config)
    conf = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(conf, dtype=torch.bfloat16)
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp)
    del model
    torch.cuda.empty_cache()
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def write_rows(folder: Path, length: int, vocab: int, n: int = 16) -> tuple[Path, Path]:
    """Rows of exactly ``length`` tokens (the estimate's worst case), loss on the second half."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    paths = []
    for name, count in (("train", n), ("eval", 2)):
        path = folder / f"{name}.jsonl"
        with open(path, "w") as f:
            for _ in range(count):
                ids = [rng.randrange(100, min(vocab, 32000)) for _ in range(length)]
                f.write(json.dumps({"input_ids": ids, "labels": [-100] * (length // 2) + ids[length // 2:]}) + "\n")
        paths.append(path)
    return paths[0], paths[1]


def estimate(config: dict, s: dict) -> dict:
    from studio.config import StudioConfig
    from studio.model_size import config_facts
    from studio.models import estimate_from_facts

    cfg = StudioConfig.from_dict({
        "model": {"quantization": "4bit-nf4" if s["quant"] == "4bit" else "none"},
        "lora": {"r": s["r"], "alpha": s["alpha"], "target_modules": s["targets"]},
        "training": {"batch_size": s["batch"], "grad_accum": s["accum"], "optimizer": "paged_adamw_8bit",
                     "gradient_checkpointing": s["checkpointing"]},
        "data": {"max_length": s["max_length"]}})
    return estimate_from_facts(cfg, config_facts(config), device={"device": "cuda", "free_gb": 80.0})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", required=True, help="a folder with a tokenizer to save beside the weights")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--work", default="/tmp/memory-scenarios")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep each model folder (they are large)")
    ap.add_argument("--out", default="memory-scenarios.jsonl")
    a = ap.parse_args()
    work = Path(a.work)
    only = set(filter(None, a.only.split(",")))
    print("| scenario | claim | measured peak allocated GB | estimate GB | estimate / measured | tok/s |")
    print("|---|---|---|---|---|---|")
    for name, config, claim, s in SCENARIOS:
        if only and name not in only:
            continue
        folder = build_folder(config, Path(a.tokenizer), work / name.split("-lora16")[0].split("-qlora")[0])
        train, evals = write_rows(work / f"rows-{s['max_length']}", s["max_length"], config["vocab_size"])
        spec = {"shape": name, "mode": s["quant"], "model_dir": str(folder), "train_rows": str(train),
                "eval_rows": str(evals), "steps": a.steps, "warmup_steps": 1, "batch_size": s["batch"],
                "grad_accum": s["accum"], "learning_rate": 2e-4, "scheduler": "constant", "warmup_ratio": 0.0,
                "optimizer": "paged_adamw_8bit", "max_grad_norm": 0.3, "seed": 42, "gradient_checkpointing": True,
                "lora": {"r": s["r"], "alpha": s["alpha"], "dropout": 0.0, "target_modules": s["targets"]},
                "memory_cap_gb": 0, "max_length": s["max_length"]}
        spec_path, out = work / f"spec-{name}.json", work / f"result-{name}.json"
        spec_path.write_text(json.dumps(spec))
        out.unlink(missing_ok=True)
        subprocess.run([sys.executable, str(HERE / "speed_case.py"), "--spec", str(spec_path), "--case", "studio",
                        "--out", str(out), f"gradient_checkpointing={s['checkpointing']}"], timeout=1200)
        res = json.loads(out.read_text()) if out.exists() else {"error": "no result"}
        est = estimate(config, s)
        measured = res.get("peak_allocated_gb")
        measured_gb = measured * 2**30 / 1e9 if measured else None
        steps = res.get("step_s", [])[1:]
        tps = round(sum(res.get("tokens", [])[1:]) / sum(steps)) if steps and sum(steps) else None
        row = {"scenario": name, "claim": claim, "settings": s, "measured_gb": measured_gb,
               "estimate_gb": est["total_gb"], "tokens_per_s": tps, "error": res.get("error")}
        with open(a.out, "a") as f:
            f.write(json.dumps({**row, "result": res}) + "\n")
        ratio = f"{est['total_gb'] / measured_gb:.2f}" if measured_gb else "-"
        print(f"| {name} | {claim} | {measured_gb and round(measured_gb, 2)} | {est['total_gb']} | {ratio} | "
              f"{tps} | {res.get('error') or ''}", flush=True)
        if not a.keep and not name.endswith("-qlora"):   # llama2-7b serves both of its scenarios
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
