"""The LoRA adapter as a llama.cpp adapter GGUF: read back with the gguf package (metadata, names, shapes,
B @ A * alpha / r = peft's own delta of a layer), the base GGUF written once beside it, the Modelfile naming
both, and the adapters the format cannot hold refused. With llama-cpp-python installed, base + adapter in
llama.cpp answers token for token like the merged f16 file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from test_export import train_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_dir):
    return train_run(tmp_path_factory.mktemp("lora-gguf"), tiny_dir, steps=10)


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    from studio.export.run_export import export_run
    folder = tmp_path_factory.mktemp("out")
    return export_run(run_dir, "gguf-lora", "auto", folder / "run-LoRA-F16.gguf", progress=lambda m: None)


def _text(field) -> str:
    return bytes(field.parts[-1]).decode("utf-8")


def test_the_adapter_gguf_holds_the_peft_delta(run_dir, exported):
    import gguf
    from peft import PeftModel

    from studio.export.gguf import _permute
    from studio.export.merge import run_base

    reader = gguf.GGUFReader(str(exported))
    f = reader.fields
    assert _text(f["general.type"]) == "adapter" and _text(f["adapter.type"]) == "lora"
    assert _text(f["general.architecture"]) == "llama"
    alpha = float(f["adapter.lora.alpha"].parts[-1][0])
    assert alpha == 16.0                                     # lora.alpha 16, r 8: alpha / r = peft's scale
    tensors = {t.name: np.array(t.data, dtype=np.float32) for t in reader.tensors}
    base, _, _ = run_base(run_dir, torch.float32)
    layers = base.config.num_hidden_layers
    for n in range(layers):
        for part in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"):
            assert f"blk.{n}.{part}.weight.lora_a" in tensors and f"blk.{n}.{part}.weight.lora_b" in tensors
    assert not any(name.startswith(("token_embd", "output")) for name in tensors)

    model = PeftModel.from_pretrained(base, str(Path(run_dir) / "adapter"))
    attn = model.base_model.model.model.layers[1].self_attn
    heads = base.config.num_attention_heads
    for proj, name, permute in ((attn.v_proj, "blk.1.attn_v.weight", None), (attn.q_proj, "blk.1.attn_q.weight", heads)):
        a, b = tensors[name + ".lora_a"], tensors[name + ".lora_b"]
        rank = a.shape[0]
        assert a.shape == tuple(proj.lora_A["default"].weight.shape)     # rank x in: ggml's ne = (in, rank)
        assert b.shape == tuple(proj.lora_B["default"].weight.shape)     # out x rank: ne = (rank, out)
        want = proj.get_delta_weight("default").detach().numpy()
        if permute:                                       # the base's q rows are in llama.cpp's rotary order
            want = _permute(want, permute)
        assert np.abs(want).max() > 1e-4                  # the adapter learned something to compare
        np.testing.assert_allclose(b @ a * alpha / rank, want, atol=2e-3 * np.abs(want).max() + 1e-5)


def test_the_base_gguf_is_written_once_and_the_modelfile_names_both(run_dir, exported):
    from studio.export.gguf_lora import base_name, is_adapter
    from studio.export.modelfile import modelfile_path, read_modelfile
    from studio.export.run_export import export_run

    base = exported.with_name(base_name(run_dir))
    assert base.is_file() and not is_adapter(base) and is_adapter(exported)
    info = read_modelfile(modelfile_path(exported))
    assert info["from"] == f"./{base.name}" and info["adapter"] == f"./{exported.name}"
    before = base.stat().st_mtime_ns
    said: list[str] = []
    again = export_run(run_dir, "gguf-lora", "f32", exported.with_name("again-LoRA-F32.gguf"), progress=said.append)
    assert base.stat().st_mtime_ns == before                      # reused, not written again
    assert any("already written" in m for m in said) and any(base.name in m for m in said)
    assert read_modelfile(modelfile_path(again))["from"] == f"./{base.name}"


def test_app_choice_and_file_name():
    from studio.export.gguf_lora import file_name
    from studio.export.run_export import choices, parse_choice
    assert "gguf-lora" in choices()
    assert parse_choice("gguf-lora") == ("gguf-lora", "auto")
    assert parse_choice("gguf-q4_k_m") == ("gguf", "q4_k_m")
    assert file_name("auto") == ("LoRA-F16", ".gguf")


@pytest.mark.parametrize("config, code", [
    ({"peft_type": "LORA", "use_dora": True}, "export.lora_dora"),
    ({"peft_type": "IA3"}, "export.lora_not_lora"),
    ({"peft_type": "LORA", "modules_to_save": ["lm_head"]}, "export.lora_full_modules"),
    ({"peft_type": "LORA", "bias": "lora_only"}, "export.lora_bias"),
])
def test_adapters_the_format_cannot_hold_are_refused(config, code):
    from studio.errors import ExportError
    from studio.export.gguf_lora import check_adapter_config
    with pytest.raises(ExportError) as e:
        check_adapter_config(config)
    assert e.value.code == code


def test_lora_on_the_embedding_is_refused_by_name(tmp_path, tiny_dir):
    from safetensors.numpy import save_file
    from transformers import AutoConfig

    from studio.errors import ExportError
    from studio.export.gguf_lora import lora_tensors

    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 4}))
    save_file({"base_model.model.model.embed_tokens.lora_embedding_A": np.zeros((2, 8), np.float32)},
              str(tmp_path / "adapter_model.safetensors"))
    with pytest.raises(ExportError) as e:
        lora_tensors(tmp_path, AutoConfig.from_pretrained(str(tiny_dir)))
    assert e.value.code == "export.lora_tensor" and "embed_tokens" in str(e.value)


def test_rslora_and_a_rank_pattern_fold_into_alpha_and_b(tmp_path, tiny_dir):
    """llama.cpp scales by alpha / rank: rsLoRA's alpha / sqrt(r) becomes alpha * sqrt(r) in the file, and a
    layer whose rank differs gets its own scale folded into B."""
    from safetensors.numpy import save_file
    from transformers import AutoConfig

    from studio.export.gguf_lora import lora_tensors

    rng = np.random.default_rng(0)
    cfg = AutoConfig.from_pretrained(str(tiny_dir))
    h = cfg.hidden_size
    weights = {}
    for layer, rank in ((0, 4), (1, 2)):
        key = f"base_model.model.model.layers.{layer}.self_attn.v_proj"
        out = cfg.num_key_value_heads * (h // cfg.num_attention_heads)
        weights[key + ".lora_A.weight"] = rng.standard_normal((rank, h)).astype(np.float32)
        weights[key + ".lora_B.weight"] = rng.standard_normal((out, rank)).astype(np.float32)
    save_file(weights, str(tmp_path / "adapter_model.safetensors"))
    (tmp_path / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "use_rslora": True, "rank_pattern": {"layers.1.self_attn.v_proj": 2}}))
    alpha, tensors = lora_tensors(tmp_path, cfg)
    assert alpha == pytest.approx(8 * math.sqrt(4))
    got = dict(tensors)
    for layer, rank in ((0, 4), (1, 2)):
        key = f"base_model.model.model.layers.{layer}.self_attn.v_proj"
        want = weights[key + ".lora_B.weight"] @ weights[key + ".lora_A.weight"] * 8 / math.sqrt(rank)
        name = f"blk.{layer}.attn_v.weight"
        np.testing.assert_allclose(got[name + ".lora_b"] @ got[name + ".lora_a"] * alpha / rank, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_in_llama_cpp_base_plus_adapter_answers_like_the_merged_file(run_dir, exported, tmp_path):
    pytest.importorskip("llama_cpp")
    from studio.export.run_export import export_run
    from studio.export_check import GGUFAnswerer
    from studio.export.gguf_lora import base_name
    from test_export import PROMPTS

    merged = export_run(run_dir, "gguf", "f16", tmp_path / "run-F16.gguf", progress=lambda m: None)
    base = exported.with_name(base_name(run_dir))
    ask_merged = GGUFAnswerer(merged, "", [], 1.0, 12, n_ctx=256, threads=1)
    ask_lora = GGUFAnswerer(base, "", [], 1.0, 12, n_ctx=256, threads=1, lora_path=exported)
    ask_base = GGUFAnswerer(base, "", [], 1.0, 12, n_ctx=256, threads=1)
    try:
        pairs = [(ask_merged.answer(p), ask_lora.answer(p), ask_base.answer(p)) for p in PROMPTS]
    finally:
        for a in (ask_merged, ask_lora, ask_base):
            a.close()
    assert all(m == lo for m, lo, _ in pairs), pairs
    assert any(m != b for m, _, b in pairs), "the adapter changed no answer: the test compares nothing"
