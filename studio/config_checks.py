"""The checks of a run's settings: ``validate(cfg)`` raises ``ConfigError`` for the first setting that
cannot work, with a fix the user can apply; ``check_target_modules`` is the part that needs the model;
``context_warnings`` says what works but will not do what the user expects. ``StudioConfig.validate``
calls these.

The checks read a config's sections and each field's ``choices``, ``limits`` and ``typical`` from the
config object they are given (the dataclasses of ``config.py``), never from ``config.py`` itself: that
module imports this one for ``validate()``, and the two must not import each other.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Iterable

from .errors import ConfigError

# The settings arrive as config.py's dataclasses (not imported here: see above).
Config = Any            # a StudioConfig
Section = Any           # one of its sections: ModelConfig, DataConfig, LoraConfig, TrainingConfig, GenerationConfig


def _sections(cfg: Config) -> dict[str, Section]:
    """The sections of ``cfg`` by name, in their order (``model``, ``data``, ... ``generation``)."""
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
            if dataclasses.is_dataclass(getattr(cfg, f.name))}


def _choice(where: str, value: str, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError("{key} is '{value}', which is not an option. Choose one of: {choices}.", code="config.not_an_option",
                          key=where, value=value, choices=", ".join(choices))


def _check_limits(name: str, section: Section) -> None:
    """Every field of ``section`` within its ``limits`` (config.LIMITS is the same table, read from the same fields)."""
    for f in dataclasses.fields(section):
        if "limits" in f.metadata:
            _check_range(f"{name}.{f.name}", getattr(section, f.name), f.metadata["limits"], f.metadata.get("typical"))


def _check_range(key: str, value: float, limits: tuple, typical: str | None) -> None:
    """``value`` of the setting ``key`` within its ``limits`` (the field's, the one statement of its range), or
    a ConfigError saying the range and, when the field has them, its typical values."""
    low, high = limits
    if not ((low is not None and value < low) or (high is not None and value > high)):
        return
    if high is None and typical:
        raise ConfigError("{key} is {value}; it must be at least {low} ({typical} is typical).",
                          code="config.at_least_typical", key=key, value=_fmt(value), low=_fmt(low), typical=typical)
    if high is None:
        raise ConfigError("{key} is {value}; it must be at least {low}.", code="config.at_least", key=key,
                          value=_fmt(value), low=_fmt(low))
    if typical:
        raise ConfigError("{key} is {value}; it must be between {low} and {high} ({typical} is typical).",
                          code="config.out_of_range_typical", key=key, value=_fmt(value), low=_fmt(low),
                          high=_fmt(high), typical=typical)
    raise ConfigError("{key} is {value}; it must be between {low} and {high}.", code="config.out_of_range", key=key,
                      value=_fmt(value), low=_fmt(low), high=_fmt(high))


def check_generation(g: Section) -> None:
    """The generation settings a run answers with (training's config, and `studio chat`'s flags): their
    ``limits``, and the open bounds those cannot state (top_p and repetition_penalty above 0)."""
    _check_limits("generation", g)
    if not g.top_p > 0 or not g.repetition_penalty > 0:
        raise ConfigError("generation.temperature must be 0 or more, generation.top_p between 0 and 1, "
                          "generation.repetition_penalty above 0.", code="config.generation")


def _fmt(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() and abs(x) < 1e18 else f"{x:g}"


def _check_encoding(encoding: str) -> None:
    import codecs
    if encoding.strip().lower() in ("", "auto"):
        return
    try:
        codecs.lookup(encoding.strip())
    except LookupError:
        raise ConfigError("data.encoding '{encoding}' is not a text encoding the studio knows.",
                          code="config.bad_encoding", encoding=encoding) from None


def context_warnings(cfg: Config, context_length: int | None) -> list[str]:
    """Settings that work but will not do what the user expects with this model (said, not refused)."""
    out = []
    if context_length and cfg.data.max_length > context_length:
        out.append(f"The maximum length ({cfg.data.max_length:,} tokens) is longer than this model reads "
                   f"({context_length:,} tokens): rows past {context_length:,} tokens will not train well. "
                   f"Set data.max_length to {context_length:,} or less.")
    return out


def check_target_modules(lora: Section, linear_modules: Iterable[str]) -> None:
    """The part of validation that needs the model: the target modules it has (``linear_modules``)."""
    if not isinstance(lora.target_modules, list):
        return
    have = sorted(set(linear_modules))
    missing = [x for x in lora.target_modules if x not in have]
    if missing:
        raise ConfigError("These target modules are not in this model: {missing}. The model has: {have}.",
                          code="config.modules_missing", missing=", ".join(missing), have=", ".join(have))


def _check_adapter(l: Section, quantization: str) -> None:
    """The combinations of lora.adapter, lora.init and the base that peft cannot train, each said by name."""
    adapter = getattr(l, "adapter", "lora")
    init = getattr(l, "init", "default")
    if adapter != "lora":
        used = [n for n, on in (("use_dora", l.use_dora), ("use_rslora", l.use_rslora), ("bias", l.bias != "none"),
                                ("init", init != "default")) if on]
        if used:
            raise ConfigError("lora.{setting} works with LoRA adapters only, not with lora.adapter '{adapter}'.",
                              code="config.lora_only", setting=used[0], adapter=adapter)
    if init != "default" and l.use_dora:
        raise ConfigError("lora.init '{init}' cannot be combined with DoRA (lora.use_dora): its adapter could not be "
                          "converted for the original base when saved.", code="config.init_dora", init=init)
    if quantization == "none":
        return
    if adapter in ("loha", "lokr"):
        # peft has LoHa/LoKr layers for plain Linear and Conv only, none for bitsandbytes' 4/8-bit layers.
        raise ConfigError("lora.adapter '{adapter}' cannot train on a quantized base (model.quantization {quant}): "
                          "peft has no {adapter} layers for 4-bit or 8-bit weights.", code="config.adapter_quantized",
                          adapter=adapter, quant=quantization)
    if adapter == "llama-adapter":
        # Its gated attention takes keys and values from the 4-bit layers in their compute format and
        # multiplies them with its own (measured with peft 0.21: "expected m1 and m2 to have the same dtype").
        raise ConfigError("lora.adapter 'llama-adapter' cannot train on a quantized base (model.quantization {quant}): "
                          "peft's LLaMA-Adapter mixes number formats with 4-bit and 8-bit layers and fails on the "
                          "first step.", code="config.adapter_quantized_mix", quant=quantization)
    if init != "default":
        raise ConfigError("lora.init '{init}' cannot start from a quantized base (model.quantization {quant}): it "
                          "decomposes the full-precision weights and writes the rest back into them.",
                          code="config.init_quantized", init=init, quant=quantization)


def validate(cfg: Config, linear_modules: Iterable[str] | None = None) -> None:
    """Raise ConfigError for the first setting that cannot work, with a fix the user can apply."""
    m, d, l, t, g = cfg.model, cfg.data, cfg.lora, cfg.training, cfg.generation
    if not m.source.strip():
        raise ConfigError("model.source is empty: choose a base model.", code="config.no_model")
    sections = _sections(cfg)
    for section, obj in sections.items():
        for f in dataclasses.fields(obj):
            choices = f.metadata.get("choices")
            if choices:
                _choice(f"{section}.{f.name}", getattr(obj, f.name), choices)
    if not d.file.strip():
        raise ConfigError("data.file is empty: choose training data.", code="config.no_data")
    if d.format == "mapping" and not (d.prompt_column and d.answer_column):
        raise ConfigError("With data.format 'mapping', say which column holds the prompt (data.prompt_column) and which "
                          "holds the answer (data.answer_column).", code="config.mapping_columns")
    _check_encoding(d.encoding)
    # Its limits (0, 1) include their ends, and a learning rate of 0 or 1 is no plan: said first, with the usual values.
    if not 0 < t.learning_rate < 1:
        raise ConfigError("training.learning_rate is {value}, out of range; LoRA usually uses a learning rate of 1e-4 to 3e-4.",
                          code="config.learning_rate", value=t.learning_rate)
    # Every range is its field's (limits and typical values); what follows are the rules a range cannot state.
    for section, obj in sections.items():
        _check_limits(section, obj)
    if d.validation >= 1 and not float(d.validation).is_integer():
        raise ConfigError("data.validation must be a fraction between 0 and 1 (e.g. 0.1) or a whole number of rows "
                          "(e.g. 20).", code="config.validation")
    if isinstance(l.target_modules, list):
        if not l.target_modules:
            raise ConfigError("lora.target_modules is empty: pick at least one target module, or 'all-linear'.",
                              code="config.no_modules")
        if linear_modules is not None:
            check_target_modules(l, linear_modules)
    _check_adapter(l, m.quantization)
    if getattr(l, "adapter", "lora") == "prefix" and t.gradient_checkpointing in ("on", "offload"):
        raise ConfigError("Prefix tuning (lora.adapter prefix) does not work with gradient checkpointing "
                          "(training.gradient_checkpointing on): peft hands its keys and values to every layer as a "
                          "cache, which checkpointed layers cannot take.", code="config.prefix_checkpointing")
    check_report_to(t.report_to)
    check_machines(t)
    if t.strategy == "fsdp" and m.quantization == "8bit":
        raise ConfigError("FSDP cannot split 8-bit weights across GPUs (training.strategy fsdp with model.quantization "
                          "8bit).", code="config.fsdp_8bit")
    if getattr(l, "adapter", "lora") == "prompt" and t.method in ("orpo", "simpo"):
        # TRL's experimental ORPO and CPO trainers compare the logits with the labels as they are, and prompt
        # tuning's logits hold its virtual tokens too (DPO's and KTO's trainers cut them off): the first step fails.
        raise ConfigError("Prompt tuning (lora.adapter prompt) cannot train with training.method {method}: TRL's "
                          "{method} trainer does not skip the virtual tokens prompt tuning puts before every sequence, "
                          "and fails on its first step.", code="config.prompt_tuning_method", method=t.method)
    if t.method == "kto" and t.batch_size < 2:
        # KTO's KL term pairs each prompt with another row's answer of the same batch (TRL refuses batch size 1).
        raise ConfigError("training.method kto needs training.batch_size of at least 2: it compares each prompt with "
                          "another answer of the same batch.", code="config.kto_batch")
    check_generation(g)
    if getattr(cfg, "grpo", None) is not None:
        check_grpo(cfg.grpo)


_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)$")


def parse_master(text: str) -> tuple[str, int]:
    """``training.master`` as (host, port): 'ADDR:PORT', the host a name, an IPv4 address or ``[IPv6]``."""
    value = (text or "").strip()
    host, sep, port = value.rpartition(":")
    if not sep or not _HOST.match(host) or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError("training.master is '{value}', which is not an address and a port: write ADDR:PORT, e.g. "
                          "192.168.1.10:29500 (a port from 1 to 65535).", code="config.bad_master", value=value)
    return host.strip("[]"), int(port)


def check_machines(t: Section) -> None:
    """training.nnodes, node_rank and master agree: the machines are numbered 0 to nnodes-1, and every one
    needs the main machine's address when there is more than one."""
    if t.node_rank >= t.nnodes:
        raise ConfigError("training.node_rank is {rank}, but training.nnodes is {nodes}: the machines are numbered 0 "
                          "to {last}.", code="config.node_rank_range", rank=t.node_rank, nodes=t.nnodes,
                          last=t.nnodes - 1)
    if t.nnodes > 1 and not t.master.strip():
        raise ConfigError("training.nnodes is {nodes}, so every machine needs the main machine's address: set "
                          "training.master to ADDR:PORT (e.g. 192.168.1.10:29500).", code="config.no_master",
                          nodes=t.nnodes)
    if t.master.strip():
        parse_master(t.master)


def check_grpo(g: Section) -> None:
    """The rewards of ``training.method: grpo``: known names, one weight each, a pattern that compiles, a length
    range that is one."""
    import re

    names = g.reward_list()
    if not names:
        raise ConfigError("grpo.rewards is empty: name at least one reward ({choices}).", code="config.no_rewards",
                          choices=", ".join(g.REWARD_NAMES))
    for name in names:
        _choice("grpo.rewards", name, g.REWARD_NAMES)
    weights = g.weight_list()
    if weights is not None and len(weights) != len(names):
        raise ConfigError("grpo.reward_weights has {weights} numbers but grpo.rewards names {rewards} rewards; give one "
                          "weight a reward, or none.", code="config.reward_weights_count", weights=len(weights),
                          rewards=len(names))
    try:
        re.compile(g.format_pattern)
    except re.error as e:
        raise ConfigError("grpo.format_pattern is not a pattern Python reads: {detail}.", code="config.format_pattern",
                          detail=str(e)) from None
    if g.length_min_words > g.length_max_words:
        raise ConfigError("grpo.length_min_words ({low}) is more than grpo.length_max_words ({high}).",
                          code="config.length_range", low=g.length_min_words, high=g.length_max_words)


# what training.report_to needs installed: the module the trainer's callback imports, and the pip line
TRACKERS = {"tensorboard": ("tensorboard", "pip install tensorboard"), "wandb": ("wandb", "pip install wandb"),
            "mlflow": ("mlflow", "pip install mlflow")}


def check_report_to(choice: str) -> None:
    """ConfigError naming the pip line when the tracker training.report_to names is not installed (the
    trainer would fail only once the model had loaded)."""
    import importlib.util

    if choice not in TRACKERS:
        return                            # 'none'; an unknown name is refused by its choices
    module, install = TRACKERS[choice]
    if importlib.util.find_spec(module) is None:
        raise ConfigError("training.report_to is '{tracker}', but its package is not installed. Install it with: "
                          "{install}", code="config.report_to_missing", tracker=choice, install=install)
