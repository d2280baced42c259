"""The studio's fast path (TRL's SFTTrainer, padding-free batches, chunked loss, no float32 upcast)
trains the same model as the plain recipe: the same per-step losses and the same adapter."""

from __future__ import annotations

import pytest
import torch

from studio.models import load as models_load
from test_training_job import make_cfg, prepared, run_job, write_data
from tiny import tiny_model, tiny_tokenizer


def _losses(job) -> list[float]:
    return [r["loss"] for r in job.metrics.rows("train")]


def _adapter(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


def test_padding_free_batches_train_exactly_like_padded_ones(tmp_path):
    padded = run_job(tmp_path, "padded", max_steps=5, batch_size=4, packing=False)
    free = run_job(tmp_path, "free", max_steps=5, batch_size=4, packing=True)
    assert padded.state == free.state == "done"
    assert padded.info["padding_free"] is False and free.info["padding_free"] is True
    assert len(_losses(free)) == 5
    assert _losses(free) == pytest.approx(_losses(padded), rel=1e-4)
    a, b = _adapter(padded.model), _adapter(free.model)
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    # ...and the adapter did move (a test of equality between two frozen runs would prove nothing).
    fresh = _adapter(run_job(tmp_path, "none", max_steps=1, batch_size=4, learning_rate=1e-9).model)
    assert any(not torch.allclose(fresh[k], b[k], atol=1e-4) for k in b)


@pytest.mark.skipif(torch.cuda.is_available() or not models_load._cpu_has_bf16(),
                    reason="bfloat16 training on a CPU needs one with native bfloat16")
def test_a_cpu_with_native_bf16_trains_in_bf16_and_learns(tmp_path):
    """The CPU path 'auto' takes on such a processor: bf16 weights, float32 adapters, the trainer's autocast."""
    from studio.config import merge
    from studio.training import TrainingJob

    tok = tiny_tokenizer()
    cfg = merge(make_cfg(write_data(tmp_path), max_steps=12, batch_size=4), {"model": {"compute_dtype": "auto"}})
    job = TrainingJob(cfg, tmp_path / "bf16", model=tiny_model(tok).to(torch.bfloat16), tokenizer=tok,
                      data=prepared(cfg, tok)).run_sync()
    assert job.state == "done" and job.info["precision"] == "bf16"
    adapters = {n: p for n, p in job.model.named_parameters() if "lora_" in n}
    assert adapters and all(p.dtype == torch.float32 for p in adapters.values())
    losses = _losses(job)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5, losses


def test_studio_losses_equal_the_plain_trainer_recipe(tmp_path):
    """A plain transformers Trainer with padded batches and peft LoRA, same rows, seed and settings."""
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments, set_seed

    tok = tiny_tokenizer()
    studio = run_job(tmp_path, "studio", max_steps=5, batch_size=4, tok=tok)

    cfg = make_cfg(write_data(tmp_path), max_steps=5, batch_size=4)
    data = prepared(cfg, tok)
    base = tiny_model(tok)
    set_seed(0)                              # as the job does: the seed right before the LoRA init
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                       target_modules="all-linear", task_type="CAUSAL_LM"))
    args = TrainingArguments(output_dir=str(tmp_path / "plain"), max_steps=5, per_device_train_batch_size=4,
                             learning_rate=0.01, lr_scheduler_type="constant", warmup_steps=0, logging_steps=1,
                             seed=0, data_seed=0, report_to="none", save_strategy="no", use_cpu=True,
                             remove_unused_columns=False, optim="adamw_torch", disable_tqdm=True)
    rows = Dataset.from_dict({"input_ids": [r.input_ids for r in data.train], "labels": [r.labels for r in data.train]})
    trainer = Trainer(model=model, args=args, train_dataset=rows,
                      data_collator=DataCollatorForSeq2Seq(tok, label_pad_token_id=-100, padding=True))
    trainer.train()
    plain = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(plain) == 5 and plain[0] > plain[-1]          # it learned
    assert _losses(studio) == pytest.approx(plain, rel=1e-4)


