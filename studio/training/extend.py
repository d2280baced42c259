"""Extend a finished run: a new run folder whose LoRA starts from the old run's adapter.

    cfg, origin = plan_extend(run_dir, max_steps=50)
    get_manager().start(cfg, init_adapter=Path(run_dir) / "adapter", origin=origin)

The optimizer and schedule start fresh (the old run's schedule has ended); the new run's
``fingerprint.json`` records ``extended_from`` (the old folder, its steps and adapter), so the chain of
runs can be followed back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import StudioConfig, merge
from ..errors import ResumeError
from ..runs import RunFolder


def load_adapter_weights(peft_model: Any, adapter_dir: str | Path) -> None:
    """Copy a saved adapter's LoRA weights into ``peft_model`` (built with the same LoRA settings)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = Path(adapter_dir) / "adapter_model.safetensors"
    if not path.is_file():
        raise ResumeError("There is no adapter to start from in {path}.", code="extend.no_adapter_file",
                          path=str(adapter_dir))
    from ..models.weights_check import check_adapter
    check_adapter(adapter_dir)
    result = set_peft_model_state_dict(peft_model, load_file(str(path)))
    # A layer's key the model lacks. The virtual tokens of prompt / prefix tuning are loaded into their own
    # encoder (strictly, a wrong size raises there) and listed as unexpected by the model's own load.
    missing = [k for k in getattr(result, "unexpected_keys", []) if k.startswith("base_model.")]
    if missing:
        raise ResumeError("The adapter in {path} does not fit this model's LoRA layers (for example {example}).",
                          code="extend.adapter_mismatch", path=str(adapter_dir), example=missing[0])


def plan_extend(run_dir: str | Path, max_steps: int | None = None, epochs: float | None = None,
                output_dir: str | None = None) -> tuple[StudioConfig, dict]:
    """The config of the extension (the old run's, with the new length) and its origin record."""
    run = RunFolder(run_dir)
    if not run.config_path.is_file():
        raise ResumeError("{path} is not a run folder (it has no config.yaml).", code="run.not_a_run", path=str(run.path))
    if not run.has_adapter():
        raise ResumeError("The run {name} has no saved adapter to extend.", code="extend.no_adapter", name=run.name)
    from ..models.weights_check import check_adapter
    check_adapter(run.adapter_dir, run.name)
    if not max_steps and not epochs:
        raise ResumeError("Say how much longer to train: a number of steps (training.max_steps) or of epochs "
                          "(training.epochs).", code="extend.no_length")
    cfg = run.config()
    training: dict[str, Any] = {"max_steps": int(max_steps or 0), "output_dir": output_dir or ""}
    if epochs:
        training["epochs"] = float(epochs)
    name = f"{cfg.name or run.name}-extended"
    changes: dict[str, Any] = {"training": training, "name": name}
    if cfg.lora.init != "default":
        # A PiSSA / OLoRA run saved its adapter as a plain LoRA of twice the rank on the original base
        # (training/initial_adapter.py): the extension goes on from that LoRA, on that base.
        changes["lora"] = {"init": "default", "r": cfg.lora.r * 2,
                           "alpha": round(cfg.lora.alpha * (2 ** 0.5 if cfg.lora.use_rslora else 2))}  # peft keeps the scale
    cfg = merge(cfg, changes)     # validated when the run starts (jobs.py)
    state = run.read_state() or {}
    origin = {"extended_from": {"run_dir": str(run.path.resolve()), "name": run.name,
                                "steps": state.get("step"), "adapter": str(run.adapter_dir.resolve())}}
    return cfg, origin


def plan_from_run(run_dir: str | Path, cfg: StudioConfig) -> tuple[StudioConfig, dict]:
    """A new run of ``cfg`` (its method, data and training settings: e.g. DPO on preference data) that starts
    from a finished run's adapter (e.g. an SFT run's): the earlier run's base model, LoRA shape and template are
    kept, since the adapter only fits them; the origin record names the run it started from."""
    run = RunFolder(run_dir)
    if not run.config_path.is_file():
        raise ResumeError("{path} is not a run folder (it has no config.yaml).", code="run.not_a_run", path=str(run.path))
    if not run.has_adapter():
        raise ResumeError("The run {name} has no saved adapter to start from.", code="from_run.no_adapter",
                          name=run.name)
    from ..models.weights_check import check_adapter
    check_adapter(run.adapter_dir, run.name)
    before = run.config()
    out = merge(cfg, {"model": before.to_dict()["model"], "lora": before.to_dict()["lora"],
                      "data": {"template": before.data.template}})
    if not cfg.name:
        out = merge(out, {"name": f"{before.name or run.name}-{cfg.training.method}"})
    state = run.read_state() or {}
    origin = {"started_from": {"run_dir": str(run.path.resolve()), "name": run.name,
                               "method": before.training.method, "steps": state.get("step"),
                               "adapter": str(run.adapter_dir.resolve())}}
    return out, origin
