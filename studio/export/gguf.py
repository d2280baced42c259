"""A merged Llama-family model as one GGUF file for llama.cpp, Ollama and LM Studio.

f16, q8_0 and f32 are written here; the K-quants (Q4_K_M, Q5_K_M, Q6_K) are the f16 file quantized by
llama.cpp's own quantizer (``quantize.py``, needs llama-cpp-python). Every export gets an Ollama
``Modelfile`` beside it (``modelfile.py``) and an LM Studio-style name (``<model>-Q4_K_M.gguf``).

Written with the ``gguf`` package's ``GGUFWriter`` the way llama.cpp's own converter writes Llama:
tensor names from ``gguf.get_tensor_name_map``, the query/key weights permuted to llama.cpp's rotary
layout (transformers' GGUF loader undoes it), 1-D tensors (norms) kept in float32, q8_0 blocks made by
``gguf.quants.quantize``. A byte-level BPE tokenizer goes in as ``gpt2`` tokens and merges, a
SentencePiece-style one (Llama 2, Mistral) as ``llama`` pieces with scores, with the chat template
trained with. Verified by reading the file back with transformers' own GGUF loader
(``from_pretrained(folder, gguf_file=...)``), see tests/test_export_gguf.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .files import check_free_space, side_path
from ..errors import ExportError

LLAMA_FAMILY = {"llama", "mistral"}
WRITTEN = ("f16", "q8_0", "f32")                 # written by the gguf package, no other dependency
QUANTIZED = ("q4_k_m", "q5_k_m", "q6_k")          # f16 quantized by llama.cpp (llama-cpp-python)
TYPES = ("q4_k_m", "q5_k_m", "q6_k", "q8_0", "f16", "f32")
# Bytes per parameter, roughly, for the free-space check (measured on the built-in model, see docs/BENCHMARKS.md).
BYTES_PER_PARAM = {"f32": 4, "f16": 2, "q8_0": 1.07, "q6_k": 0.9, "q5_k_m": 0.8, "q4_k_m": 0.75}
# One plain line for people choosing a type (CLI help, export output, the Runs tab).
PICK = ("Which one? Q4_K_M: the usual choice for laptops and Ollama (smallest, answers a little less exactly); "
        "Q5_K_M / Q6_K: a bit larger, closer to the original; Q8_0: almost the same answers as f16 at half its "
        "size; f16: the exact model, largest.")


def gguf_type(name: str) -> str:
    """'Q4_K_M', 'q4_k_m', 'F16'... as one of ``TYPES`` (ExportError for any other name)."""
    kind = (name or "f16").strip().lower()
    kind = "f16" if kind == "auto" else kind
    if kind not in TYPES:
        raise ExportError("Unknown GGUF type '{kind}'; choose one of {choices}.", code="export.unknown_gguf_type",
                          kind=name, choices=", ".join(label(t) for t in TYPES))
    return kind


def label(kind: str) -> str:
    """The type as llama.cpp and LM Studio write it in file names: Q4_K_M, Q8_0, F16."""
    return kind.upper()


def _permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's rotary layout for q_proj / k_proj rows (convert_hf_to_gguf's LlamaModel.permute)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _tokenizer_metadata(writer: Any, tokenizer: Any, template: str) -> None:
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    model = backend["model"]
    if model.get("type") == "BPE" and model.get("byte_fallback"):
        _sentencepiece_vocab(writer, tokenizer, model)       # Llama 2, Mistral 7B: '▁' words, <0x..> bytes
    elif model.get("type") == "BPE" and "ByteLevel" in json.dumps(backend.get("pre_tokenizer")):
        _byte_level_vocab(writer, tokenizer, model)          # Llama 3, SmolLM, Qwen
    else:
        raise ExportError("GGUF export supports BPE tokenizers, byte-level (Llama 3, SmolLM, Qwen) or SentencePiece-"
                          "style (Llama 2, Mistral); this model's tokenizer is {kind}.", code="export.gguf_tokenizer",
                          kind=str(model.get("type")))
    for name, setter in (("bos_token_id", writer.add_bos_token_id), ("eos_token_id", writer.add_eos_token_id),
                         ("pad_token_id", writer.add_pad_token_id), ("unk_token_id", writer.add_unk_token_id)):
        value = getattr(tokenizer, name, None)
        if value is not None:
            setter(int(value))
    writer.add_chat_template(template)


def _token_table(tokenizer: Any) -> tuple[list[str], list[Any]]:
    """Every token by id with its GGUF type: added special tokens CONTROL, other added ones USER_DEFINED."""
    import gguf
    vocab = tokenizer.get_vocab()
    size = max(vocab.values()) + 1
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [gguf.TokenType.UNUSED] * size
    for text, i in vocab.items():
        tokens[i] = text
        types[i] = gguf.TokenType.NORMAL
    for added in tokenizer.added_tokens_decoder.values():
        i = vocab[added.content]
        types[i] = gguf.TokenType.CONTROL if added.special else gguf.TokenType.USER_DEFINED
    return tokens, types


def _merges(model: dict) -> list[str]:
    return [" ".join(m) if isinstance(m, list) else m for m in model.get("merges", [])]


def _byte_level_vocab(writer: Any, tokenizer: Any, model: dict) -> None:
    tokens, types = _token_table(tokenizer)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(_merges(model))
    writer.add_add_bos_token(False)


def _sentencepiece_vocab(writer: Any, tokenizer: Any, model: dict) -> None:
    """llama.cpp's 'llama' (SentencePiece) vocabulary: the pieces, a score each (llama.cpp merges the pair
    whose result scores highest; a BPE-trained SentencePiece model scores its pieces by their rank, so
    the id's negative keeps the same order), byte pieces typed BYTE and the unknown piece UNKNOWN. The
    merges go in too, for readers that use them (transformers)."""
    import re

    import gguf
    tokens, types = _token_table(tokenizer)
    for i, text in enumerate(tokens):
        if re.fullmatch(r"<0x[0-9A-Fa-f]{2}>", text):
            types[i] = gguf.TokenType.BYTE
    if getattr(tokenizer, "unk_token_id", None) is not None:
        types[tokenizer.unk_token_id] = gguf.TokenType.UNKNOWN
    scores = [-float(i) if t == gguf.TokenType.NORMAL else 0.0 for i, t in enumerate(types)]
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_token_merges(_merges(model))
    writer.add_add_bos_token(bool(getattr(tokenizer, "add_bos_token", False)))    # as the tokenizer does


def write_gguf(model: Any, tokenizer: Any, template: str, path: Path, kind: str = "f16",
               progress: Callable[[str], None] = print) -> None:
    import gguf
    from gguf.quants import quantize

    cfg = model.config
    if cfg.model_type not in LLAMA_FAMILY:
        raise ExportError("GGUF export is available for Llama-family models (Llama, SmolLM, Mistral); this run's base "
                          "is '{kind}'.", code="export.gguf_family", kind=cfg.model_type)
    if kind not in WRITTEN:
        raise ExportError("Unknown GGUF type '{kind}'; choose one of {choices}.", code="export.unknown_gguf_type",
                          kind=kind, choices=", ".join(WRITTEN))
    heads, kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(getattr(cfg, "_name_or_path", "") or "studio-export")
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    rope = getattr(cfg, "rope_parameters", None) or {}
    theta = rope.get("rope_theta", getattr(cfg, "rope_theta", 10000.0))
    writer.add_rope_freq_base(float(theta))
    writer.add_vocab_size(cfg.vocab_size)
    file_type = {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
                 "f32": gguf.LlamaFileType.ALL_F32}[kind]
    writer.add_file_type(file_type)
    _tokenizer_metadata(writer, tokenizer, template)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    tied = bool(getattr(cfg, "tie_word_embeddings", False))
    state = model.state_dict()
    progress(f"Writing {len(state)} tensors as {kind}...")
    for hf_name, tensor in state.items():
        if tied and hf_name == "lm_head.weight":
            continue                      # llama.cpp reuses token_embd when there is no output tensor
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ExportError("The tensor {tensor} has no GGUF name; this model cannot be exported to GGUF.",
                              code="export.gguf_tensor", tensor=hf_name)
        data = tensor.detach().to(torch.float32).cpu().numpy()
        if hf_name.endswith("q_proj.weight"):
            data = _permute(data, heads)
        elif hf_name.endswith("k_proj.weight"):
            data = _permute(data, kv_heads)
        if data.ndim == 1 or kind == "f32":
            writer.add_tensor(name, data.astype(np.float32))
        elif kind == "f16":
            writer.add_tensor(name, data.astype(np.float16))
        elif data.shape[-1] % 32 == 0:
            writer.add_tensor(name, quantize(data, gguf.GGMLQuantizationType.Q8_0),
                              raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:                             # q8_0 works in blocks of 32 values along a row
            writer.add_tensor(name, data.astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def export_gguf(run_dir: str | Path, final: Path, kind: str = "f16", progress: Callable[[str], None] = print) -> Path:
    """The run merged and written as ``final`` (a .gguf of type ``kind``), with its Modelfile beside it
    (``modelfile.modelfile_path(final)``). A K-quant is the f16 file quantized by llama.cpp: the f16
    file is written beside as ``<final>.f16.partial`` and removed afterwards."""
    from ..models.size import facts_for
    from ..runs import RunFolder
    from .merge import check_mergeable, merged_model
    from .modelfile import modelfile_path, write_modelfile

    kind = gguf_type(kind)
    check_mergeable(run_dir, "a GGUF file")
    if kind in QUANTIZED:
        from .quantize import llama_cpp
        llama_cpp()                       # said before minutes of merging, not after
    from .files import refuse_existing
    refuse_existing(modelfile_path(final))
    facts = facts_for(RunFolder(run_dir).config().model) or {}   # unknown: the merge itself says what is wrong
    per_param = BYTES_PER_PARAM[kind] + (BYTES_PER_PARAM["f16"] if kind in QUANTIZED else 0)
    check_free_space(final.parent, int((facts.get("num_params") or 0) * per_param), "the GGUF file")
    with side_path(final) as partial:
        progress(f"Merging the adapter of {Path(run_dir).name} (float32, for an exact conversion)...")
        model, tokenizer, template = merged_model(run_dir, torch.float32)
        if kind in QUANTIZED:
            from .quantize import quantize
            f16 = final.with_name(final.name + ".f16.partial")
            try:
                write_gguf(model, tokenizer, template, f16, "f16", progress)
                del model
                progress(f"Quantizing to {label(kind)} with llama.cpp...")
                quantize(f16, partial, kind)
            finally:
                f16.unlink(missing_ok=True)      # only the quantized file is kept, whatever happened
        else:
            write_gguf(model, tokenizer, template, partial, kind, progress)
    write_modelfile(final, run_dir, tokenizer, template)
    return final


def modelfile_lines(gguf_path: Path) -> list[str]:
    """The lines of the Modelfile written beside an export (what the CLI prints)."""
    from .modelfile import modelfile_path
    return modelfile_path(gguf_path).read_text(encoding="utf-8").splitlines()


# ---- this export as run_export.FORMATS reads it ------------------------------------------------

APP_CHOICES = tuple(f"gguf-{t}" for t in TYPES if t != "f32")   # f32: twice f16's file for the same answers


def file_name(dtype: str = "auto") -> tuple[str, str]:
    """This export's part of the file name, and its suffix. LM Studio reads the type from the name:
    <model>-Q4_K_M.gguf. ``gguf_type`` refuses an unknown type (before, any other name was written as f16
    without a word)."""
    return label(gguf_type(dtype)), ".gguf"


def write(run_dir: str | Path, dest: Path, dtype: str = "auto", original: bool = False,
          progress: Callable[[str], None] = print) -> Path:
    return export_gguf(run_dir, dest, gguf_type(dtype), progress)
