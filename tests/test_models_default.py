"""The built-in model: converting the shipped GGUF from scratch gives a folder that behaves the same.

Slow (about a minute on two CPU cores: the GGUF is parsed and dequantized), but it runs in CI so that
every run proves the conversion works, in a private STUDIO_CACHE.
"""

import json

import pytest
import torch

from studio.models import sources as ms
from studio import models
from studio.config import ModelConfig

PROMPT = [{"role": "user", "content": "Write three short tips for keeping a kitchen clean."}]


def _greedy(model, tokenizer, n=20):
    enc = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    enc = {k: v.to(model.device) for k, v in enc.items()}
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=n, min_new_tokens=n, do_sample=False)
    return out[0, enc["input_ids"].shape[1]:].tolist()


@pytest.mark.slow
def test_default_model_conversion_matches_the_gguf(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_CACHE", str(tmp_path / "cache"))
    folder = ms.default_model_dir()
    assert not folder.exists()
    gguf_model, gguf_tok = ms.convert_gguf(ms.default_gguf(), folder)

    assert ms.is_converted(folder)
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["architectures"] == ["LlamaForCausalLM"]

    # From now on 'default' is the cached folder: no second conversion.
    monkeypatch.setattr(ms, "load_gguf", lambda path: pytest.fail("converted twice"))
    cfg = ModelConfig(source="default")
    assert ms.resolve_source("default") == folder
    model = models.load_model(cfg, for_training=False)
    tok = models.load_tokenizer(cfg)

    assert tok.chat_template == gguf_tok.chat_template and tok.pad_token is not None
    assert model.config.tie_word_embeddings
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    # Same tokens, greedily: compared in float32 on the CPU like the GGUF model, whatever the device.
    from transformers import AutoModelForCausalLM
    reloaded = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    expected = _greedy(gguf_model, gguf_tok)
    assert _greedy(reloaded, tok) == expected and len(expected) == 20
    summary = models.model_summary(model, tok)
    assert summary["params"] == models.parameter_counts(gguf_model)["total"] > 100_000_000
    assert summary["template"] == "model" and summary["context_length"] == 8192
