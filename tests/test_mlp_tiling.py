"""MLP tiling over the sequence (studio/models/tiling.py, ``training.tile_mlp``): on the tiny Llama the same loss
and gradients as untiled, with and without LoRA, with checkpointing off, on and offload; the MLP really runs per
tile inside the layer's recompute; the config field through YAML; the estimate's MLP term kept to one tile."""

from __future__ import annotations

import pytest
import torch

from studio.models.offload import set_offload
from studio.models.tiling import is_tiled, mlp_modules, set_mlp_tiling
from tiny import loss_and_grads, tiny_model, tiny_tokenizer

TILE = 5          # tokens a tile in these tests: 48 tokens in 10 tiles, the last one short


def _model(lora: bool, mode: str):
    from transformers import set_seed
    from studio.config import LoraConfig
    from studio.models.lora import apply_lora

    model = tiny_model(tiny_tokenizer(), seed=0)
    if lora:
        set_seed(0)
        model = apply_lora(model, LoraConfig(r=8, alpha=16, dropout=0.0, target_modules="all-linear"),
                           gradient_checkpointing=mode != "off")
        torch.manual_seed(1)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.05)
    elif mode != "off":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if mode == "offload":
        set_offload(model, True)
    model.train()
    return model


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
@pytest.mark.parametrize("mode", ["off", "on", "offload"])
def test_tiled_mlp_gives_the_loss_and_gradients_of_untiled(lora, mode):
    loss, grads = loss_and_grads(_model(lora, mode))
    tiled_model = _model(lora, mode)
    assert set_mlp_tiling(tiled_model, True, tokens=TILE) == 2 and is_tiled(tiled_model)
    tloss, tgrads = loss_and_grads(tiled_model)
    assert torch.allclose(loss, tloss, atol=1e-6)
    assert grads.keys() == tgrads.keys() and len(grads) > 0
    if lora:
        assert any("lora_A" in n and "mlp" in n for n in grads)     # LoRA on gate/up/down is trained
        assert all("lora" in n for n in grads)
    for n in grads:
        assert torch.allclose(grads[n], tgrads[n], atol=1e-5, rtol=1e-4), n


def test_the_mlp_runs_per_tile_in_the_forward_and_in_the_layers_recompute():
    model = _model(lora=True, mode="offload")
    set_mlp_tiling(model, True, tokens=TILE)
    seen: list = []
    for mlp in mlp_modules(model):
        mlp.gate_proj.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[-2]))
    loss_and_grads(model)
    # 2 layers x 10 tiles, run in the forward, again in the layer's recompute, again in the tile's recompute
    # (PyTorch's checkpoint stops a recompute early once it has what the backward needs: a few fewer)
    assert seen and max(seen) == TILE and 2 * 10 * 2 < len(seen) <= 2 * 10 * 3, seen
    # names, parameters and the adapter's keys are unchanged; untiled again it runs whole
    assert all(type(m).__name__ == "TiledLlamaMLP" for m in mlp_modules(model))
    assert all(".mlp.gate_proj." in n for n in model.state_dict() if "gate_proj" in n)
    set_mlp_tiling(model, False)
    assert not is_tiled(model) and type(mlp_modules(model)[0]).__name__ == "LlamaMLP"
    seen.clear()
    with torch.no_grad():
        model(input_ids=torch.randint(3, 300, (1, 48)))
    assert seen == [48, 48]


def test_a_row_no_longer_than_a_tile_runs_whole():
    model = _model(lora=False, mode="off")
    set_mlp_tiling(model, True, tokens=64)
    seen: list = []
    mlp_modules(model)[0].gate_proj.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[-2]))
    loss_and_grads(model)
    assert seen == [48]


