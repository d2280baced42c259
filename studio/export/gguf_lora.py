"""The run's LoRA adapter as a llama.cpp adapter GGUF, beside an f16 GGUF of its untouched base.

    <run>-LoRA-F16.gguf          the adapter: general.type "adapter", adapter.type "lora", adapter.lora.alpha
    <base>-base-F16.gguf         the base it applies to (written once, reused by later adapter exports)
    <run>-LoRA-F16.Modelfile     FROM ./<base>-base-F16.gguf + ADAPTER ./<run>-LoRA-F16.gguf

    llama-cli -m <base>-base-F16.gguf --lora <run>-LoRA-F16.gguf
    Llama(model_path=<base>, lora_path=<adapter>)          (llama-cpp-python)

Each adapted linear layer becomes two tensors named after the base tensor (``gguf.py``'s mapping):
``blk.N.attn_q.weight.lora_a`` (peft's A, rank x in) and ``.lora_b`` (peft's B, out x rank). ggml reads a
numpy (rows, cols) array as ne = (cols, rows), which is the layout llama.cpp checks (A's ne[0] = the base
tensor's ne[0], B's ne[1] = its ne[1], A's ne[1] = B's ne[0] = rank), so peft's arrays go in as they are.
The query and key rows of the base are permuted to llama.cpp's rotary layout, so B's rows (the output
side) are permuted the same way; A (the input side) is not.

llama.cpp scales every adapted layer by alpha / rank (rank read from the tensor). peft scales by
lora_alpha / r, or lora_alpha / sqrt(r) with rsLoRA, per layer with rank_pattern / alpha_pattern: the file
holds one alpha, that of the first layer in llama.cpp's terms (rsLoRA: alpha * sqrt(r), so alpha_eff / r =
alpha / sqrt(r)), and any layer whose own scale differs has the ratio folded into its B.

Refused, with the reason: DoRA (its magnitude vectors have no place in the format), other PEFT types than
LoRA, LoRA on the embedding or head, full copies of layers (modules_to_save), LoRA biases.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import ExportError
from ..models.sources import is_builtin
from ..runs import RunFolder
from .files import check_free_space, side_path

TYPES = ("f16", "f32")
_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<part>A|B)\.weight$")


def adapter_type(name: str) -> str:
    kind = (name or "f16").strip().lower()
    kind = "f16" if kind == "auto" else kind
    if kind not in TYPES:
        raise ExportError("Unknown GGUF adapter type '{kind}'; choose one of {choices}.",
                          code="export.unknown_lora_type", kind=name, choices=", ".join(t.upper() for t in TYPES))
    return kind


def check_adapter_config(config: dict) -> None:
    """ExportError for an adapter llama.cpp's LoRA format cannot hold (see the module's text)."""
    kind = str(config.get("peft_type", "LORA")).upper()
    if kind != "LORA":
        raise ExportError("The run's adapter is a {kind} adapter; llama.cpp's adapter files hold LoRA only.",
                          code="export.lora_not_lora", kind=kind)
    if config.get("use_dora"):
        raise ExportError("The run's adapter uses DoRA; llama.cpp's adapter files cannot hold DoRA's magnitude "
                          "vectors.", code="export.lora_dora")
    if config.get("modules_to_save"):
        raise ExportError("The run's adapter trains whole copies of {modules} (modules_to_save); llama.cpp's adapter "
                          "files hold low-rank changes only.", code="export.lora_full_modules",
                          modules=", ".join(config["modules_to_save"]))
    if config.get("bias", "none") != "none":
        raise ExportError("The run's adapter trains biases (bias '{bias}'); llama.cpp's adapter files hold none.",
                          code="export.lora_bias", bias=config["bias"])


def peft_scale(config: dict, module: str, rank: int) -> float:
    """peft's scale of one layer: alpha / r, alpha / sqrt(r) with rsLoRA; rank_pattern / alpha_pattern read
    as peft matches them (a key matches the layer's name or its end)."""
    alpha = float(config.get("lora_alpha", 8))
    for key, value in (config.get("alpha_pattern") or {}).items():
        if module == key or module.endswith("." + key) or re.fullmatch(key, module):
            alpha = float(value)
    return alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank


def lora_tensors(adapter_dir: Path, model_config: Any) -> tuple[float, list[tuple[str, np.ndarray]]]:
    """(alpha for the file, [(GGUF name, float32 array)...]) of the peft adapter in ``adapter_dir``."""
    import gguf
    from safetensors.numpy import load_file

    from .gguf import LLAMA_FAMILY, _permute

    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    check_adapter_config(config)
    if model_config.model_type not in LLAMA_FAMILY:
        raise ExportError("GGUF export is available for Llama-family models (Llama, SmolLM, Mistral); this run's base "
                          "is '{kind}'.", code="export.gguf_family", kind=model_config.model_type)
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, value in weights.items():
        match = _KEY.match(key)
        if match is None:        # lora_embedding_A/B, magnitude vectors, trainable tokens...
            raise ExportError("The adapter holds {tensor}, which llama.cpp's adapter files cannot hold (LoRA on "
                              "linear layers only, not on the embedding or head).", code="export.lora_tensor",
                              tensor=key)
        pairs.setdefault(match["module"], {})[match["part"]] = value.astype(np.float32)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, model_config.num_hidden_layers)
    heads = model_config.num_attention_heads
    kv_heads = model_config.num_key_value_heads or heads
    alpha_file: float | None = None
    out: list[tuple[str, np.ndarray]] = []
    for module in sorted(pairs):
        a, b = pairs[module]["A"], pairs[module]["B"]
        base_name = names.get_name(module + ".weight", try_suffixes=(".weight",))
        if base_name is None or module.endswith(("embed_tokens", "lm_head")):
            raise ExportError("The adapter changes {tensor}, which llama.cpp's adapter files cannot hold (LoRA on "
                              "linear layers only, not on the embedding or head).", code="export.lora_tensor",
                              tensor=module)
        rank = a.shape[0]
        scale = peft_scale(config, module, rank)
        if alpha_file is None:
            alpha_file = scale * rank                # llama.cpp's alpha / rank gives back this layer's scale
        b = b * (scale / (alpha_file / rank))         # 1.0 unless this layer's rank or alpha differs
        if module.endswith("q_proj"):
            b = _permute(b, heads)
        elif module.endswith("k_proj"):
            b = _permute(b, kv_heads)
        out += [(base_name + ".lora_a", a), (base_name + ".lora_b", b)]
    if not out:
        raise ExportError("The run's adapter holds no LoRA layers.", code="export.lora_empty")
    return float(alpha_file), out


