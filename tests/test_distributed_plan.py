"""How a run is spread over GPUs: the plan, its refusals in plain words, the per-GPU estimate, and how
a failed process tree is read back (torch's Root Cause summary, the workers' error lines)."""

from __future__ import annotations

import pytest

from studio.config import StudioConfig
from studio.errors import ConfigError


def cfg(**training) -> StudioConfig:
    model = training.pop("model", {})
    return StudioConfig.from_dict({"model": model, "training": training})


def test_one_gpu_runs_in_the_app_thread_unless_isolated():
    from studio.training.distributed import plan
    assert plan(cfg(), found=1).subprocess is False
    assert plan(cfg(isolate=True), found=1).subprocess is True
    assert plan(cfg(), found=0).processes == 1          # a CPU-only machine trains in one process


def test_more_gpus_than_found_is_refused_with_what_to_set():
    from studio.training.distributed import plan
    with pytest.raises(ConfigError, match=r"asks for 2 GPUs \(training.gpus\), but this computer has 1") as err:
        plan(cfg(gpus=2), found=1)
    assert "Set training.gpus to 1 or fewer" in err.value.hint
    assert "1 块" in err.value.render("zh")[0] and "training.gpus" in err.value.render("zh")[1]
    with pytest.raises(ConfigError, match="no NVIDIA GPU was found") as err:
        plan(cfg(gpus=4), found=0)
    assert "training.gpus to 1" in err.value.hint


def test_all_gpus_and_strategies():
    from studio.training.distributed import plan, with_strategy
    p = plan(cfg(gpus="all", strategy="ddp"), found=4)
    assert (p.processes, p.strategy, p.subprocess) == (4, "ddp", True)
    resolved = with_strategy(cfg(gpus=0), p)
    assert resolved.training.gpus == 4 and resolved.training.strategy == "ddp"
    assert plan(cfg(gpus=2), found=2).strategy == "ddp"        # auto without a known size


def test_fsdp_refusals_say_what_to_choose():
    from studio.training.distributed import check_strategy
    with pytest.raises(ConfigError, match="FSDP cannot split 8-bit weights") as err:
        cfg(gpus=2, strategy="fsdp", model={"quantization": "8bit"}).validate()
    assert "'4bit-nf4'" in err.value.hint
    with pytest.raises(ConfigError, match="NVIDIA GPUs; none was found"):
        check_strategy("fsdp", on_gpu=False)


def test_auto_picks_fsdp_only_when_one_card_is_too_small():
    from studio.training.distributed import plan
    facts = {"num_params": 8_030_000_000, "hidden_size": 4096, "num_layers": 32, "vocab_size": 128256,
             "intermediate_size": 14336, "tied_embeddings": False}
    qlora = {"model": {"quantization": "4bit-nf4"}}
    assert plan(cfg(gpus=2, **qlora), found=2, facts=facts, card_gb=80).strategy == "ddp"
    small = plan(cfg(gpus=2, **qlora), found=2, facts=facts, card_gb=6)
    assert small.strategy == "fsdp" and "does not fit" in small.notes[0]


def test_fsdp_estimate_splits_the_frozen_weights():
    from studio.training.distributed import estimate_per_gpu, global_batch
    facts = {"num_params": 8_030_000_000, "hidden_size": 4096, "num_layers": 32, "vocab_size": 128256,
             "intermediate_size": 14336, "tied_embeddings": False}
    c = cfg(batch_size=2, grad_accum=4, model={"quantization": "4bit-nf4"})
    dev = {"device": "cuda", "free_gb": 24}
    one = estimate_per_gpu(c, facts, dev, 1, "single")
    ddp = estimate_per_gpu(c, facts, dev, 2, "ddp")
    fsdp = estimate_per_gpu(c, facts, dev, 2, "fsdp")
    assert ddp["total_gb"] == one["total_gb"]
    # The decoder layers are split two ways; the 16-bit embedding and head (2 x 128256 x 4096 x 2 bytes)
    # stay whole on each GPU, as FSDP keeps them in its root unit.
    head_and_embedding = 2 * 128256 * 4096 * 2 / 1e9
    layers = one["parts"]["weights"] - head_and_embedding
    assert fsdp["parts"]["weights"] == pytest.approx(layers / 2 + head_and_embedding, abs=0.002)
    assert fsdp["total_gb"] < one["total_gb"] - layers / 2 + 1
    assert global_batch(c, 2) == 16


