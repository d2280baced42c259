"""GGUF export on a tiny Llama: read back by transformers' own GGUF loader, an independent reader, the
f16 file answers exactly like the merged model; q8_0 stays close."""

from __future__ import annotations

import pytest
import torch

from test_export import PROMPTS, greedy, train_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_dir):
    return train_run(tmp_path_factory.mktemp("gguf"), tiny_dir)


@pytest.mark.parametrize("kind", ["f16", "q8_0"])
def test_gguf_round_trip_through_transformers_loader(run_dir, tmp_path, kind):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.export.gguf import export_gguf, modelfile_lines
    from studio.export.merge import merged_model

    path = export_gguf(run_dir, tmp_path / f"model-{kind}.gguf", kind, progress=lambda m: None)
    assert path.is_file() and not (tmp_path / f"model-{kind}.gguf.partial").exists()
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(tmp_path, gguf_file=path.name)
    merged, merged_tok, template = merged_model(run_dir, torch.float32)
    assert tok.chat_template == template
    text = "Hello, how are you today? 0123456789"
    assert tok(text)["input_ids"] == merged_tok(text)["input_ids"]
    for prompt in PROMPTS:
        want, want_logits = greedy(merged, merged_tok, template, prompt)
        got, got_logits = greedy(loaded, tok, template, prompt)
        if kind == "f16":
            assert got == want
            torch.testing.assert_close(got_logits, want_logits, rtol=0, atol=5e-2)
        else:
            assert (got_logits - want_logits).abs().max() < 0.2
    assert f"FROM ./{path.name}" in modelfile_lines(path)


def test_a_sentencepiece_style_tokenizer_round_trips(tmp_path_factory, tmp_path):
    """Llama 2 and Mistral tokenizers ('▁' words, <0x..> byte pieces) go in as llama.cpp's 'llama'
    vocabulary; written as byte-level 'gpt2' tokens they would have split every text differently."""
    import gguf
    from transformers import AutoTokenizer

    from studio.export.gguf import export_gguf
    from studio.export.merge import merged_model
    from tiny import tiny_sentencepiece_model_dir

    base = tiny_sentencepiece_model_dir(tmp_path_factory.mktemp("spm-model"))
    run = train_run(tmp_path_factory.mktemp("spm-run"), base, steps=3)
    path = export_gguf(run, tmp_path / "model.gguf", "f16", progress=lambda m: None)
    fields = gguf.GGUFReader(str(path)).fields
    assert bytes(fields["tokenizer.ggml.model"].parts[-1]).decode() == "llama"
    merged, merged_tok, template = merged_model(run, torch.float32)
    tok = AutoTokenizer.from_pretrained(tmp_path, gguf_file=path.name)
    for text in ("Hello, how are you today? 0123456789", "Die Rücksendung: 30 Tage. ✓", "  two spaces"):
        assert tok(text)["input_ids"] == merged_tok(text)["input_ids"], text
    for prompt in PROMPTS:
        ids = merged_tok.apply_chat_template([{"role": "user", "content": prompt}], chat_template=template,
                                             add_generation_prompt=True)
        assert tok.apply_chat_template([{"role": "user", "content": prompt}], chat_template=template,
                                       add_generation_prompt=True) == ids