def test_training_switches_attention_back_for_chat(tmp_path):
    job = run_job(tmp_path, max_steps=2, batch_size=4)
    assert job.info["attention"] == "sdpa"            # a CPU has no variable-length kernel
    assert job.model.get_base_model().config._attn_implementation == "sdpa"


def test_attention_choice_falls_back_where_the_kernel_cannot_run():
    from studio.training.attention import resolve_attention
    assert resolve_attention("auto", on_cuda=False, padding_free=True) == "sdpa"
    assert resolve_attention("varlen", on_cuda=False, padding_free=True) == "sdpa"
    assert resolve_attention("flex_attention", on_cuda=False, padding_free=True) == "sdpa"
    assert resolve_attention("sdpa", on_cuda=True, padding_free=True) == "sdpa"
    # Padded batches carry a padding mask that the variable-length kernel does not take.
    assert resolve_attention("varlen", on_cuda=True, padding_free=False) == "sdpa"


def test_fused_kernels_need_a_gpu_and_say_so_when_missing():
    from studio.config import StudioConfig
    from studio.training.methods import sft

    cfg = StudioConfig()
    cpu = sft.training_args(cfg, "/tmp/x", on_cuda=False, dtype=torch.float32, has_validation=False)
    assert cpu.args.use_liger_kernel is False and not any("liger" in n for n in cpu.notes)
    assert cpu.args.padding_free is True and cpu.args.max_length is None


def test_a_cpu_with_native_bf16_trains_with_bf16_autocast_and_float32_otherwise():
    from studio.config import StudioConfig
    from studio.training.methods import sft

    bf16 = sft.training_args(StudioConfig(), "/tmp/x", on_cuda=False, dtype=torch.bfloat16, has_validation=False)
    assert bf16.precision == "bf16" and bf16.args.bf16 and bf16.args.use_cpu and not bf16.args.fp16
    f32 = sft.training_args(StudioConfig(), "/tmp/x", on_cuda=False, dtype=torch.float32, has_validation=False)
    assert f32.precision == "fp32" and not f32.args.bf16 and not f32.args.fp16


def test_auto_checkpointing_checkpoints_only_what_the_budget_needs():
    from studio.training.checkpointing import layers_to_checkpoint
    gb = 2**30
    # 32 layers; all checkpointed peaks at 10 GB; each un-checkpointed layer adds 1 GB.
    assert layers_to_checkpoint(32, 10 * gb, gb, 100 * gb) == 0          # room for every layer
    assert layers_to_checkpoint(32, 10 * gb, gb, 30 * gb) == 12          # 20 layers fit
    assert layers_to_checkpoint(32, 40 * gb, gb, 30 * gb) == 32          # not even all checkpointed fits
    # More room never means more checkpointing, more per-layer cost never less.
    counts = [layers_to_checkpoint(32, 10 * gb, gb, room * gb) for room in range(5, 60)]
    assert counts == sorted(counts, reverse=True)
    assert layers_to_checkpoint(32, 10 * gb, 2 * gb, 30 * gb) >= layers_to_checkpoint(32, 10 * gb, gb, 30 * gb)


@pytest.mark.parametrize("setting, expected", [("auto", 0), ("on", 2), ("off", 0)])
def test_checkpointing_setting_reaches_the_layers(tmp_path, setting, expected):
    """'on' checkpoints every layer; 'auto' on a CPU (plenty of memory) and 'off' none."""
    from studio.training.checkpointing import decoder_layers

    job = run_job(tmp_path, max_steps=1, batch_size=4, gradient_checkpointing=setting)
    assert job.state == "done", job.message
    layers = decoder_layers(job.model)
    assert len(layers) == 2
    assert sum(bool(layer.gradient_checkpointing) for layer in layers) == expected
    assert job.info["checkpointed_layers"] == ("all" if setting == "on" else 0)


