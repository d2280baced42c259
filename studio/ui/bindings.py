"""The one place where widgets map to config fields.

Every config field shown in the studio is listed once in ``SPECS``: which widget draws it and
how its value turns back into the config. Tabs ask ``Bindings.widget(section, name)`` for the
widget, so labels, help text (the config's own ``field_help``), choices and elem_ids come
from here and from ``i18n``; handlers get all widgets as ``Bindings.inputs`` and turn the
values into a ``StudioConfig`` with ``to_config``.

One ``Bindings`` serves every browser session, so it holds no per-user state: what differs between
users (the target-module choices of the model each one checked) is passed in from a ``gr.State``.
"""

from __future__ import annotations

import dataclasses
import inspect
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import gradio as gr

from studio.config import ALL_LINEAR, LIMITS, SECTIONS, StudioConfig, field_choices, merge

from .i18n import Help, Labels, t
from .services import Services

# Shown before a model is loaded; replaced by the model's real linear layers after loading.
COMMON_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class Spec:
    section: str                  # "" for top-level fields such as the run name
    name: str
    kind: str                     # int | float | bool | dropdown | radio | text | modules | source
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choice_keys: dict = field(default_factory=dict)   # value -> i18n key for choices that need words
    suggestions: tuple = ()       # offered values of a free dropdown (any other value may be typed)

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}" if self.section else self.name


QUANT_KEYS = {"4bit-nf4": "choice.quant.nf4", "4bit-fp4": "choice.quant.fp4",
              "8bit": "choice.quant.8bit", "none": "choice.quant.none"}

SPECS: list[Spec] = [
    # model (Model tab)
    Spec("model", "source", "source"),
    Spec("model", "quantization", "radio", choice_keys=QUANT_KEYS),
    Spec("model", "double_quant", "bool"),
    Spec("model", "compute_dtype", "dropdown"),
    Spec("model", "trust_remote_code", "bool"),
    # data (Data tab; max_length sits in Settings)
    Spec("data", "file", "source"),
    Spec("data", "format", "dropdown"),
    Spec("data", "prompt_column", "dropdown"),
    Spec("data", "answer_column", "dropdown"),
    Spec("data", "system_column", "dropdown"),
    Spec("data", "encoding", "dropdown", suggestions=("auto", "utf-8", "cp1252", "latin-1", "utf-16", "gb18030",
                                                      "big5", "shift_jis", "euc-kr", "cp1251", "cp1250", "cp1253",
                                                      "cp1254", "iso-8859-15")),
    Spec("data", "template", "dropdown"),
    Spec("data", "train_on", "radio", choice_keys={"assistant": "choice.train_on.assistant",
                                                    "all": "choice.train_on.all"}),
    Spec("data", "validation", "float", step=0.01),
    Spec("data", "max_rows", "int"),
    Spec("data", "max_length", "int", step=64),
    Spec("data", "overlong", "radio", choice_keys={"truncate": "choice.overlong.truncate",
                                                    "drop": "choice.overlong.drop"}),
    # LoRA (Settings)
    Spec("lora", "r", "int", step=4),
    Spec("lora", "alpha", "int", step=4),
    Spec("lora", "dropout", "float", step=0.01),
    Spec("lora", "target_modules", "modules"),
    Spec("lora", "use_dora", "bool"),
    Spec("lora", "use_rslora", "bool"),
    Spec("lora", "bias", "dropdown"),
    # training (Settings)
    Spec("training", "epochs", "float", step=0.5),
    Spec("training", "max_steps", "int", step=10),
    Spec("training", "batch_size", "int"),
    Spec("training", "grad_accum", "int"),
    Spec("training", "learning_rate", "float", step=1e-5),
    Spec("training", "scheduler", "dropdown"),
    Spec("training", "warmup_ratio", "float", step=0.01),
    Spec("training", "weight_decay", "float", step=0.01),
    Spec("training", "optimizer", "dropdown"),
    Spec("training", "max_grad_norm", "float", step=0.1),
    Spec("training", "gradient_checkpointing", "radio", choice_keys={"auto": "choice.checkpointing.auto",
                                                                      "on": "choice.checkpointing.on",
                                                                      "offload": "choice.checkpointing.offload",
                                                                      "off": "choice.checkpointing.off"}),
    Spec("training", "packing", "bool"),
    Spec("training", "attention", "dropdown"),
    Spec("training", "fused_kernels", "bool"),
    Spec("training", "report_to", "dropdown"),
    Spec("training", "eval_steps", "int"),
    Spec("training", "save_steps", "int"),
    Spec("training", "logging_steps", "int"),
    Spec("training", "seed", "int"),
    Spec("training", "output_dir", "text"),
    Spec("training", "gpus", "int"),
    Spec("training", "strategy", "radio", choice_keys={"auto": "choice.strategy.auto", "ddp": "choice.strategy.ddp",
                                                        "fsdp": "choice.strategy.fsdp"}),
    Spec("training", "isolate", "bool"),
    # generation (Chat): sliders narrower than the config allows, the range that is useful in a chat
    Spec("generation", "max_new_tokens", "int", maximum=4096, step=16),
    Spec("generation", "temperature", "float", maximum=2, step=0.05),
    Spec("generation", "top_p", "float", minimum=0.05, maximum=1, step=0.05),
    Spec("generation", "repetition_penalty", "float", minimum=0.5, maximum=2, step=0.05),
    # run name (Train)
    Spec("", "name", "text"),
]


