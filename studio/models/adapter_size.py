"""How many parameters each adapter of ``lora.adapter`` trains, from the model's sizes alone (no weights):
the memory estimate's adapter part. Each formula is the shape of the tensors peft 0.21 makes.

``dims`` (``size.size_facts``' ``linear_dims``): per layer name, the (in, out) features of every such layer
in the model; without it attention layers count as h->h and MLP layers as h<->i.
"""

from __future__ import annotations

from ..config import ALL_LINEAR, LoraConfig

# peft's IA3 table for Llama-style models (k_proj, v_proj scaled on their output, down_proj on its input)
_IA3_DEFAULT = ("k_proj", "v_proj", "down_proj")
_FEEDFORWARD = ("down_proj", "fc2", "w2", "c_proj", "dense_4h_to_h", "fc_out")
_ATTN = ("q_proj", "k_proj", "v_proj", "o_proj", "query", "key", "value", "dense", "c_attn", "qkv_proj", "out_proj")


def _lora_params(lora_cfg: LoraConfig, hidden: int, inter: int, layers: int, in_out: dict | None = None) -> int:
    """LoRA adds r x (in + out) per adapted layer. ``in_out`` (``size_facts``: in + out summed per
    layer name) makes it exact; without it, attention layers count as h->h and MLP layers as h<->i."""
    targets = lora_cfg.target_modules
    if in_out:
        names = in_out if targets == ALL_LINEAR else [t for t in targets if t in in_out]
        return lora_cfg.r * sum(in_out[n] for n in names)
    if targets == ALL_LINEAR:
        per_layer = 4 * 2 * hidden + 3 * (hidden + inter)
    else:
        per_layer = sum(2 * hidden if t in _ATTN else hidden + inter for t in targets)
    return lora_cfg.r * per_layer * layers


def _guessed_dims(names, hidden: int, inter: int, kv: int, layers: int) -> dict:
    def one(n):
        if n in ("k_proj", "v_proj"):
            return hidden, kv
        if n in _ATTN:
            return hidden, hidden
        return (inter, hidden) if n in _FEEDFORWARD else (hidden, inter)
    return {n: [one(n)] * layers for n in names}


def _targets(lora_cfg: LoraConfig, dims: dict, default: tuple = ()) -> list[str]:
    t = lora_cfg.target_modules
    if t == ALL_LINEAR:
        return [n for n in (default or dims) if n in dims]
    return [n for n in t if n in dims]


def _factor(dimension: int) -> tuple[int, int]:
    """peft's lokr ``factorization(d, -1)``: the two divisors closest to the square root, smaller first."""
    m = int(dimension ** 0.5)
    while m > 1 and dimension % m:
        m -= 1
    return m, dimension // m


def _lokr(r: int, d_in: int, d_out: int) -> int:
    in_m, in_n = _factor(d_in)
    out_l, out_k = _factor(d_out)
    w1 = out_l * in_m                                   # the small Kronecker factor, full
    w2 = r * (out_k + in_n) if r < max(out_k, in_n) / 2 else out_k * in_n
    return w1 + w2


def adapter_params(lora_cfg: LoraConfig, hidden: int, inter: int, layers: int, kv_width: int = 0,
                   in_out: dict | None = None, dims: dict | None = None) -> int:
    """The trainable parameters of ``lora_cfg.adapter`` on a model of these sizes."""
    kv = kv_width or hidden
    adapter, r, v = lora_cfg.adapter, lora_cfg.r, lora_cfg.virtual_tokens
    if adapter == "prompt":
        return v * hidden                               # one embedding row per virtual token
    if adapter == "prefix":
        return v * layers * 2 * kv                      # a key and a value per token and layer
    if adapter == "llama-adapter":
        n = min(lora_cfg.adapter_layers or layers, layers)
        return n * (v * hidden + 1)                     # the tokens and one gate per adapted layer
    if adapter == "lora":                               # PiSSA/OLoRA: the same shapes
        return _lora_params(lora_cfg, hidden, inter, layers, in_out)
    if not dims:
        names = list(in_out) if in_out else (
            ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
        dims = _guessed_dims(names, hidden, inter, kv, layers)
    if adapter == "ia3":
        return sum(d_in if n in _FEEDFORWARD else d_out
                   for n in _targets(lora_cfg, dims, _IA3_DEFAULT) for d_in, d_out in dims[n])
    pairs = [p for n in _targets(lora_cfg, dims) for p in dims[n]]
    if adapter == "lokr":
        return sum(_lokr(r, d_in, d_out) for d_in, d_out in pairs)
    return sum(2 * r * (d_in + d_out) for d_in, d_out in pairs)          # loha: two LoRA-like pairs
