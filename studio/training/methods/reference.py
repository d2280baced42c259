"""The reference of DPO and KTO, without a second copy of the model.

Given a ``PeftModel`` and no reference model, TRL 1.16 adds an adapter named "ref", a frozen copy of the trained
one, and computes the reference through it (``trl.trainer.utils.use_adapter``); with no "ref" adapter it switches
every adapter off, which is the base. A fresh LoRA adapter adds nothing (its B matrices are zero), so there the
copy is dropped again: the reference is the base with the adapter off. An adapter that already learned something
(a run started from an SFT run's adapter) keeps its copy: the reference is then the SFT model, as DPO intends.
A prompt-based adapter (prefix, prompt tuning, LLaMA-Adapter) has no ``lora_B`` and keeps its copy too: its reference
is the model as the run started, with the starting virtual tokens (a few thousand numbers; prefix and prompt tuning
start from random ones, which the base with the adapter off would not match at the first step)."""

from __future__ import annotations

REF = "ref"


def adds_nothing(model, adapter: str = REF) -> bool:
    """Every ``lora_B`` weight of ``adapter`` is zero: the adapter leaves the base's outputs as they are."""
    found = False
    for name, p in model.named_parameters():
        if f"lora_B.{adapter}." in name:
            found = True
            if p.detach().abs().max().item() != 0:
                return False
    return found


def base_as_reference(model) -> bool:
    """Drop TRL's "ref" adapter where it equals the base; True when the reference is now the base."""
    config = getattr(model, "peft_config", {})
    if REF not in config:
        return True
    if adds_nothing(model):
        model.delete_adapter(REF)
        return True
    return False
