"""PiSSA / OLoRA adapters (``lora.init``): saved so that they work on the original base.

Those initialisations take each weight's main directions out of the base weight (W = W_res + B0 A0)
and train them as the adapter, so the trained adapter alone fits only the changed base. peft converts
it on saving: with the initial adapter kept (``adapter_init/`` in the run folder, written before the first
step), the change ΔW = BA - B0A0 is a plain LoRA of twice the rank on the original W
(``save_pretrained(path_initial_model_for_weight_conversion=...)``). That is what ``adapter/`` holds, so
chat, evaluation, extend, merge and export load it on the unchanged base like any LoRA.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

INITIAL = "adapter_init"


def initial_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / INITIAL


def save_initial(peft_model: Any, run_dir: str | Path) -> None:
    """The adapter as initialised, before any step (a resumed run keeps the one its first start wrote)."""
    folder = initial_dir(run_dir)
    if (folder / "adapter_model.safetensors").is_file():
        return
    cfg = peft_model.peft_config["default"]
    init = cfg.init_lora_weights
    cfg.init_lora_weights = True      # peft's recipe: reloaded, it must not decompose the weights again
    try:
        peft_model.save_pretrained(str(folder), safe_serialization=True)
    finally:
        cfg.init_lora_weights = init


def save_converted(peft_model: Any, folder: str | Path, run_dir: str | Path) -> None:
    """The trained adapter as a LoRA on the original base (rank 2r)."""
    peft_model.save_pretrained(str(folder), safe_serialization=True,
                               path_initial_model_for_weight_conversion=str(initial_dir(run_dir)))


def restore_original(peft_model: Any, adapter_dir: str | Path, run_dir: str | Path) -> Any:
    """The original base (W_res + B0A0) with the converted adapter on it, for chat after training."""
    import warnings

    from peft import PeftModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        residual = peft_model.unload()
        original = PeftModel.from_pretrained(residual, str(initial_dir(run_dir))).merge_and_unload()
        return PeftModel.from_pretrained(original, str(adapter_dir))


def convert_folder(folder: str | Path, run_dir: str | Path) -> None:
    """Convert a saved, unconverted PiSSA / OLoRA adapter in ``folder`` in place, the way peft's
    ``save_pretrained(path_initial_model_for_weight_conversion=...)`` does: A' = [A; A0], B' = [B, -B0],
    twice the rank, alpha scaled to keep alpha/r (alpha/sqrt(r) with rsLoRA), initialised as plain LoRA.
    For an adapter that was saved from files rather than from the model (FSDP's gathered checkpoint)."""
    import json

    import torch
    from safetensors.torch import load_file, save_file

    folder = Path(folder)
    trained = load_file(str(folder / "adapter_model.safetensors"))
    initial = load_file(str(initial_dir(run_dir) / "adapter_model.safetensors"))
    out = {}
    for key, value in trained.items():
        if "lora_A" in key:
            out[key] = torch.cat([value, initial[key]], dim=0).contiguous()
        elif "lora_B" in key:
            out[key] = torch.cat([value, -initial[key]], dim=1).contiguous()
        else:
            out[key] = value
    save_file(out, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    config_path = folder / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["r"] *= 2
    config["lora_alpha"] *= 2 ** 0.5 if config.get("use_rslora") else 2
    config["init_lora_weights"] = True
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