def write_lora_gguf(adapter_dir: Path, model_config: Any, path: Path, kind: str = "f16", name: str = "") -> int:
    """Write the adapter GGUF; returns the number of adapted layers."""
    import gguf

    alpha, tensors = lora_tensors(adapter_dir, model_config)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    writer.add_name(name or "studio-lora")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if kind == "f16" else gguf.LlamaFileType.ALL_F32)
    for tensor_name, data in tensors:
        writer.add_tensor(tensor_name, data.astype(np.float16 if kind == "f16" else np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return len(tensors) // 2


def base_name(run_dir: str | Path) -> str:
    """The base GGUF's name, the same for every run on one base: its source's last part, and the 4-bit
    kind for a QLoRA run (its adapter applies to the dequantized 4-bit weights, not the original ones)."""
    cfg = RunFolder(run_dir).config().model
    source = "SmolLM2-135M-Instruct" if is_builtin(cfg.source) else Path(cfg.source.rstrip("/")).name
    source = Path(source).stem if source.endswith(".gguf") else source
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", source).strip("-") or "base"
    rounded = "" if cfg.quantization == "none" else f"-{cfg.quantization}-dequantized"
    return f"{slug}{rounded}-base-F16.gguf"


def export_gguf_lora(run_dir: str | Path, final: Path, kind: str = "f16",
                     progress: Callable[[str], None] = print) -> Path:
    """The adapter GGUF ``final``, the base GGUF beside it (written when not there yet) and the Modelfile."""
    from .adapter import check_adapter
    from .files import refuse_existing
    from .gguf import write_gguf
    from .modelfile import modelfile_path, write_modelfile

    run = RunFolder(run_dir)
    check_adapter(run)
    refuse_existing(modelfile_path(final))
    model_config = _base_config(run)
    base = final.with_name(base_name(run_dir))
    with side_path(final) as partial:
        layers = write_lora_gguf(run.adapter_dir, model_config, partial, kind, name=f"{run.name} LoRA")
    progress(f"Wrote the adapter of {run.name} ({layers} layers) as {final.name}.")
    if base.is_file():
        progress(f"Its base is {base.name}, already written by an earlier export.")
        tokenizer, template = _tokenizer(run)
    else:
        from ..models.size import facts_for
        facts = facts_for(run.config().model) or {}
        check_free_space(base.parent, int((facts.get("num_params") or 0) * 2), "the base GGUF file")
        progress(f"Writing the base model as {base.name} (f16, once: later adapter exports of this base reuse it)...")
        import torch

        from .merge import run_base
        model, tokenizer, template = run_base(run_dir, torch.float32)
        with side_path(base) as partial:
            write_gguf(model, tokenizer, template, partial, "f16", progress)
        del model
    write_modelfile(final, run_dir, tokenizer, template, base=base)
    progress(f"The adapter needs its base: load {base.name} with {final.name} "
             f"(llama.cpp: -m {base.name} --lora {final.name}; Ollama: the Modelfile names both).")
    return final


def _base_config(run: RunFolder) -> Any:
    from transformers import AutoConfig

    from ..models.sources import resolve_source
    cfg = run.config().model
    return AutoConfig.from_pretrained(str(resolve_source(cfg.source, cfg.trust_remote_code)))


def _tokenizer(run: RunFolder) -> tuple[Any, str]:
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(run.adapter_dir))
    template_file = run.adapter_dir / "chat_template.jinja"
    template = template_file.read_text(encoding="utf-8") if template_file.is_file() else tokenizer.chat_template
    return tokenizer, template


def is_adapter(path: str | Path) -> bool:
    """True for a llama.cpp adapter GGUF (general.type 'adapter'), False for a model or anything else."""
    import gguf
    try:
        field = gguf.GGUFReader(str(path)).fields.get("general.type")
    except Exception:       # not a GGUF file at all: not an adapter
        return False
    return field is not None and bytes(field.parts[-1]).decode("utf-8") == "adapter"


# ---- this export as run_export.FORMATS reads it ------------------------------------------------

APP_CHOICES = ("gguf-lora",)


def file_name(dtype: str = "auto") -> tuple[str, str]:
    """``<run>-LoRA-F16.gguf``: the type as llama.cpp names it, after 'LoRA' so it reads as an adapter."""
    return f"LoRA-{adapter_type(dtype).upper()}", ".gguf"


def write(run_dir: str | Path, dest: Path, dtype: str = "auto", original: bool = False,
          progress: Callable[[str], None] = print) -> Path:
    return export_gguf_lora(run_dir, dest, adapter_type(dtype), progress)