def _default_spec(section: str, f: dataclasses.Field) -> Spec:
    """A field listed nowhere above gets the widget its type implies: a new setting needs no line here."""
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    kind = ("bool" if isinstance(default, bool) else "int" if isinstance(default, int) else
            "float" if isinstance(default, float) else "dropdown" if f.metadata.get("choices") else "text")
    return Spec(section, f.name, kind)


SPECS[-1:-1] = [_default_spec(s, f) for s, c in SECTIONS.items() for f in dataclasses.fields(c)
                if not any(x.key == f"{s}.{f.name}" for x in SPECS)]
SPEC_BY_KEY = {s.key: s for s in SPECS}
# The config's own bounds (each field's ``limits``, which validate() enforces) where a widget has none tighter.
for _s in SPECS:
    low, high = LIMITS.get(_s.key, (None, None))
    if low is not None:
        _s.minimum = low if _s.minimum is None else max(_s.minimum, low)
    if high is not None:
        _s.maximum = high if _s.maximum is None else min(_s.maximum, high)

# Where a model or data set comes from: a radio for the kind, a textbox for the path or id.
MODEL_KINDS = ("default", "hub", "folder", "gguf")
DATA_KINDS = ("demo", "demo-preference", "file", "hub")
# The kinds that name a built-in source by themselves (no path to type): the config value is the kind.
BUILT_IN = ("default", "demo", "demo-preference")


def model_kind(source: str) -> str:
    s = (source or "").strip()
    if s in ("", "default"):
        return "default"
    if s.lower().endswith(".gguf"):
        return "gguf"
    if s.startswith(("/", ".", "~")) or Path(s).expanduser().is_dir():
        return "folder"
    return "hub"


def data_kind(file: str) -> str:
    s = (file or "").strip()
    if s in ("", "demo"):
        return "demo"
    if s == "demo-preference":
        return s
    if s.startswith(("/", ".", "~")) or Path(s).suffix.lower() in Services.data_extensions():
        return "file"
    return "hub"


def source_value(section: str, kind: str, text: str) -> str:
    """The config value for a (kind, text) pair: the built-in choice needs no text."""
    if kind in BUILT_IN:
        return kind
    return (text or "").strip()


def source_picker(L: Labels, section: str, value: str, *, elem: str, label: str, kind_label: str,
                  placeholder: str, info: Any = None, **kw) -> tuple[Any, Any]:
    """Where a model (``section`` 'model') or data set comes from: the kind radio and the path / id textbox,
    shown only for a kind that needs one. The config's source fields and the Runs tab's judge model share it;
    ``source_value(section, kind, text)`` reads the pair back."""
    kinds = MODEL_KINDS if section == "model" else DATA_KINDS
    kind = (model_kind if section == "model" else data_kind)(value)
    radio = L.make(gr.Radio, choices=[(f"choice.{section}_kind.{k}", k) for k in kinds], value=kind,
                   label=kind_label, info=info, elem_id=elem + "-kind", **kw)
    text = L.make(gr.Textbox, value="" if kind in BUILT_IN else value, label=label, placeholder=placeholder,
                  elem_id=elem, visible=kind not in BUILT_IN, **kw)
    radio.change(lambda k: gr.update(visible=k not in BUILT_IN), radio, text, queue=False,
                 show_progress="hidden", api_visibility="private")
    return radio, text