def test_worker_side_settings_follow_the_strategy(monkeypatch):
    from studio.training import distributed as d
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv(d.STRATEGY_ENV, "ddp")
    assert d.model_placement(True) == {"": 1} and d.quantization_storage("bf16") == {}
    assert d.trainer_kwargs(True) == {"ddp_find_unused_parameters": False}
    monkeypatch.setenv(d.STRATEGY_ENV, "fsdp")
    assert d.model_placement(True) is None and d.quantization_storage("bf16") == {"bnb_4bit_quant_storage": "bf16"}
    kw = d.trainer_kwargs(True)
    assert kw["fsdp_config"]["state_dict_type"] == "FULL_STATE_DICT" and kw["fsdp_config"]["version"] == 1
    changed, notes = d.adjust_for_processes(cfg(optimizer="paged_adamw_8bit"))
    assert changed.training.optimizer == "adamw_torch" and changed.training.gradient_checkpointing == "on"
    assert len(notes) == 2
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert d.trainer_kwargs(True) == {} and d.strategy() == "single"


SUMMARY = """
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
studio.training.worker FAILED
------------------------------------------------------------
Failures:
[1]:
  time      : 2026-01-01_10:00:01
  rank      : 0 (local_rank: 0)
  exitcode  : 1 (pid: 101)
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-01-01_10:00:00
  host      : box
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 102)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 102
============================================================
"""


def test_failure_readers():
    from studio.training.process_failures import _last_exception, _rank_errors, _root_cause
    assert _root_cause(SUMMARY) == (1, -9)
    log = ("STUDIO-RANK-ERROR rank=1 of 2: RuntimeError: CUDA error: an illegal memory access\n"
           "STUDIO-RANK-ERROR rank=0 of 2: DistBackendError: connection closed\n")
    assert _rank_errors(log) == {1: "RuntimeError: CUDA error: an illegal memory access",
                                 0: "DistBackendError: connection closed"}
    assert _last_exception("Traceback...\n  File x\nValueError: bad row 3\n") == "ValueError: bad row 3"


def test_a_failed_process_tree_is_explained_in_every_language():
    from studio.errors import DataError
    from studio.training.failures import explain
    from studio.training.process_failures import explain_exit

    killed = explain_exit(SUMMARY, 2, 1, {}, "/runs/r/train.log")
    assert killed.code == "training.process_killed"
    assert "Training process 2 of 2 (rank 1) was killed by SIGKILL" in killed.message
    zh, zh_hint = killed.render("zh")
    assert "第 2 个训练进程" in zh and "SIGKILL" in zh and "/runs/r/train.log" in zh_hint

    oom = explain_exit("STUDIO-RANK-ERROR rank=0 of 2: OutOfMemoryError: CUDA out of memory.\n", 2, 1, {}, "log")
    assert oom.code == "training.rank_oom" and "batch_size" in oom.hint and "显存不足" in oom.render("zh")[1]

    # Rank 0's own job explained it (here: bad data); the app's side says the same, in Chinese too.
    own = explain(DataError("{name} has no usable rows.", code="data.no_rows", name="faq.jsonl"))
    written = {"state": "failed", "message": own.message, "failure": own.to_dict()}
    again = explain_exit("", 1, 1, written, "log")
    assert (again.code, again.message, again.render("zh")) == (own.code, own.message, own.render("zh"))


def test_the_settings_show_the_gpus_the_global_batch_and_the_estimate_per_gpu(monkeypatch):
    from studio.ui import views
    from studio.ui.services import Services
    two = [{"index": i, "name": "NVIDIA RTX 4090", "total_gb": 24.0, "free_gb": 23.0} for i in range(2)]
    assert "2 × NVIDIA RTX 4090 (24 GB)" in views.gpus_found(two, "en")
    assert "none" in views.gpus_found([], "en")
    c = cfg(gpus=2, batch_size=4, grad_accum=2, strategy="fsdp", model={"quantization": "4bit-nf4"})
    assert "4 per GPU × 2 accumulation × 2 GPU(s) = **16**" in views.global_batch(c, 2, "en")
    svc = Services()
    monkeypatch.setattr(svc, "gpus", lambda: two)
    monkeypatch.setattr(svc, "facts", lambda model_cfg: {
        "num_params": 8_030_000_000, "hidden_size": 4096, "num_layers": 32, "vocab_size": 128256,
        "intermediate_size": 14336, "tied_embeddings": False})
    fsdp, one = svc.memory(c), svc.memory(cfg(gpus=1, batch_size=4, grad_accum=2, model={"quantization": "4bit-nf4"}))
    assert fsdp["gpus"] == 2 and fsdp["total_gb"] < one["total_gb"]
    assert "Memory estimate per GPU (2 GPUs, FSDP)" in views.memory(fsdp, "en")
    # Every GPU loads the whole 4-bit model before FSDP splits it: said, in both languages.
    assert f"whole 4-bit model (about {fsdp['whole_model_at_load_gb']:.1f} GB)" in views.memory(fsdp, "en")
    assert "完整的 4 位模型" in views.memory(fsdp, "zh") and "whole 4-bit" not in views.memory(one, "en")


