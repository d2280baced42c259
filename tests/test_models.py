"""Model loading on tiny models: tokenizer padding, dtype, quantized loading, LoRA, counts, estimate, summary."""

import shutil
from pathlib import Path

import pytest
import torch

from studio import models
from studio.models import load
from studio.config import DataConfig, LoraConfig, ModelConfig, TrainingConfig
from studio.errors import ConfigError, ModelError

LLAMA_LINEAR = ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU choices")


@pytest.fixture()
def tiny_model():
    from tiny import tiny_model
    return tiny_model()


def _lora_size(model, names, r):
    """r x (in + out) summed over the linear layers called ``names``: what LoRA should add."""
    return sum(r * (m.in_features + m.out_features) for n, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and n.split(".")[-1] in names)


def test_linear_names_exclude_the_head(tiny_model):
    assert models.linear_module_names(tiny_model) == LLAMA_LINEAR


def test_parameter_counts_follow_requires_grad(tiny_model):
    total = sum(p.numel() for p in tiny_model.parameters())
    assert models.parameter_counts(tiny_model) == {"total": total, "trainable": total}
    tiny_model.lm_head.weight.requires_grad_(False)
    assert models.parameter_counts(tiny_model)["trainable"] == total - tiny_model.lm_head.weight.numel()


@pytest.mark.parametrize("targets", ["all-linear", ["q_proj", "v_proj"]])
def test_apply_lora_trains_only_the_adapters(tiny_model, targets):
    total = models.parameter_counts(tiny_model)["total"]
    names = LLAMA_LINEAR if targets == "all-linear" else targets
    expected = _lora_size(tiny_model, names, r=4)
    peft_model = models.apply_lora(tiny_model, LoraConfig(r=4, alpha=8, target_modules=targets))
    counts = models.parameter_counts(peft_model)
    assert counts == {"total": total + expected, "trainable": expected}
    assert models.linear_module_names(peft_model) == LLAMA_LINEAR   # the adapters' own layers are not listed


def test_bad_target_modules_name_what_exists(tiny_model):
    with pytest.raises(ConfigError) as err:
        models.apply_lora(tiny_model, LoraConfig(target_modules=["q_proj", "query_key_value"]))
    assert err.value.message == ("These target modules are not in this model: query_key_value. "
                              f"The model has: {', '.join(LLAMA_LINEAR)}.")


def test_frozen_base_keeps_its_16_bit_dtype(tiny_dir):
    """No float32 copies of norms, embedding or head (the articles' kbit preparation makes them)."""
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.bfloat16)
    peft_model = models.apply_lora(model, LoraConfig(r=4), gradient_checkpointing=True)
    frozen = [(n, p.dtype) for n, p in peft_model.named_parameters() if not p.requires_grad]
    assert frozen and all(d == torch.bfloat16 for _, d in frozen), [x for x in frozen if x[1] != torch.bfloat16]
    assert all("lora_" in n for n, p in peft_model.named_parameters() if p.requires_grad)


def test_gradient_checkpointing_still_trains_the_adapters(tiny_model):
    peft_model = models.apply_lora(tiny_model, LoraConfig(r=4), gradient_checkpointing=True)
    base = peft_model.get_base_model()
    assert getattr(base, "is_activation_checkpointing", None) or base.is_gradient_checkpointing
    assert peft_model.get_base_model().config.use_cache is False
    _train_step_changes_adapters(peft_model)


def _train_step_changes_adapters(peft_model):
    peft_model.train()
    before = {n: p.detach().clone() for n, p in peft_model.named_parameters() if p.requires_grad}
    assert before and all("lora_" in n for n in before)
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    x = torch.randint(3, 300, (2, 12), device=peft_model.device)
    loss = peft_model(input_ids=x, labels=x).loss
    loss.backward()
    opt.step()
    after = dict(peft_model.named_parameters())
    # lora_B starts at zero, so after one step every B matrix must have moved
    moved_b = [n for n in before if "lora_B" in n and not torch.equal(before[n], after[n])]
    assert moved_b and len(moved_b) == len([n for n in before if "lora_B" in n])
    assert torch.isfinite(loss)


def test_load_tokenizer_sets_a_pad_token_without_new_tokens(tmp_path, tiny_dir):
    for f in Path(tiny_dir).iterdir():
        shutil.copy(f, tmp_path / f.name)
    tok = models.load_tokenizer(ModelConfig(source=str(tmp_path)))
    n = len(tok)
    tok.pad_token = None
    tok.save_pretrained(tmp_path)
    again = models.load_tokenizer(ModelConfig(source=str(tmp_path)))
    assert again.pad_token == again.eos_token and len(again) == n


@no_gpu
def test_dtype_on_a_cpu_without_native_bf16_is_float32_with_a_note(monkeypatch):
    monkeypatch.setattr(load, "_cpu_has_bf16", lambda: False)
    assert models.resolve_dtype(ModelConfig(compute_dtype="auto")) == torch.float32
    dtype, note = models.dtype_and_note(ModelConfig(compute_dtype="bfloat16"))
    assert dtype == torch.float32 and "processor" in note
    assert models.dtype_and_note(ModelConfig(compute_dtype="float32")) == (torch.float32, "")
    assert models.device_info()["bf16"] is False


