"""The QLoRA articles' own models through the studio: measured peak memory against the articles'
claims and against the studio's estimate (``studio.models.size.estimate_memory``), on one CUDA GPU.

    python benchmarks/memory_scenarios.py --tokenizer DIR [--only gptj-6b,llama2-13b] [--out FILE.jsonl]

Each scenario builds the exact architecture with random weights (speed and memory do not depend on weight
values): pre-quantized to 4-bit one module at a time for QLoRA (build_quantized.py; Llama-2-70B's 138 GB
of bfloat16 would not fit a 64 GB disk), bfloat16 for 16-bit LoRA. It trains a few steps through a real
``TrainingJob`` (speed_case.py, each scenario in its own process) on rows of exactly the max length (the
estimate's worst case) and prints claim | measured peak | estimate | estimate / measured | speed. The
``fit-*`` scenarios start from a naive setting, let 'Fit to my GPU' (studio/fit.py) pick the micro-batch
and checkpointing for 24 GB, and train under a 24 GB cap (torch.cuda.set_per_process_memory_fraction).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

SHAPES_BY_NAME = {
    "neox-20b": {"model_type": "gpt_neox", "hidden_size": 6144, "num_hidden_layers": 44, "num_attention_heads": 64,
                 "intermediate_size": 24576, "vocab_size": 50432, "rotary_pct": 0.25, "tie_word_embeddings": False},
    "gptj-6b": {"model_type": "gptj", "n_embd": 4096, "n_layer": 28, "n_head": 16, "rotary_dim": 64,
                "n_positions": 2048, "vocab_size": 50400},
    "mistral-7b": {"model_type": "mistral", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
                   "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 32000,
                   "tie_word_embeddings": False},
    "llama2-7b": {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
                  "intermediate_size": 11008, "vocab_size": 32000, "tie_word_embeddings": False},
    "llama2-13b": {"model_type": "llama", "hidden_size": 5120, "num_hidden_layers": 40, "num_attention_heads": 40,
                   "intermediate_size": 13824, "vocab_size": 32000, "tie_word_embeddings": False},
    "llama2-70b": {"model_type": "llama", "hidden_size": 8192, "num_hidden_layers": 80, "num_attention_heads": 64,
                   "num_key_value_heads": 8, "intermediate_size": 28672, "vocab_size": 32000,
                   "tie_word_embeddings": False},
    "llama3-8b": {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
                  "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256,
                  "tie_word_embeddings": False},
}

_ARTICLE = {"quant": "4bit", "r": 8, "alpha": 32, "batch": 1, "accum": 8, "checkpointing": "on"}
_QLORA = {"quant": "4bit", "r": 64, "alpha": 16, "batch": 1, "accum": 8, "checkpointing": "on",
          "targets": "all-linear", "max_length": 1024}
# A user's first try on a 24 GB card: 8 x 2048 tokens a step, no checkpointing; 'Fit to my GPU' picks
# the micro-batch and checkpointing, and the run is made under a 24 GB cap.
_NAIVE = {"quant": "4bit", "r": 16, "alpha": 32, "batch": 8, "accum": 2, "checkpointing": "off",
          "targets": "all-linear", "max_length": 2048, "fit_gb": 24}
SCENARIOS = [
    # name, shape, the article's claim, settings
    ("neox-20b", "neox-20b", "~15 GB peak", {**_ARTICLE, "targets": ["query_key_value"], "max_length": 512}),
    ("gptj-6b", "gptj-6b", "fits a 12 GB card", {**_ARTICLE, "targets": "all-linear", "max_length": 512}),
    ("mistral-7b", "mistral-7b", "fits one consumer card", {**_QLORA, "r": 16, "alpha": 32}),
    ("llama2-13b", "llama2-13b", "fits 24 GB", _QLORA),
    ("llama2-7b-qlora", "llama2-7b", "~10 GB with QLoRA", _QLORA),
    ("llama2-7b-lora16", "llama2-7b", "> 24 GB with 16-bit LoRA; QLoRA 20-30% slower than it",
     {**_QLORA, "quant": "16bit"}),
    ("llama2-70b", "llama2-70b", "one 80 GB card, ~35 GB + adapters", _QLORA),
    ("fit-llama3-8b", "llama3-8b", "Fit to my GPU: trains within 24 GB", _NAIVE),
    ("fit-llama2-13b", "llama2-13b", "Fit to my GPU: trains within 24 GB", _NAIVE),
]


def build_folder(shape: str, tokenizer_dir: Path, folder: Path, quant: str) -> Path:
    """Random weights of ``shape`` with the tokenizer beside them, made once in another process (this
    one never touches the GPU, so the runs' device memory is theirs alone): pre-quantized 4-bit module by
    module for 4-bit runs, bfloat16 for 16-bit ones (random_weights.py)."""
    if not ((folder / "config.json").exists() and any(folder.glob("*.safetensors"))):
        subprocess.run([sys.executable, str(HERE / "random_weights.py"), "--shape", shape, "--tokenizer",
                        str(tokenizer_dir), "--out", str(folder), "--bits", "4" if quant == "4bit" else "16"],
                       check=True, timeout=1200)
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


def studio_config(s: dict):
    from studio.config import StudioConfig
    return StudioConfig.from_dict({
        "model": {"quantization": "4bit-nf4" if s["quant"] == "4bit" else "none", "double_quant": True},
        "lora": {"r": s["r"], "alpha": s["alpha"], "target_modules": s["targets"]},
        "training": {"batch_size": s["batch"], "grad_accum": s["accum"], "optimizer": "paged_adamw_8bit",
                     "gradient_checkpointing": s["checkpointing"]},
        "data": {"max_length": s["max_length"]}})


def estimate(config: dict, s: dict) -> dict:
    from studio.models.size import config_facts
    from studio.models.size import estimate_from_facts
    return estimate_from_facts(studio_config(s), config_facts(config), device={"device": "cuda", "free_gb": 80.0})


def fitted(config: dict, s: dict) -> tuple[dict, list[str]]:
    """The settings 'Fit to my GPU' picks for ``s`` within ``s['fit_gb']``, and what it said."""
    from studio.fit import fit_to_gpu
    from studio.models.size import config_facts
    cfg, changes, _ = fit_to_gpu(studio_config(s), config_facts(config), s["fit_gb"])
    t = cfg.training
    return {**s, "batch": t.batch_size, "accum": t.grad_accum, "checkpointing": t.gradient_checkpointing}, changes


def run_case(name: str, folder: Path, config: dict, s: dict, work: Path, steps: int) -> dict:
    train, evals = write_rows(work / f"rows-{s['max_length']}", s["max_length"], config["vocab_size"])
    spec = {"shape": name, "mode": s["quant"], "model_dir": str(folder), "train_rows": str(train),
            "eval_rows": str(evals), "steps": steps, "warmup_steps": 1, "batch_size": s["batch"],
            "grad_accum": s["accum"], "learning_rate": 2e-4, "scheduler": "constant", "warmup_ratio": 0.0,
            "optimizer": "paged_adamw_8bit", "max_grad_norm": 0.3, "seed": 42, "gradient_checkpointing": True,
            "lora": {"r": s["r"], "alpha": s["alpha"], "dropout": 0.0, "target_modules": s["targets"]},
            "memory_cap_gb": s.get("fit_gb", 0), "max_length": s["max_length"]}
    spec_path, out = work / f"spec-{name}.json", work / f"result-{name}.json"
    spec_path.write_text(json.dumps(spec))
    out.unlink(missing_ok=True)
    subprocess.run([sys.executable, str(HERE / "speed_case.py"), "--spec", str(spec_path), "--case", "studio",
                    "--out", str(out), f"gradient_checkpointing={s['checkpointing']}"], timeout=1200)
    return json.loads(out.read_text()) if out.exists() else {"error": "no result"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", required=True, help="a folder with a tokenizer to save beside the weights")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--work", default="/tmp/memory-scenarios")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep each model folder (they are large)")
    ap.add_argument("--out", default="memory-scenarios.jsonl")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="change a setting of every chosen scenario (batch=8, accum=1, checkpointing=off...)")
    a = ap.parse_args()
    import yaml
    changed = {k: yaml.safe_load(v) for k, v in (x.split("=", 1) for x in a.set)}
    work = Path(a.work)
    only = [n for n in a.only.split(",") if n]
    todo = [sc for sc in SCENARIOS if not only or sc[0] in only]
    print("| scenario | claim | settings | peak allocated GB | peak on the card GB | estimate GB | estimate / on the card "
          "| s/step | tok/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, (name, shape, claim, s) in enumerate(todo):
        config = SHAPES_BY_NAME[shape]
        said = []
        if changed:
            s = {**s, **changed}
            name = name + "+" + ",".join(f"{k}={v}" for k, v in changed.items())
        if s.get("fit_gb"):
            s, said = fitted(config, s)
        folder = work / f"{shape}-{s['quant']}"
        build_s = time.time()
        try:
            build_folder(shape, Path(a.tokenizer), folder, s["quant"])
            res = run_case(name, folder, config, s, work, a.steps)
        except Exception as exc:          # one scenario's failure must not lose the others
            res = {"error": f"{type(exc).__name__}: {exc}"}
        res["build_and_run_s"] = round(time.time() - build_s, 1)
        est = estimate(config, s)
        gb = lambda k: res[k] * 2**30 / 1e9 if res.get(k) else None  # noqa: E731  (GiB -> GB)
        measured, reserved, device = gb("peak_allocated_gb"), gb("peak_reserved_gb"), gb("peak_device_gb")
        steps = res.get("step_s", [])[1:]
        tps = round(sum(res.get("tokens", [])[1:]) / sum(steps)) if steps and sum(steps) else None
        s_step = round(sum(steps) / len(steps), 2) if steps else None
        row = {"scenario": name, "shape": shape, "claim": claim, "settings": s, "fit_said": said,
               "measured_gb": measured, "reserved_gb": reserved, "device_gb": device, "estimate_gb": est["total_gb"],
               "estimate_parts": est["parts"], "s_per_step": s_step, "tokens_per_s": tps, "error": res.get("error")}
        with open(a.out, "a") as f:
            f.write(json.dumps({**row, "result": res}) + "\n")
        ratio = f"{est['total_gb'] / device:.2f}" if device else "-"
        brief = (f"{s['quant']} r{s['r']} {s['batch']}x{s['accum']} len {s['max_length']} ckpt {s['checkpointing']}"
                 + (f" cap {s['fit_gb']} GB" if s.get("fit_gb") else ""))
        print(f"| {name} | {claim} | {brief} | {measured and round(measured, 2)} | {device and round(device, 2)} "
              f"| {est['total_gb']} | {ratio} | {s_step} | {tps} | {res.get('error') or ''}", flush=True)
        later = {f"{sh}-{(fitted(SHAPES_BY_NAME[sh], x)[0] if x.get('fit_gb') else x)['quant']}"
                 for _, sh, _, x in todo[i + 1:]}
        if not a.keep and folder.name not in later:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