def test_a_single_process_trains_on_one_gpu_when_the_machine_has_several(tmp_path):
    """On a workstation with two GPUs the trainer counts both and wraps the model in nn.DataParallel,
    which TRL refuses: every single-GPU run (the app's thread, an isolated run) failed before its first
    step. ``one_gpu_per_process`` keeps such a process on one GPU."""
    from trl import SFTConfig, SFTTrainer
    from datasets import Dataset

    from studio.training.args import one_gpu_per_process
    from tests.tiny import tiny_model, tiny_tokenizer

    tok = tiny_tokenizer()
    model = tiny_model(tok)
    rows = Dataset.from_dict({"input_ids": [[1, 2, 3, 4]], "labels": [[1, 2, 3, 4]]})

    def trainer(fix: bool):
        args = SFTConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", max_length=None)
        args._n_gpu = 2                      # what TrainingArguments counts on a two-GPU machine
        if fix:
            one_gpu_per_process(args)
        return SFTTrainer(model=model, args=args, train_dataset=rows, processing_class=tok)

    with pytest.raises(ValueError, match="DataParallel"):
        trainer(fix=False)
    assert trainer(fix=True).args.n_gpu == 1


def test_fsdp_estimate_is_never_below_the_whole_4bit_model_every_gpu_loads_first():
    from studio.training.distributed import estimate_per_gpu
    # A 13B shape: split two ways its training needs less than loading the whole 4-bit model, which every
    # GPU does before FSDP splits it (measured: 7.4 GB allocated on each GPU, the whole 4-bit weights).
    facts = {"num_params": 13_000_000_000, "hidden_size": 5120, "num_layers": 40, "vocab_size": 49152,
             "intermediate_size": 13824, "tied_embeddings": False}
    dev = {"device": "cuda", "free_gb": 8}
    qlora = cfg(batch_size=1, model={"quantization": "4bit-nf4"})
    one = estimate_per_gpu(qlora, facts, dev, 1, "single")
    fsdp = estimate_per_gpu(qlora, facts, dev, 2, "fsdp")
    whole = one["parts"]["weights"] + one["parts"]["overhead"]
    assert sum(fsdp["parts"].values()) < whole
    assert fsdp["whole_model_at_load_gb"] == pytest.approx(whole, abs=0.01)
    assert fsdp["total_gb"] == fsdp["whole_model_at_load_gb"] and not fsdp["fits"]
    # 16-bit weights are read by rank 0 alone and arrive split: nothing whole is loaded on every GPU.
    full = estimate_per_gpu(cfg(batch_size=1), facts, {"device": "cuda", "free_gb": 80}, 2, "fsdp")
    assert "whole_model_at_load_gb" not in full and full["total_gb"] == pytest.approx(sum(full["parts"].values()), abs=0.02)


def test_fsdp_layer_units_wrap_each_decoder_layer_with_its_lora_weights(monkeypatch):
    import types

    import transformers.trainer as hf_trainer
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from studio.training import distributed as d
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv(d.STRATEGY_ENV, "fsdp")
    monkeypatch.setattr(hf_trainer, "update_fsdp_plugin_peft", hf_trainer.update_fsdp_plugin_peft)
    assert d.trainer_kwargs(True)["fsdp_config"]["use_orig_params"] is False   # PEFT's units by default
    monkeypatch.setenv(d.FSDP_UNITS_ENV, "layer")
    assert d.trainer_kwargs(True)["fsdp_config"]["use_orig_params"] is True

    model = get_peft_model(LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                                        num_attention_heads=4, num_key_value_heads=2, vocab_size=64)),
                           LoraConfig(r=4, target_modules="all-linear"))
    accelerator = types.SimpleNamespace(state=types.SimpleNamespace(fsdp_plugin=types.SimpleNamespace()))
    d.wrap_whole_layers()                                        # what the worker does with "layer"
    hf_trainer.update_fsdp_plugin_peft(model, accelerator)      # what the Trainer calls before wrapping
    policy = accelerator.state.fsdp_plugin.auto_wrap_policy
    wrapped = {name for name, m in model.named_modules() if policy(module=m, recurse=False, nonwrapped_numel=0)}
    assert wrapped == {n for n, m in model.named_modules() if type(m).__name__ == "LlamaDecoderLayer"}
    assert len(wrapped) == 2          # PEFT's own policy would also wrap each of the 2 x 7 x 2 LoRA layers