def test_the_setting_round_trips_through_yaml_and_takes_yes_and_no():
    from studio.config import StudioConfig, field_help
    from studio.errors import ConfigError
    assert StudioConfig().training.tile_mlp == "auto"
    for value in ("auto", "on", "off"):
        cfg = StudioConfig.from_dict({"training": {"tile_mlp": value}})
        cfg.validate()
        assert StudioConfig.from_yaml(cfg.to_yaml()).training.tile_mlp == value
    assert StudioConfig.from_dict({"training": {"tile_mlp": True}}).training.tile_mlp == "on"
    assert StudioConfig.from_dict({"training": {"tile_mlp": "false"}}).training.tile_mlp == "off"
    with pytest.raises(ConfigError):
        StudioConfig.from_dict({"training": {"tile_mlp": "sometimes"}}).validate()
    assert "tile" in field_help("training", "tile_mlp") and "分块" in field_help("training", "tile_mlp", "zh")


LLAMA_3_8B = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
              "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256,
              "max_position_embeddings": 131072, "tie_word_embeddings": False}


def _estimate(tokens: int, mode: str, tile: str, budget: float = 24.0) -> dict:
    from studio.config import StudioConfig
    from studio.models.size import config_facts, estimate_from_facts
    cfg = StudioConfig.from_dict({"model": {"quantization": "4bit-nf4"}, "data": {"max_length": tokens},
                                  "lora": {"r": 16}, "training": {"batch_size": 1, "gradient_checkpointing": mode,
                                                                  "tile_mlp": tile, "optimizer": "paged_adamw_8bit"}})
    return estimate_from_facts(cfg, config_facts(LLAMA_3_8B), device={"device": "cuda", "free_gb": budget})


def test_the_estimate_keeps_the_mlp_to_one_tile():
    tokens = 131072
    whole, tiled = _estimate(tokens, "offload", "off"), _estimate(tokens, "offload", "auto")
    assert not whole["tile_mlp"] and tiled["tile_mlp"]
    mlp_gb = (tokens - 8192) * 6 * 14336 / 1e9                  # gate, up, product: 10.57 GB
    assert mlp_gb == pytest.approx(10.5696, abs=1e-3)
    saved = whole["parts"]["activations"] - tiled["parts"]["activations"]
    assert saved == pytest.approx(mlp_gb, abs=2e-3)
    assert whole["total_gb"] - tiled["total_gb"] == pytest.approx(mlp_gb * 1.25, abs=0.02)   # and its reserve
    assert tiled["cpu_offload_gb"] == whole["cpu_offload_gb"]
    assert not whole["fits"] and tiled["fits"]                   # 128k tokens on a 24 GB card: tiling is the step
    # 'auto' tiles only with offload; 'on' tiles any checkpointing; a row of one tile costs the same
    assert not _estimate(tokens, "on", "auto", 200.0)["tile_mlp"] and _estimate(tokens, "on", "on", 200.0)["tile_mlp"]
    assert _estimate(8192, "offload", "on")["total_gb"] == _estimate(8192, "offload", "off")["total_gb"]
    assert _estimate(tokens, "auto", "auto")["checkpointing"] == "offload"
    assert _estimate(tokens, "auto", "auto")["tile_mlp"]


def test_a_training_job_tiles_when_asked_and_learns_what_an_untiled_one_learns(tmp_path, monkeypatch):
    """The job's wiring: tile_mlp 'on' tiles every MLP (tiles of 4 tokens here, so the tiny rows are cut into many)
    and trains the same losses as 'off'; 'auto' without offload does not tile."""
    import functools
    import json

    from studio.models import tiling
    from test_training_job import run_job

    monkeypatch.setattr(tiling, "set_mlp_tiling", functools.partial(tiling.set_mlp_tiling, tokens=4))
    losses = {}
    for mode in ("on", "off", "auto"):
        job = run_job(tmp_path, name=mode, max_steps=3, tile_mlp=mode, gradient_checkpointing="on")
        assert job.state == "done", job.message
        assert bool(job.info.get("mlp_tiled")) is (mode == "on")
        rows = [json.loads(x) for x in (job.run_dir / "metrics.jsonl").read_text().splitlines()]
        losses[mode] = [r["loss"] for r in rows if r["type"] == "train"]
    assert len(losses["on"]) == 3
    assert losses["on"] == pytest.approx(losses["off"], rel=1e-4, abs=1e-5)
