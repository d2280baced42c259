"""Base models: where one comes from, loading it, LoRA on it, and its size and the memory a run needs.

- ``sources.py``: every source (``default``, a .gguf file, a folder, a Hub id) becomes a local folder;
- ``load.py``: the device and number format, the tokenizer, the model, what a loaded model is;
- ``lora.py``: ``apply_lora``, ``linear_module_names``, ``parameter_counts``;
- ``size.py``: sizes from config.json alone (``config_facts``, ``facts_for``) and the memory estimate;
- ``weights_check.py``: damaged or incomplete weight files, named.

The studio imports each name from the module that owns it. The names in ``__all__`` are also reachable
as ``studio.models.NAME``, loaded on first use: importing ``studio.models.sources`` alone (the Hub push,
the adapter export) must not import torch. A test that replaces a function replaces it in its own module
(``studio.models.load.device_info``), where its callers look it up.
"""

from __future__ import annotations

import warnings
from typing import Any

# peft asks every model it wraps for ``is_gradient_checkpointing``, which transformers 5 deprecates with a
# FutureWarning: `studio eval` and `studio export` printed it to people who can do nothing about it.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)

_HOMES = {
    "load": ("device_info", "dtype_and_note", "resolve_dtype", "free_gpu", "load_tokenizer", "load_model",
             "check_vocabulary", "quantization_of", "model_summary", "_cpu_has_bf16"),
    "lora": ("apply_lora", "linear_module_names", "parameter_counts"),
    "size": ("meta_model", "size_facts", "config_facts", "facts_for", "estimate_memory", "estimate_from_facts"),
    "sources": ("resolve_source", "default_gguf", "default_model_dir", "is_converted", "convert_gguf",
                "looks_like_hub_id", "hub_config", "builtin_config", "remote_code_error"),
    "weights_check": ("check_adapter", "damaged_files", "looks_like_damaged_weights"),
}
_HOME_OF = {name: home for home, names in _HOMES.items() for name in names}
__all__ = sorted(_HOME_OF)


def __getattr__(name: str) -> Any:
    home = _HOME_OF.get(name)
    if home is None:     # a submodule not imported yet is asked for here too: the import system then loads it
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import load, lora, size, sources, weights_check  # noqa: F401  (each becomes an attribute here)
    return getattr(globals()[home], name)
