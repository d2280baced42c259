"""Gradient checkpointing 'offload' (studio/models/offload.py): on the tiny Llama the same loss and gradients as
plain checkpointing and as none, the hooks seeing exactly each checkpointed layer's input; the mode through the
config, YAML and a run; the memory estimate counting the inputs in CPU memory, and 'auto' / Fit to my GPU
choosing it only when every layer checkpointed on the GPU does not fit."""

from __future__ import annotations

import pytest
import torch

from studio.models.offload import CpuOffload, decoder_layers, is_offloaded, set_offload
from tiny import loss_and_grads, tiny_model, tiny_tokenizer


class CopyingOffload(CpuOffload):
    """On a CPU the real hooks pass tensors through; this one copies every packed tensor away and back (as the
    GPU path does), and records what it was given."""

    def __init__(self):
        super().__init__()
        self.shapes: list = []

    def pack(self, t):
        if t.numel() == 0:      # as the real hooks: an empty placeholder (saved where CUDA is present) stays
            return t
        self.shapes.append(tuple(t.shape))
        return ("copied", t.detach().clone().requires_grad_(t.requires_grad))

    @staticmethod
    def unpack(packed):
        return packed[1] if isinstance(packed, tuple) and packed[0] == "copied" else packed


def _lora_model(mode: str, hooks=None):
    from transformers import set_seed
    from studio.config import LoraConfig
    from studio.models.lora import apply_lora

    tok = tiny_tokenizer()
    model = tiny_model(tok, seed=0)
    set_seed(0)
    peft = apply_lora(model, LoraConfig(r=8, alpha=16, dropout=0.0), gradient_checkpointing=mode != "off")
    torch.manual_seed(1)
    with torch.no_grad():       # B = 0 at the start would leave A's gradient zero: give both something to say
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    if mode == "offload":
        set_offload(peft, True, hooks=hooks)
    peft.train()
    return peft


def test_offload_gives_the_loss_and_gradients_of_plain_checkpointing_and_of_none():
    hooks = CopyingOffload()
    models = {mode: _lora_model(mode, hooks if mode == "offload" else None) for mode in ("off", "on", "offload")}
    results = {mode: loss_and_grads(model) for mode, model in models.items()}
    loss_off, grads_off = results["off"]
    # every trainable parameter got a gradient, and none of them is all zeros
    assert grads_off.keys() == {n for n, p in models["off"].named_parameters() if p.requires_grad}
    assert grads_off and all(g.abs().max() > 0 for g in grads_off.values())
    for mode in ("on", "offload"):
        loss, grads = results[mode]
        torch.testing.assert_close(loss, loss_off, rtol=1e-5, atol=1e-6)
        assert grads.keys() == grads_off.keys()
        for name in grads:
            torch.testing.assert_close(grads[name], grads_off[name], rtol=1e-4, atol=1e-6, msg=name)
    # What went through the hooks: each of the 2 checkpointed layers' input (batch x tokens x hidden), nothing
    # of the layers' insides (the checkpoint keeps those itself) and nothing outside the layers.
    assert hooks.shapes == [(2, 48, 64), (2, 48, 64)]


def test_the_real_hooks_run_on_a_cpu_and_copy_nothing():
    model = _lora_model("offload")
    assert is_offloaded(model)
    from studio.models.offload import OFFLOAD
    before = OFFLOAD.packed
    loss, grads = loss_and_grads(model)
    assert torch.isfinite(loss) and grads
    assert OFFLOAD.packed == before                 # CPU tensors pass through: no copies on a CPU run
    set_offload(model, False)
    assert not is_offloaded(model)
    torch.testing.assert_close(loss_and_grads(model)[0], loss)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the pinned copies need a GPU")
def test_offload_on_a_gpu_copies_the_inputs_and_matches():       # runs where there is a GPU
    hooks = CpuOffload()
    a = _lora_model("on").cuda()
    b = _lora_model("offload", hooks).cuda()
    torch.manual_seed(2)
    ids = torch.randint(3, 300, (2, 48), device="cuda")
    la, lb = a(input_ids=ids, labels=ids).loss, b(input_ids=ids, labels=ids).loss
    la.backward(), lb.backward()
    assert hooks.packed == len(decoder_layers(b))
    torch.testing.assert_close(la, lb)