def module_value(selected: Sequence[str] | None) -> Any:
    selected = list(selected or [])
    if ALL_LINEAR in selected:
        return ALL_LINEAR
    return selected  # an empty list is refused by validate() with a plain message


def module_selection(value: Any) -> list[str]:
    return [ALL_LINEAR] if value == ALL_LINEAR else list(value or [])


def _get(cfg: StudioConfig, spec: Spec) -> Any:
    return getattr(getattr(cfg, spec.section), spec.name) if spec.section else getattr(cfg, spec.name)


class Bindings:
    """Builds the config widgets and converts their values to and from a StudioConfig."""

    def __init__(self, cfg: StudioConfig, labels: Labels):
        self.initial = cfg
        self.labels = labels
        self.widgets: dict[str, list[gr.components.Component]] = {}

    # ---- building ------------------------------------------------------------------
    def widget(self, section: str, name: str, **kw) -> Any:
        """Create the widget(s) of one field in the current layout context.
        A source field returns (kind radio, textbox); every other field one component."""
        spec = SPEC_BY_KEY[f"{section}.{name}" if section else name]
        if spec.key in self.widgets:
            raise ValueError(f"{spec.key} is already drawn")
        value = _get(self.initial, spec)
        built = self._build(spec, value, kw)
        self.widgets[spec.key] = list(built) if isinstance(built, tuple) else [built]
        return built

    def _build(self, spec: Spec, value: Any, kw: dict) -> Any:
        L = self.labels
        elem = "cfg-" + spec.key.replace(".", "-").replace("_", "-")
        info = Help(spec.section, spec.name) if spec.section else "help.name"
        label = f"field.{spec.key}"
        common = dict(elem_id=kw.pop("elem_id", elem), label=label, info=info, **kw)
        if spec.kind == "source":
            return source_picker(L, spec.section, value, elem=elem, label=label, kind_label=f"field.{spec.key}.kind",
                                 placeholder=f"placeholder.{spec.key}", info=info, **kw)
        if spec.kind == "bool":
            return L.make(gr.Checkbox, value=bool(value), **common)
        if spec.kind in ("int", "float"):
            number = L.make(gr.Number, value=value, precision=0 if spec.kind == "int" else None,
                            minimum=spec.minimum, maximum=spec.maximum, step=spec.step or 1, **common)
            return name_bounds_errors(number, spec)
        if spec.kind == "text":
            return L.make(gr.Textbox, value=value, **common)
        if spec.kind == "modules":
            choices = [ALL_LINEAR] + COMMON_MODULES
            sel = module_selection(value)
            choices += [m for m in sel if m not in choices]
            return L.make(gr.CheckboxGroup, choices=choices, value=sel, **common)
        cfg_choices = field_choices(spec.section, spec.name) if spec.section else None
        if spec.suggestions:     # free, with the usual values offered
            choices = list(spec.suggestions) + ([value] if value and value not in spec.suggestions else [])
            return L.make(gr.Dropdown, choices=choices, value=value, allow_custom_value=True, **common)
        if cfg_choices is None:  # free choices such as column names, filled from the data file
            return L.make(gr.Dropdown, choices=[value] if value else [""], value=value,
                          allow_custom_value=True, **common)
        cls = gr.Radio if spec.kind == "radio" else gr.Dropdown
        if spec.choice_keys:  # choices that need words; the config value stays the value
            choices = [(spec.choice_keys[c], c) for c in cfg_choices]
        else:
            choices = list(cfg_choices)
        return L.make(cls, choices=choices, value=value, **common)

    # ---- converting ----------------------------------------------------------------
    @property
    def inputs(self) -> list[gr.components.Component]:
        """Every config widget, in SPECS order (fields not drawn are simply absent)."""
        return [w for s in SPECS if s.key in self.widgets for w in self.widgets[s.key]]

    def api_names(self) -> list[str]:
        """Parameter names of the config inputs for API clients (e.g. ``training_max_steps``)."""
        out = []
        for s in SPECS:
            if s.key not in self.widgets:
                continue
            base = s.key.replace(".", "_") if s.section else f"run_{s.name}"
            out += [base + "_kind", base] if s.kind == "source" else [base]
        return out

    def named(self, fn: Callable, *leading: str) -> Callable:
        """Give a handler ``fn(*leading, *config values)`` a signature with real parameter names,
        so the API page and gradio_client show (and accept) ``lang``, ``training_max_steps``..."""
        params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                  for n in (*leading, *self.api_names())]
        fn.__signature__ = inspect.Signature(params)
        return fn

    def to_overrides(self, values: Sequence[Any]) -> dict:
        values = list(values)
        out: dict = {}
        for spec in SPECS:
            if spec.key not in self.widgets:
                continue
            n = len(self.widgets[spec.key])
            mine, values = values[:n], values[n:]
            if spec.kind == "source":
                v = source_value(spec.section, mine[0], mine[1])
            elif spec.kind == "modules":
                v = module_value(mine[0])
            else:
                v = mine[0]
            if spec.section:
                out.setdefault(spec.section, {})[spec.name] = v
            else:
                out[spec.name] = v
        return out

    def to_config(self, values: Sequence[Any], base: StudioConfig | None = None) -> StudioConfig:
        """The config the widgets show (fields not drawn keep ``base``/initial values).
        Raises ConfigError with a plain message for a value of the wrong type."""
        return merge(base or self.initial, self.to_overrides(values))

    def to_updates(self, cfg: StudioConfig, keep: Callable[[str], bool] = lambda key: False,
                   module_choices: Sequence[str] | None = None) -> list:
        """gr.update()s that make the widgets show ``cfg`` (``keep(key)`` True: leave that field alone).
        ``module_choices``: the target modules this user's checked model has (default: the common names)."""
        out: list = []
        for spec in SPECS:
            if spec.key not in self.widgets:
                continue
            n = len(self.widgets[spec.key])
            if keep(spec.key):
                out += [gr.skip()] * n
                continue
            value = _get(cfg, spec)
            if spec.kind == "source":
                kind = (model_kind if spec.section == "model" else data_kind)(value)
                builtin = kind in BUILT_IN
                out += [gr.update(value=kind), gr.update(value="" if builtin else value, visible=not builtin)]
            elif spec.kind == "modules":
                sel = module_selection(value)
                choices = [ALL_LINEAR] + list(module_choices or COMMON_MODULES)
                out.append(gr.update(choices=choices + [m for m in sel if m not in choices], value=sel))
            else:
                out.append(gr.update(value=value))
        return out


def name_bounds_errors(number: gr.Number, spec: Spec) -> gr.Number:
    """Make the number box's out-of-range refusal name its setting. Gradio's own words ("Value 0 is less
    than minimum value 1") name nothing, and an API caller cannot tell which of forty numbers was wrong."""
    plain = number.preprocess

    def preprocess(payload):
        try:
            return plain(payload)
        except gr.Error:
            label = t(f"field.{spec.key}", "en")
            low = spec.minimum is not None and payload < spec.minimum
            bound = f"at least {_num(spec.minimum)}" if low else f"at most {_num(spec.maximum)}"
            api = spec.key.replace(".", "_") if spec.section else f"run_{spec.name}"
            raise gr.Error(f"{label} ({spec.key}, API parameter '{api}') must be {bound}; {_num(payload)} was given.",
                           print_exception=False) from None

    number.preprocess = preprocess
    return number


def _num(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() and abs(x) < 1e18 else f"{x:g}"


def command_for(config_path: str = "studio-config.yaml") -> str:
    """The shell command that repeats this run headless, with the YAML saved at ``config_path``."""
    return f"studio train --config {shlex.quote(config_path)}"
