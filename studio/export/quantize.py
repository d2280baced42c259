"""llama.cpp's own quantizer for the K-quant GGUF types (Q4_K_M, Q5_K_M, Q6_K).

The ``gguf`` package writes f16 and q8_0 but has no K-quant quantizer, so the f16 file the studio writes
is handed to ``llama_model_quantize`` from llama-cpp-python (the Python binding of llama.cpp, an
optional dependency: ``pip install "finetune-studio[gguf]"``). It is the same code as llama.cpp's
``llama-quantize`` tool, so the file is what llama.cpp, Ollama and LM Studio expect.

Tensors whose rows are not a multiple of 256 values (SmolLM2-135M's hidden size is 576) cannot hold
K-quant blocks; llama.cpp quantizes those with its fallback type (q5_0, q5_1, q8_0...), so a small
model's Q4_K_M file is larger than 4.5 bits per weight.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Any

from ..errors import ExportError

# name used by the studio -> llama.cpp's LLAMA_FTYPE_MOSTLY_<NAME>
K_QUANTS = {"q4_k_m": "Q4_K_M", "q5_k_m": "Q5_K_M", "q6_k": "Q6_K"}

INSTALL = 'pip install "finetune-studio[gguf]"   (or: pip install llama-cpp-python)'


def llama_cpp() -> Any:
    """The ``llama_cpp`` module, or an ExportError saying what to install."""
    try:
        import llama_cpp as module
    except ImportError:
        raise ExportError("This export needs llama.cpp's Python package (llama-cpp-python), which is not installed. "
                          "Install it with: {install}", code="export.no_llama_cpp", install=INSTALL) from None
    except OSError as e:       # the package is there but its compiled library does not load
        raise ExportError("llama-cpp-python is installed but its llama.cpp library does not load: {detail}",
                          code="export.llama_cpp_broken", detail=str(e)) from None
    return module


def available() -> bool:
    try:
        llama_cpp()
    except ExportError:
        return False
    return True


def quantize(source: Path, dest: Path, kind: str, threads: int | None = None) -> None:
    """Quantize the f16/f32 GGUF ``source`` into ``dest`` as ``kind`` (a key of ``K_QUANTS``)."""
    lib = llama_cpp()
    name = K_QUANTS[kind]
    ftype = getattr(lib, f"LLAMA_FTYPE_MOSTLY_{name}", None)
    if ftype is None:
        raise ExportError("The installed llama-cpp-python does not know the type {kind}.",
                          code="export.llama_cpp_type", kind=name)
    params = lib.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads or max(1, (os.cpu_count() or 1))
    result = lib.llama_model_quantize(str(source).encode(), str(dest).encode(), ctypes.byref(params))
    if result != 0 or not dest.is_file():
        raise ExportError("llama.cpp could not quantize the file to {kind} (error {result}).",
                          code="export.quantize_failed", kind=name, result=result)