def test_a_run_with_offload_learns_what_a_run_with_checkpointing_learns(tmp_path):
    import json
    from test_training_job import run_job

    losses = {}
    for mode in ("on", "offload"):
        job = run_job(tmp_path, name=mode, max_steps=3, gradient_checkpointing=mode)
        assert job.state == "done", job.message
        assert job.info["checkpointed_layers"] == "all"
        assert job.info.get("activation_offload", False) is (mode == "offload")
        rows = [json.loads(x) for x in (job.run_dir / "metrics.jsonl").read_text().splitlines()]
        losses[mode] = [r["loss"] for r in rows if r["type"] == "train"]
    assert len(losses["on"]) == 3
    assert losses["offload"] == pytest.approx(losses["on"], rel=1e-5)


def test_the_mode_round_trips_through_yaml_and_validates(tmp_path):
    from studio.config import StudioConfig, field_help
    from studio.errors import ConfigError

    cfg = StudioConfig.from_dict({"training": {"gradient_checkpointing": "Offload"}})
    assert cfg.training.gradient_checkpointing == "offload"
    cfg.validate()
    cfg.save(tmp_path / "c.yaml")
    assert "gradient_checkpointing: offload" in (tmp_path / "c.yaml").read_text()
    assert StudioConfig.load(tmp_path / "c.yaml").training.gradient_checkpointing == "offload"
    assert "offload" in field_help("training", "gradient_checkpointing")
    assert "offload" in field_help("training", "gradient_checkpointing", "zh")
    with pytest.raises(ConfigError):                 # prefix tuning's cache cannot pass checkpointed layers
        StudioConfig.from_dict({"lora": {"adapter": "prefix"},
                                "training": {"gradient_checkpointing": "offload"}}).validate()


LLAMA_3_8B = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
              "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256,
              "max_position_embeddings": 131072, "tie_word_embeddings": False}


def _estimate(tokens: int, mode: str, budget: float, tile: str = "off") -> dict:
    from studio.config import StudioConfig
    from studio.models.size import config_facts, estimate_from_facts
    cfg = StudioConfig.from_dict({"model": {"quantization": "4bit-nf4"}, "data": {"max_length": tokens},
                                  "lora": {"r": 16}, "training": {"batch_size": 1, "gradient_checkpointing": mode,
                                                                  "tile_mlp": tile,      # (tests/test_mlp_tiling.py)
                                                                  "optimizer": "paged_adamw_8bit"}})
    return estimate_from_facts(cfg, config_facts(LLAMA_3_8B), device={"device": "cuda", "free_gb": budget})


def test_the_estimate_counts_offloaded_inputs_in_cpu_memory():
    tokens, layers, hidden = 131072, 32, 4096
    on, off = _estimate(tokens, "on", 24.0), _estimate(tokens, "offload", 24.0)
    inputs_gb = tokens * layers * hidden * 2 / 1e9              # 34.4 GB: more than the card
    assert on["checkpointing"] == "on" and on["cpu_offload_gb"] == 0
    assert off["checkpointing"] == "offload" and off["cpu_offload_gb"] == pytest.approx(inputs_gb, rel=1e-3)
    # on the GPU: 30 of the 32 inputs fewer (two stay in flight), and the allocator's reserve over them
    saved = (on["parts"]["activations"] - off["parts"]["activations"])
    assert saved == pytest.approx(inputs_gb * 30 / 32, rel=1e-2)
    assert on["total_gb"] - off["total_gb"] > saved
    # 65,536 tokens: every layer checkpointed needs about 41 GB, offloaded about 21 GB of a 24 GB card
    assert not _estimate(65536, "on", 24.0)["fits"] and _estimate(65536, "offload", 24.0)["fits"]


def test_the_settings_tab_says_what_ram_the_offloaded_inputs_take():
    from studio.ui import views
    off, on = _estimate(65536, "offload", 24.0), _estimate(65536, "on", 24.0)
    gb = f"{off['cpu_offload_gb']:.1f} GB"
    assert f"about {gb}, in this computer's memory (RAM)" in views.memory(off, "en")
    assert f"约 {gb}" in views.memory(off, "zh")
    assert "RAM" not in views.memory(on, "en")
    # the offloaded inputs must fit the computer's free memory as well as the GPU
    ram = {"device": "cuda", "free_gb": 24.0}
    from studio.config import StudioConfig
    from studio.models.size import config_facts, estimate_from_facts
    cfg = StudioConfig.from_dict({"model": {"quantization": "4bit-nf4"}, "data": {"max_length": 65536},
                                  "lora": {"r": 16}, "training": {"batch_size": 1, "gradient_checkpointing": "offload",
                                                                  "optimizer": "paged_adamw_8bit"}})
    short = estimate_from_facts(cfg, config_facts(LLAMA_3_8B), device={**ram, "ram_free_gb": 8.0})
    room = estimate_from_facts(cfg, config_facts(LLAMA_3_8B), device={**ram, "ram_free_gb": 64.0})
    assert short["ram_short"] and not short["fits"] and room["fits"] and not room["ram_short"]
    assert "only 8.0 GB free" in views.memory(short, "en") and "8.0 GB 空闲内存" in views.memory(short, "zh")
    assert "only" not in views.memory(room, "en")


