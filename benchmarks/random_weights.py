"""Model folders of random weights for benchmarks (speed and memory do not depend on weight values).

    python benchmarks/random_weights.py --shape llama2-70b --bits 4 --tokenizer DIR --out DIR

``--bits 16``: bfloat16 weights, built on the GPU and saved. ``--bits 4``: weights already quantized to
4-bit NF4 (double quantization), written one module at a time, so shapes whose 16-bit weights exceed the
disk or the GPU (Llama-2-70B: 138 GB in bfloat16) load through the studio like any pre-quantized
checkpoint.

The folder has what ``save_pretrained`` writes for a bitsandbytes 4-bit model: each quantized linear
weight packed as uint8 with its quant state beside it (``<module>.weight.absmax``, ``.quant_map``,
``.nested_absmax``, ``.nested_quant_map``, ``.quant_state.bitsandbytes__nf4``), the modules transformers
keeps in 16-bit (embedding, output head, norms, biases) in bfloat16, and ``quantization_config`` in
config.json. Speed and memory do not depend on the weight values, so random ones serve for both.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

SHARD_BYTES = 4 * 2**30


def quantization_config() -> dict:
    from transformers import BitsAndBytesConfig
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16).to_dict()


def _skeleton(config: dict):
    """The architecture on the meta device (no memory), for its module names, shapes and skip list."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.quantizers.base import get_keys_to_not_convert

    cfg = dict(config)
    conf = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(conf, dtype=torch.bfloat16)
    return conf, model, set(get_keys_to_not_convert(model))


def _random(shape, name: str, device: str, gen: torch.Generator) -> torch.Tensor:
    if name.endswith("bias"):
        return torch.zeros(shape, dtype=torch.bfloat16, device=device)
    if len(shape) == 1:                      # norms: ones, as initialised
        return torch.ones(shape, dtype=torch.bfloat16, device=device)
    return (torch.randn(shape, generator=gen, device=device) * 0.02).to(torch.bfloat16)


def _quantized(weight: torch.Tensor, prefix: str) -> dict[str, torch.Tensor]:
    """The state-dict entries bitsandbytes' Linear4bit saves for ``weight`` (see its _save_to_state_dict)."""
    import bitsandbytes.functional as F
    packed, state = F.quantize_4bit(weight, quant_type="nf4", compress_statistics=True, quant_storage=torch.uint8)
    out = {f"{prefix}.weight": packed}
    for k, v in state.as_dict(packed=True).items():
        out[f"{prefix}.weight.{k}"] = v
    return out


def build_bf16(config: dict, out: Path, tokenizer_dir: Path) -> Path:
    """bfloat16 random weights of ``config`` (``model_type`` and its sizes) with the tokenizer beside them and
    its special-token ids in the config; built on the GPU when there is one, in bfloat16 from the start."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = dict(config)
    conf = AutoConfig.for_model(cfg.pop("model_type"), **cfg, bos_token_id=tok.bos_token_id,
                                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(conf, dtype=torch.bfloat16)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def build(config: dict, out: Path, tokenizer_dir: Path | None = None, device: str | None = None) -> Path:
    """Write the 4-bit folder; returns it. Peak memory is one module's 16-bit weight."""
    from safetensors.torch import save_file

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    conf, model, skip = _skeleton(config)
    gen = torch.Generator(device=device).manual_seed(0)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shard: dict[str, torch.Tensor] = {}
    index: dict[str, str] = {}
    size = 0

    def flush():
        nonlocal shard, size
        if not shard:
            return
        name = f"model-{len(set(index.values())) + 1:05d}.safetensors"
        save_file({k: v.contiguous().cpu() for k, v in shard.items()}, str(tmp / name), metadata={"format": "pt"})
        index.update({k: name for k in shard})
        shard, size = {}, 0

    seen: set[int] = set()
    for mname, module in model.named_modules():
        direct = list(module.named_parameters(recurse=False))
        if not direct:
            continue
        quantize = isinstance(module, torch.nn.Linear) and mname not in skip
        for pname, p in direct:
            if id(p) in seen:                # tied weights are saved once, under their first name
                continue
            seen.add(id(p))
            w = _random(tuple(p.shape), pname, device, gen)
            entries = _quantized(w, mname) if quantize and pname == "weight" else {f"{mname}.{pname}": w}
            for k, v in entries.items():
                shard[k] = v
                size += v.numel() * v.element_size()
            del w
        if size >= SHARD_BYTES:
            flush()
    flush()
    (tmp / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": sum((tmp / f).stat().st_size for f in set(index.values()))},
         "weight_map": index}, indent=1))
    conf.quantization_config = quantization_config()
    conf.dtype = "bfloat16"
    conf.save_pretrained(tmp)
    if tokenizer_dir is not None:
        from transformers import AutoTokenizer
        AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def main() -> int:
    from memory_scenarios import SHAPES_BY_NAME

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", required=True, choices=sorted(SHAPES_BY_NAME))
    ap.add_argument("--bits", type=int, choices=(4, 16), default=4)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    make = build if a.bits == 4 else build_bf16
    path = make(SHAPES_BY_NAME[a.shape], Path(a.out), Path(a.tokenizer))
    gb = sum(f.stat().st_size for f in path.glob("*.safetensors")) / 1e9
    print(f"{a.shape}: {gb:.1f} GB in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
