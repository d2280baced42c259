"""More than one GPU: how many processes a run gets, how they share the model, and what each rank is.

A run on N GPUs is N processes started by ``torch.distributed.run`` (launcher.py), one per GPU, each
training its share of every step's rows with the HF Trainer, which distributes through accelerate:

- ``ddp``: every GPU holds the whole model (placed on its own GPU, ``device_map={"": local_rank}``);
  gradients of the LoRA weights are averaged after each step. Fastest when the model fits one card.
- ``fsdp``: the frozen weights are split across the GPUs (FSDP with QLoRA: bitsandbytes stores the
  4-bit weights in the compute dtype, ``bnb_4bit_quant_storage``, so FSDP can shard them like any
  other weight). For a model that does not fit one card.

``plan(cfg)`` (the parent, before anything starts) decides and explains; ``rank()``, ``world_size()``,
``strategy()`` are what a worker process reads from its environment (set by the launcher).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..config import StudioConfig
from ..errors import ConfigError

# What a worker reads from its environment lives below the model loading that needs it too.
from ..process_env import (STRATEGY_ENV, is_main, local_rank, model_placement, nnodes, node_rank,  # noqa: F401
                           quantization_storage, rank, sharded, strategy, world_size)
CAP_ENV = "STUDIO_GPU_MEMORY_CAP_GB"   # test a smaller card inside a big one (benchmarks)
# How FSDP-QLoRA groups the weights into units (benchmarks/multi_gpu.py compares them): "lora", every
# LoRA layer a unit of its own (PEFT's wrap policy, the default); "layer", one unit a decoder layer.
# Measured on 2 GPUs (docs/BENCHMARKS.md): "layer" trains a 1B shape 2.5x faster, but each GPU then held
# more (2.1 GB) than one GPU alone (1.9 GB): with the original parameters kept, FSDP keeps gradients for
# whole flat parameters, frozen 4-bit weights included. It gives up what FSDP is chosen for: not the default.
FSDP_UNITS_ENV = "STUDIO_FSDP_UNITS"


@dataclass
class Plan:
    processes: int                 # training processes (one per GPU; on a CPU, gloo processes)
    strategy: str                  # "single" | "ddp" | "fsdp"
    subprocess: bool               # through the subprocess runner (always when processes > 1)
    gpus_found: int
    notes: list[str] = field(default_factory=list)


# ---- what this machine has ---------------------------------------------------------------------

def gpu_count() -> int:
    try:
        import torch
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:   # a broken driver reads as no GPU; training then says so on its own
        return 0


def gpus_summary() -> list[dict]:
    """Each GPU found: index, name, total and free memory (GB), for the Model and Settings tabs."""
    out = []
    if not gpu_count():
        return out
    import torch
    for i in range(gpu_count()):
        try:
            free, total = torch.cuda.mem_get_info(i)
        except RuntimeError:
            free = total = torch.cuda.get_device_properties(i).total_memory
        out.append({"index": i, "name": torch.cuda.get_device_name(i), "total_gb": round(total / 1e9, 1),
                    "free_gb": round(free / 1e9, 1)})
    return out


# ---- the plan (parent side) --------------------------------------------------------------------

def requested_gpus(cfg: StudioConfig, found: int) -> int:
    """``training.gpus`` with 0 meaning every GPU found (one process on a machine without a GPU)."""
    return cfg.training.gpus if cfg.training.gpus > 0 else max(found, 1)


def plan(cfg: StudioConfig, found: int | None = None, facts: dict | None = None,
         card_gb: float | None = None) -> Plan:
    """How ``cfg`` runs on this machine, or ``ConfigError`` saying what to change.

    ``facts`` (models.size.config_facts) and ``card_gb`` (the smallest GPU's memory) let strategy
    'auto' choose: ddp when the estimate fits one card, fsdp otherwise; without them, ddp."""
    found = gpu_count() if found is None else found
    want = requested_gpus(cfg, found)
    t = cfg.training
    if want > 1 and found == 0:
        raise ConfigError("This run asks for {want} GPUs (training.gpus), but no NVIDIA GPU was found on this "
                          "computer.", code="config.gpus_none", want=want)
    if want > found > 0:
        raise ConfigError("This run asks for {want} GPUs (training.gpus), but this computer has {found}.",
                          code="config.gpus_too_many", want=want, found=found)
    if want == 1 and t.nnodes <= 1:
        return Plan(1, "single", bool(t.isolate), found)
    # Several machines: always torch.distributed.run, even with one process here (nodes.py).
    strategy, notes = t.strategy, []
    if strategy == "auto":
        strategy, note = choose_strategy(cfg, want, facts, card_gb)
        notes.append(note)
    check_strategy(strategy, on_gpu=found > 0)
    return Plan(want, strategy, True, found, notes)


def choose_strategy(cfg: StudioConfig, gpus: int, facts: dict | None, card_gb: float | None) -> tuple[str, str]:
    if facts is None or not card_gb:
        return "ddp", "Strategy auto: DDP (the model's size is not known before loading)."
    from ..models.size import estimate_from_facts
    from .methods import step_tokens
    one = estimate_from_facts(cfg, facts, {"device": "cuda", "free_gb": card_gb}, step_tokens(cfg))
    if one["total_gb"] <= card_gb * 0.9 or cfg.model.quantization == "8bit":
        return "ddp", (f"Strategy auto: DDP, a whole copy on each GPU (the estimate, {one['total_gb']:.1f} GB, fits "
                       f"one {card_gb:.0f} GB card).")
    return "fsdp", (f"Strategy auto: FSDP, the weights split across {gpus} GPUs (the estimate for one card, "
                    f"{one['total_gb']:.1f} GB, does not fit its {card_gb:.0f} GB).")


def check_strategy(strategy: str, on_gpu: bool) -> None:
    """What this machine decides about a strategy. FSDP with 8-bit weights is refused by the settings
    themselves (config_checks.validate, before any plan) and never chosen by 'auto'."""
    if strategy == "fsdp" and not on_gpu:
        raise ConfigError("FSDP (training.strategy) splits the model across NVIDIA GPUs; none was found.",
                          code="config.fsdp_no_gpu")


def with_strategy(cfg: StudioConfig, p: Plan) -> StudioConfig:
    """The config the workers read: the GPU count and strategy as decided, never 'auto' or 0."""
    import dataclasses
    strategy = p.strategy if p.strategy in ("ddp", "fsdp") else cfg.training.strategy
    return dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, gpus=p.processes, strategy=strategy))


def estimate_per_gpu(cfg: StudioConfig, facts: dict, device: dict | None, gpus: int, strategy: str) -> dict:
    """``estimate_from_facts`` for one GPU of a run on ``gpus`` GPUs.

    DDP: each GPU holds everything a one-GPU run holds (its micro-batch is the same size). FSDP: the
    decoder layers' frozen weights, the adapters and their optimizer state are split ``gpus`` ways, each
    GPU gathers two layers' weights at a time (the one computing, the one prefetched), and the embedding
    and head stay whole on every GPU. A 4-bit model is first loaded whole on every GPU: the estimate is
    never below that (``whole_model_at_load_gb``)."""
    from ..models.size import estimate_from_facts
    from .methods import step_tokens
    est = estimate_from_facts(cfg, facts, device, step_tokens(cfg))
    if gpus <= 1 or strategy != "fsdp":
        return est
    parts = dict(est["parts"])
    layers = max(1, int(facts.get("num_layers") or 1))
    # The embedding and the output head are not in any decoder layer: FSDP keeps them in its root unit,
    # whole on every GPU from the forward to the backward (measured: an 8B run under an 8 GB cap per GPU
    # ran out of memory gathering its 1 GB head, where the estimate had split it).
    vocab, hidden = int(facts.get("vocab_size") or 0), int(facts.get("hidden_size") or 0)
    unsplit = min(parts["weights"], vocab * hidden * (1 if facts.get("tied_embeddings") else 2) * 2 / 1e9)
    split = parts["weights"] - unsplit
    parts["gathered_layers"] = round(2 * split / layers, 3)
    parts["weights"] = round(split / gpus + unsplit, 3)
    parts["adapters_and_optimizer"] = round(parts["adapters_and_optimizer"] / gpus, 3)
    total = round(sum(parts.values()), 2)
    out = {**est, "parts": parts}
    if cfg.model.quantization.startswith("4bit"):
        # bitsandbytes quantizes the whole model onto every GPU before FSDP splits it (16-bit weights
        # are read by rank 0 alone). Measured: a 13B shape on 2 GPUs peaked at its whole 4-bit weights
        # (7.4 GB), above the split run's training estimate (6.7 GB).
        out["whole_model_at_load_gb"] = round(est["parts"]["weights"] + est["parts"]["overhead"], 2)
        total = max(total, out["whole_model_at_load_gb"])
    return {**out, "total_gb": total, "fits": total <= float(est.get("free_gb") or 0)}


def estimate_for(cfg: StudioConfig, gpus: list[dict], facts: dict) -> dict:
    """The estimate the app shows for one GPU of ``cfg`` on this machine's ``gpus`` (``gpus_summary``),
    with the strategy ``plan`` would choose; ``facts`` are ``models.size.config_facts``.

    More GPUs asked for than found are estimated on those found (the Start button says the rest). Beside
    the estimate: ``gpus``, ``strategy``, ``gpu_total_gb`` (the same run on a GPU, for the common cards
    whatever this machine is) and ``advice`` (what 'Fit to my GPU' would change, when it does not fit one GPU)."""
    import dataclasses
    found = len(gpus)
    n = min(requested_gpus(cfg, found), max(found, 1))
    card = min((g["total_gb"] for g in gpus), default=0)
    try:
        strategy = plan(dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, gpus=n)),
                        found, facts, card).strategy
    except ConfigError:    # what Start would refuse (it says why): the estimate is of the settings as asked
        strategy = cfg.training.strategy
    est = estimate_per_gpu(cfg, facts, None, n, strategy)
    on_gpu = est["total_gb"] if est.get("device") == "cuda" else estimate_per_gpu(
        cfg, facts, {"device": "cuda", "free_gb": 0}, n, strategy)["total_gb"]
    advice: list[str] = []
    if not est["fits"] and est.get("device") == "cuda" and n == 1:
        from ..fit import fit_to_gpu
        from .methods import step_tokens
        _, changes, fits = fit_to_gpu(cfg, facts, est["free_gb"], step_tokens)
        advice = changes[:-1] if fits else changes      # the last line of a fit restates the need
    return {**est, "gpus": n, "strategy": strategy, "gpu_total_gb": on_gpu, "advice": advice}


def global_batch(cfg: StudioConfig, gpus: int) -> int:
    """Rows one optimizer step learns from: each GPU's micro-batch times accumulation, on every GPU."""
    t = cfg.training
    return t.batch_size * t.grad_accum * max(1, gpus)


# ---- inside a worker process -------------------------------------------------------------------

def fsdp_layer_units() -> bool:
    return sharded() and os.environ.get(FSDP_UNITS_ENV, "lora") == "layer"


def trainer_kwargs(on_cuda: bool) -> dict:
    """The trainer arguments of a multi-process run (none for one process), whatever the method.

    FSDP follows the FSDP-QLoRA recipe of PEFT's and bitsandbytes' documentation: FSDP1 with the
    original parameters flattened (``use_orig_params=False``), module states synced from rank 0, and a
    full (not sharded) state dict so checkpoints and the adapter are the plain PEFT files a one-GPU
    run writes. The Trainer itself wraps the LoRA layers separately and sets FSDP's mixed precision to
    the 4-bit storage dtype (transformers' update_fsdp_plugin_peft)."""
    if world_size() <= 1:
        return {}
    # Every LoRA weight gets a gradient each step; searching for unused ones costs a graph walk a step.
    out: dict = {"ddp_find_unused_parameters": False}
    if not on_cuda:
        out["ddp_backend"] = "gloo"
    if nnodes() > 1:
        # A machine that has gone is found by the heartbeats (node_link.py) within a minute; a collective
        # still waiting this long means a machine that is alive but stuck (torch's default: 30 minutes).
        from .nodes import COLLECTIVE_TIMEOUT_S
        out["ddp_timeout"] = COLLECTIVE_TIMEOUT_S
    if sharded():
        out["fsdp"] = "full_shard auto_wrap"
        out["fsdp_config"] = {"version": 1, "backward_prefetch": "backward_pre", "forward_prefetch": False,
                              "use_orig_params": False, "sync_module_states": True,
                              "cpu_ram_efficient_loading": True, "state_dict_type": "FULL_STATE_DICT",
                              "activation_checkpointing": False}
        if fsdp_layer_units():
            # Frozen 4-bit weights and trainable LoRA weights in one flat parameter need FSDP to keep
            # the original parameters apart (both are bfloat16 there: the storage and TRL's adapters).
            # The worker makes the Trainer wrap whole layers (wrap_whole_layers).
            out["fsdp_config"]["use_orig_params"] = True
    return out


def wrap_whole_layers() -> None:
    """Make the Trainer wrap one FSDP unit per decoder layer, LoRA weights included, instead of PEFT's
    policy that makes every LoRA layer a unit of its own (7 x 2 per decoder layer for all-linear), each
    gathered and reduced on its own. The mixed precision of the 4-bit storage is still set by
    transformers' own function, which this wraps."""
    import functools

    import transformers.trainer as hf_trainer
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    original = getattr(hf_trainer.update_fsdp_plugin_peft, "__wrapped__", hf_trainer.update_fsdp_plugin_peft)

    @functools.wraps(original)
    def update(model, accelerator):
        original(model, accelerator)
        names = set(getattr(model.get_base_model(), "_no_split_modules", None) or ())
        classes = {type(m) for m in model.modules() if type(m).__name__ in names}
        accelerator.state.fsdp_plugin.auto_wrap_policy = functools.partial(transformer_auto_wrap_policy,
                                                                           transformer_layer_cls=classes)
    hf_trainer.update_fsdp_plugin_peft = update


def check_fsdp_model(cfg: StudioConfig) -> None:
    """FSDP wraps (and shards) the model one decoder layer at a time; it learns which class that is from
    the architecture's ``_no_split_modules``. Without it FSDP cannot split the model: said in words."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    from ..models.sources import resolve_source
    folder = resolve_source(cfg.model.source, cfg.model.trust_remote_code)
    conf = AutoConfig.from_pretrained(folder, trust_remote_code=cfg.model.trust_remote_code)
    try:
        cls = MODEL_FOR_CAUSAL_LM_MAPPING[type(conf)]
    except KeyError:
        return      # remote code: its class is only known once loaded; the trainer says what it finds
    if not getattr(cls, "_no_split_modules", None):
        raise ConfigError("FSDP cannot split a {model} across GPUs: the architecture does not say which layers can "
                          "be placed apart.", code="config.fsdp_no_split", model=cls.__name__)


def adjust_for_processes(cfg: StudioConfig) -> tuple[StudioConfig, list[str]]:
    """What a worker changes in the run's config for its strategy, with plain notes.

    FSDP: 'auto' checkpointing measures the model before the trainer shards it, so it would measure
    (and may not even fit) the whole model on one GPU: every layer is checkpointed instead. Paged and
    8-bit optimizers keep their state in bitsandbytes' own buffers, outside FSDP's shards: plain
    AdamW is used (the LoRA state is small, and split across the GPUs)."""
    import dataclasses
    t = cfg.training
    notes, changes = [], {}
    if sharded():
        if t.gradient_checkpointing == "auto":
            changes["gradient_checkpointing"] = "on"
            notes.append("FSDP: gradient checkpointing 'auto' measures the unsplit model, so every layer is "
                         "checkpointed instead.")
        if t.optimizer in ("paged_adamw_8bit", "adamw_8bit", "paged_adamw_32bit"):
            changes["optimizer"] = "adamw_torch"
            notes.append(f"FSDP: the optimizer '{t.optimizer}' keeps its state outside FSDP's shards; "
                         "using 'adamw_torch' (the adapters' state is small and split across the GPUs).")
    if not changes:
        return cfg, notes
    return dataclasses.replace(cfg, training=dataclasses.replace(t, **changes)), notes


def plan_for_start(cfg: StudioConfig) -> Plan:
    """``plan`` with what this machine can tell without loading anything: the GPUs found, and for
    strategy 'auto' the model's size from its config.json (``models.size.facts_for``, as the app's
    estimate reads it) and the smallest GPU's memory."""
    found = gpu_count()
    facts = card_gb = None
    if requested_gpus(cfg, found) > 1 and cfg.training.strategy == "auto" and found > 1:
        from ..models.size import facts_for
        try:
            facts = facts_for(cfg.model)
        except Exception:   # the worker reports a model that cannot be read; here it only decides ddp/fsdp
            facts = None
        card_gb = _smallest_card_gb(found)
    return plan(cfg, found, facts, card_gb)


def _smallest_card_gb(found: int) -> float | None:
    try:
        import torch
        return min(torch.cuda.get_device_properties(i).total_memory for i in range(found)) / 1e9
    except Exception:   # no usable CUDA here: 'auto' then keeps ddp
        return None
