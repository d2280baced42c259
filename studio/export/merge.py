"""The adapter merged into a 16-bit copy of the base, saved as a standard transformers folder.

Never merged into 4-bit weights. For a QLoRA run the adapter was trained against the NF4-rounded
weights, not the original ones (measured on an H100: the same 300-step QLoRA adapter gives the
reference answer on its 4-bit base but a wrong one on the original bf16 base, reference NLL 0.012 vs
0.545), so the base is loaded quantized exactly as in training and dequantized (transformers'
``model.dequantize``, bitsandbytes underneath) before peft's ``merge_and_unload``. ``original=True``
merges into the original weights instead, for comparison.

The folder holds safetensors, the tokenizer with the chat template trained with, and the generation
config; ``AutoModelForCausalLM.from_pretrained(folder)`` loads it with no studio and no peft.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable

import torch

from ..runs import RunFolder
from .files import check_free_space, side_path
from ..errors import ExportError

DTYPES = {"auto": None, "bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def merge_dtype(name: str = "auto") -> torch.dtype:
    """'auto': bfloat16 on a GPU that has it, else float16 on a GPU, float32 on a CPU (16-bit maths is slow there)."""
    if name not in DTYPES:
        raise ExportError("Unknown dtype '{name}'; choose one of {choices}.", code="export.unknown_dtype", name=name,
                          choices=", ".join(DTYPES))
    if DTYPES[name] is not None:
        return DTYPES[name]
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def check_mergeable(run_dir: str | Path, what: str = "a merged model") -> None:
    """A prompt-based adapter (prefix / prompt tuning, LLaMA-Adapter) is extra tokens the model reads, not a
    change of its weights: there is nothing to merge, so neither a merged model nor a GGUF can hold it."""
    from ..config import PROMPT_ADAPTERS

    run = RunFolder(run_dir)
    adapter = run.config().lora.adapter
    if adapter in PROMPT_ADAPTERS:
        raise ExportError("The run {name} trained a '{adapter}' adapter: learned virtual tokens the model reads "
                          "before the text, not a change of its weights, so it cannot be merged into {what}. "
                          "Chat with the run, or export the adapter itself (--to adapter), which peft loads on "
                          "the base.", code="export.not_mergeable", name=run.name, adapter=adapter, what=what)


def merged_model(run_dir: str | Path, dtype: torch.dtype, original: bool = False) -> tuple[Any, Any, str]:
    """(merged model, tokenizer, chat template) of a run, in memory."""
    from peft import PeftModel

    base, tokenizer, template = run_base(run_dir, dtype, original)
    model = PeftModel.from_pretrained(base, str(RunFolder(run_dir).adapter_dir))
    merged = model.merge_and_unload()
    merged.eval()
    return merged, tokenizer, template


def run_base(run_dir: str | Path, dtype: torch.dtype, original: bool = False) -> tuple[Any, Any, str]:
    """(base model, tokenizer, chat template) of a run: the weights its adapter applies to (a QLoRA run's
    dequantized 4-bit weights unless ``original``), in ``dtype``, without the adapter."""
    from ..models.load import load_model

    check_mergeable(run_dir)
    run = RunFolder(run_dir)
    if not run.has_adapter():
        raise ExportError("The run {name} has no saved adapter yet; export it once it has finished or stopped.",
                          code="export.no_adapter", name=run.name)
    from ..models.weights_check import check_adapter
    check_adapter(run.adapter_dir, run.name)
    cfg = run.config()
    quantized = cfg.model.quantization != "none"
    compute = {torch.bfloat16: "bfloat16", torch.float16: "float16", torch.float32: "float32"}[dtype]
    model_cfg = dataclasses.replace(cfg.model, compute_dtype=compute,
                                    quantization="none" if original else cfg.model.quantization)
    base = load_model(model_cfg, for_training=False)
    if quantized and not original:
        base = base.dequantize(dtype=dtype)     # the rounded weights the adapter learned against
    base = base.to(dtype)
    base.eval()
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(run.adapter_dir))
    template_file = run.adapter_dir / "chat_template.jinja"
    template = template_file.read_text(encoding="utf-8") if template_file.is_file() else tokenizer.chat_template
    return base, tokenizer, template


def export_merged(run_dir: str | Path, final: Path, dtype_name: str = "auto", original: bool = False,
                  progress: Callable[[str], None] = print) -> Path:
    dtype = merge_dtype(dtype_name)
    check_mergeable(run_dir)
    run = RunFolder(run_dir)
    from ..models.size import facts_for
    facts = facts_for(run.config().model) or {}     # unknown: the merge itself says what is wrong
    needed = int(facts.get("num_params") or 0) * torch.finfo(dtype).bits // 8
    check_free_space(final.parent, needed, "the merged model")
    with side_path(final) as partial:
        progress(f"Loading the base model and the adapter of {run.name}...")
        model, tokenizer, template = merged_model(run_dir, dtype, original)
        progress(f"Saving the merged model ({str(dtype).removeprefix('torch.')})...")
        save_merged(model, tokenizer, template, partial, run)
    return final


def save_merged(model: Any, tokenizer: Any, template: str, folder: Path, run: RunFolder) -> None:
    model.config.use_cache = True
    if getattr(model.config, "quantization_config", None) is not None:   # dequantized: a plain model now
        del model.config.quantization_config
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.chat_template = template
    tokenizer.save_pretrained(str(folder))
    (folder / "chat_template.jinja").write_text(template, encoding="utf-8")
    from .adapter import base_record
    (folder / "studio_export.json").write_text(json.dumps({"run": run.name, "base": base_record(run)}, indent=2),
                                               encoding="utf-8")


# ---- this export as run_export.FORMATS reads it ------------------------------------------------

APP_CHOICES = ("merged",)


def file_name(dtype: str = "auto") -> tuple[str, str]:
    """This export's part of the file name, and its suffix (a merged model is a folder: none)."""
    return "merged", ""


def write(run_dir: str | Path, dest: Path, dtype: str = "auto", original: bool = False,
          progress: Callable[[str], None] = print) -> Path:
    return export_merged(run_dir, dest, dtype, original, progress)