def test_auto_is_estimated_as_offload_only_when_every_layer_checkpointed_does_not_fit():
    assert _estimate(65536, "auto", 24.0)["checkpointing"] == "offload"
    assert _estimate(65536, "auto", 24.0)["fits"]
    assert _estimate(131072, "auto", 141.0)["checkpointing"] == "on"      # an H200 holds the inputs
    assert _estimate(8192, "auto", 24.0)["checkpointing"] == "on"


def test_fit_to_my_gpu_offloads_a_long_row_and_not_a_short_one():
    from studio.config import StudioConfig
    from studio.fit import fit_to_gpu
    from studio.models.size import config_facts

    facts = config_facts(LLAMA_3_8B)

    def fitted(tokens, budget):
        cfg = StudioConfig.from_dict({"model": {"quantization": "4bit-nf4"}, "data": {"max_length": tokens},
                                      "training": {"batch_size": 1, "grad_accum": 4, "gradient_checkpointing": "off",
                                                   "optimizer": "paged_adamw_8bit"}})
        return fit_to_gpu(cfg, facts, budget)

    cfg, changes, fits = fitted(65536, 24.0)
    # (with the MLP tiled, 'auto' with offload, two rows of 65,536 a micro-batch fit: tests/test_mlp_tiling.py)
    assert fits and cfg.training.gradient_checkpointing == "auto" and cfg.training.batch_size <= 2
    assert cfg.training.batch_size * cfg.training.grad_accum == 4
    assert any("CPU memory (offload" in c for c in changes), changes
    cfg, changes, fits = fitted(4096, 24.0)
    assert fits and not any("offload" in c for c in changes), changes
    cfg, changes, fits = fitted(1_048_576, 24.0)       # a million tokens: even offloaded it does not fit
    assert not fits and "CPU memory" in changes[0]
    # the offloaded inputs must also fit the computer's free memory: with 8 GB of RAM free, 65,536 tokens do not
    cfg = StudioConfig.from_dict({"model": {"quantization": "4bit-nf4"}, "data": {"max_length": 65536},
                                  "training": {"batch_size": 1, "grad_accum": 4, "gradient_checkpointing": "off",
                                               "optimizer": "paged_adamw_8bit"}})
    roomy, _, fits_roomy = fit_to_gpu(cfg, facts, 24.0, ram_free_gb=256.0)
    _, changes, fits = fit_to_gpu(cfg, facts, 24.0, ram_free_gb=8.0)
    assert fits_roomy and roomy.training.gradient_checkpointing == "auto"
    assert not fits and "this computer has 8.0 GB free" in changes[0], changes


def test_auto_at_run_time_offloads_when_every_layer_checkpointed_does_not_fit():
    from studio.training.checkpointing import needs_offload
    assert needs_offload(None, 20e9)                 # the all-checkpointed probe ran out of memory
    assert needs_offload(21e9, 20e9)
    assert not needs_offload(19e9, 20e9)


def test_auto_tiles_the_mlp_before_it_measures_offload(monkeypatch):
    """At 131,072 tokens an 8B model's untiled MLP does not fit 24 GB even offloaded: 'auto' must measure the
    offloaded run with the MLP already tiled, or it runs out of memory instead of choosing what fits."""
    from studio.models.tiling import is_tiled, set_mlp_tiling
    from studio.training import checkpointing

    model = _lora_model("on")
    probes: list[tuple[bool, bool]] = []

    def probe(trainer, m, batch):       # (offloaded, tiled) of each measurement; untiled runs out of memory
        probes.append((is_offloaded(m), is_tiled(m)))
        if not is_tiled(m):
            raise torch.cuda.OutOfMemoryError("out of memory")
        return 10 * 2**30, 2**30

    monkeypatch.setattr(checkpointing, "_probe", probe)
    monkeypatch.setattr(checkpointing, "memory_budget", lambda: 24 * 2**30)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda *a: 0)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    decision = checkpointing.choose(None, model, {}, 131072, 0, prepare_offload=lambda: set_mlp_tiling(model, True))
    assert decision.offload and decision.layers == decision.total == 2
    assert probes == [(False, False), (True, True)]      # all checkpointed on the GPU, then offloaded and tiled
    assert "10.0 GB of a 24.0 GB budget" in decision.note