def test_true_and_false_from_older_configs_mean_on_and_off():
    from studio.config import StudioConfig
    yes = StudioConfig.from_yaml("training:\n  gradient_checkpointing: true\n")
    no = StudioConfig.from_yaml("training:\n  gradient_checkpointing: off\n")
    assert (yes.training.gradient_checkpointing, no.training.gradient_checkpointing) == ("on", "off")
    assert StudioConfig().training.gradient_checkpointing == "auto"


def test_qlora_job_trains_with_a_frozen_4bit_base(tmp_path):
    """The 4-bit path through TRL without peft's kbit preparation (bitsandbytes runs on a CPU too):
    the loss falls and the base stays 4-bit and frozen."""
    pytest.importorskip("bitsandbytes")
    from studio.config import merge
    from studio.training import TrainingJob
    from tiny import tiny_model_dir

    tok = tiny_tokenizer()
    cfg = merge(make_cfg(write_data(tmp_path), max_steps=3, batch_size=4),
                {"model": {"source": str(tiny_model_dir(tmp_path / "m")), "quantization": "4bit-nf4"}})
    job = TrainingJob(cfg, tmp_path / "run", tokenizer=tok, data=prepared(cfg, tok))
    job.run_sync()
    assert job.state == "done", job.message
    losses = [r["loss"] for r in job.metrics.rows("train")]
    assert len(losses) == 3 and losses[-1] < losses[0]
    frozen = {n: p for n, p in job.model.named_parameters() if not p.requires_grad}
    assert any(type(p).__name__ == "Params4bit" for p in frozen.values())
    assert all("lora_" in n for n, p in job.model.named_parameters() if p.requires_grad)


def test_soft_capped_attention_never_gets_the_varlen_kernel(monkeypatch):
    """Gemma 2/3 cap their attention logits, which PyTorch's varlen kernel cannot do: SDPA there."""
    from transformers import Gemma2Config, LlamaConfig

    from studio.training import attention
    monkeypatch.setattr(attention, "varlen_available", lambda: True)
    monkeypatch.setattr(attention, "register", lambda: None)
    assert attention.resolve_attention("auto", True, True, LlamaConfig()) == attention.VARLEN
    assert attention.resolve_attention("auto", True, True, Gemma2Config()) == "sdpa"


def test_float32_training_on_a_gpu_never_gets_the_16_bit_only_varlen_kernel(monkeypatch):
    """FlashAttention takes fp16/bf16 inputs only: compute_dtype float32 with packing on a GPU failed in the
    first attention call (seen running the tiny-model job tests on an H100). SDPA there, asked for or not."""
    from transformers import LlamaConfig

    from studio.training import attention
    monkeypatch.setattr(attention, "varlen_available", lambda: True)
    monkeypatch.setattr(attention, "register", lambda: None)
    for choice in ("auto", "varlen"):
        assert attention.resolve_attention(choice, True, True, LlamaConfig(), torch.float32) == "sdpa"
        assert attention.resolve_attention(choice, True, True, LlamaConfig(), torch.bfloat16) == attention.VARLEN
        assert attention.resolve_attention(choice, True, True, LlamaConfig(), torch.float16) == attention.VARLEN


def test_a_model_that_refuses_an_attention_kernel_keeps_sdpa():
    from studio.training.attention import set_attention
    model = tiny_model(tiny_tokenizer())
    assert set_attention(model, "no-such-kernel") == "sdpa"
    assert model.config._attn_implementation == "sdpa"


def test_auto_checkpointing_measures_the_longest_rows():
    from types import SimpleNamespace

    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from studio.training.methods.sft import worst_batch
    rows = [SimpleNamespace(input_ids=[5] * n, labels=[5] * n) for n in (3, 40, 7, 25, 1)]
    batch, tokens = worst_batch(rows, 2, DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True))
    assert tokens == 40 + 25 and batch["input_ids"].shape == (1, 65)
    batch, tokens = worst_batch(rows, 2, DataCollatorForLanguageModeling(pad_token_id=0))
    assert tokens == 2 * 40                       # padded: both rows at the longest length