@no_gpu
def test_dtype_on_a_cpu_with_native_bf16_is_bfloat16_unless_float32_is_asked(monkeypatch):
    monkeypatch.setattr(load, "_cpu_has_bf16", lambda: True)
    assert models.dtype_and_note(ModelConfig(compute_dtype="auto")) == (torch.bfloat16, "")
    assert models.dtype_and_note(ModelConfig(compute_dtype="bfloat16")) == (torch.bfloat16, "")
    assert models.dtype_and_note(ModelConfig(compute_dtype="float32")) == (torch.float32, "")
    dtype, note = models.dtype_and_note(ModelConfig(compute_dtype="float16"))
    assert dtype == torch.float32 and "float16" in note
    assert models.device_info()["bf16"] is True


def test_the_bf16_probe_answers_a_bool_on_this_machine():
    assert models._cpu_has_bf16() in (True, False)


@no_gpu
def test_device_info_on_cpu():
    info = models.device_info()
    assert info["device"] == "cpu" and info["bf16"] is models._cpu_has_bf16() and "slow" in info["note"]
    assert 0 < info["free_gb"] <= info["total_gb"]


def test_load_model_plain(tiny_dir):
    model = models.load_model(ModelConfig(source=str(tiny_dir)), for_training=False)
    assert not model.training and models.quantization_of(model) == "none"
    assert model.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("quant", ["4bit-nf4", "8bit"])
def test_quantized_lora_trains_on_this_device(tiny_dir, quant):
    """bitsandbytes 0.50 runs 4-bit and 8-bit layers on a CPU too: load, wrap, one step."""
    pytest.importorskip("bitsandbytes")
    plain_total = models.parameter_counts(models.load_model(ModelConfig(source=str(tiny_dir))))["total"]
    model = models.load_model(ModelConfig(source=str(tiny_dir), quantization=quant))
    assert models.quantization_of(model) == quant
    assert models.linear_module_names(model) == LLAMA_LINEAR
    assert models.parameter_counts(model)["total"] == plain_total     # packed 4-bit weights counted in full
    peft_model = models.apply_lora(model, LoraConfig(r=4), gradient_checkpointing=True)
    summary = models.model_summary(peft_model, models.load_tokenizer(ModelConfig(source=str(tiny_dir))))
    assert summary["quantization"] == quant and 0 < summary["trainable_params"] < summary["params"]
    _train_step_changes_adapters(peft_model)


def test_load_errors_become_plain_messages(tiny_dir, monkeypatch):
    from transformers import AutoModelForCausalLM

    def oom(*a, **k):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", oom)
    with pytest.raises(ModelError, match="Not enough memory") as e:
        models.load_model(ModelConfig(source=str(tiny_dir)))
    assert "4bit-nf4" in e.value.hint

    def remote(*a, **k):
        raise ValueError("The repository contains custom code which must be executed. Pass trust_remote_code=True")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", remote)
    with pytest.raises(ModelError, match="model.trust_remote_code"):     # the setting, not a widget
        models.load_model(ModelConfig(source=str(tiny_dir)))


def test_model_summary(tiny_dir, tmp_path):
    from tiny import tiny_model_dir

    cfg = ModelConfig(source=str(tiny_dir))
    s = models.model_summary(models.load_model(cfg), models.load_tokenizer(cfg))
    assert s["architecture"] == "LlamaForCausalLM" and s["context_length"] == 512
    assert s["template"] == "model" and s["has_chat_template"] and s["linear_modules"] == LLAMA_LINEAR
    bare = ModelConfig(source=str(tiny_model_dir(tmp_path / "bare", with_template=False)))
    s2 = models.model_summary(models.load_model(bare), models.load_tokenizer(bare))
    assert s2["template"] == "chatml fallback" and not s2["has_chat_template"]


def _estimate(quantization="none", checkpointing="off", free_gb=1000.0, **training):
    dev = {"device": "cuda", "free_gb": free_gb}
    return models.estimate_memory(7_000_000_000, ModelConfig(quantization=quantization), LoraConfig(r=16),
                                  TrainingConfig(gradient_checkpointing=checkpointing, **training),
                                  DataConfig(max_length=1024), hidden_size=4096, num_layers=32,
                                  vocab_size=32000, intermediate_size=11008, device=dev)


def test_memory_estimate_moves_the_right_way():
    plain, nf4, int8 = _estimate(), _estimate("4bit-nf4"), _estimate("8bit")
    assert nf4["parts"]["weights"] < int8["parts"]["weights"] < plain["parts"]["weights"]
    assert 13 < plain["parts"]["weights"] < 15          # 7B x 2 bytes
    assert 3.5 < nf4["parts"]["weights"] < 5            # about 4.1 bits per weight + 16-bit embedding and head
    assert _estimate(checkpointing="on")["parts"]["activations"] < plain["parts"]["activations"] / 5
    assert _estimate(batch_size=8)["parts"]["activations"] == pytest.approx(2 * plain["parts"]["activations"], rel=1e-3)
    assert plain["total_gb"] == pytest.approx(sum(plain["parts"].values()), abs=0.02)
    assert plain["fits"] and not _estimate(free_gb=8.0)["fits"]
    assert _estimate(optimizer="paged_adamw_8bit")["parts"]["adapters_and_optimizer"] < \
        plain["parts"]["adapters_and_optimizer"]


def test_every_name_studio_models_offers_is_its_homes_own():
    """``studio.models.NAME`` (loaded on first use) is the object of the module that owns it."""
    import importlib
    for name in models.__all__:
        home = importlib.import_module(f"studio.models.{models._HOME_OF[name]}")
        assert getattr(models, name) is getattr(home, name), name
