"""The PEFT family beyond LoRA (lora.adapter, lora.init): each adapter trains, saves, reloads through the
run folder and chats with its base switched off; the weight adapters merge and export, the prompt-based
ones are refused with the reason; impossible combinations are refused in words; the size estimate
matches peft's own count."""

from __future__ import annotations

import warnings

import pytest
import torch

from studio.config import GenerationConfig
from studio.errors import ConfigError, ExportError
from test_training_job import PAIRS, make_cfg, write_data
from tiny import tiny_model, tiny_tokenizer

GEN = GenerationConfig(max_new_tokens=8, temperature=0.0, repetition_penalty=1.0)
# adapter name -> lora settings (PiSSA and OLoRA are LoRA with another start)
KINDS = {"loha": {"adapter": "loha"}, "lokr": {"adapter": "lokr"}, "ia3": {"adapter": "ia3"},
         "prefix": {"adapter": "prefix"}, "prompt": {"adapter": "prompt"},
         "llama-adapter": {"adapter": "llama-adapter"},
         "pissa": {"init": "pissa"}, "olora": {"init": "olora"}}
MERGEABLE = ("loha", "lokr", "ia3", "pissa", "olora")
PROMPT_BASED = ("prefix", "prompt", "llama-adapter")
QUESTION = "What is the warranty?"


def _cfg(data, tiny_dir, kind, steps=8):
    cfg = make_cfg(data, max_steps=steps, learning_rate=0.02)
    cfg.model.source = str(tiny_dir)
    cfg.lora.r, cfg.lora.alpha, cfg.lora.virtual_tokens = 4, 8, 4
    for k, v in KINDS[kind].items():
        setattr(cfg.lora, k, v)
    return cfg


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_dir):
    """One short run of each adapter, the job kept (its model stays loaded for chat)."""
    from studio.training import TrainingJob

    tmp = tmp_path_factory.mktemp("peft_family")
    data = write_data(tmp, n=8, pairs=PAIRS[:2])
    out = {}
    for kind in KINDS:
        job = TrainingJob(_cfg(data, tiny_dir, kind), tmp / f"run-{kind}")   # (an evaluation row has a key "prompt")
        job.run_sync()
        assert job.state == "done", (kind, job.message)
        out[kind] = job
    return out


def _last_logits(model, tok, use_adapter=True):
    ids = tok(QUESTION, return_tensors="pt").input_ids
    with torch.no_grad():
        if use_adapter:
            return model(input_ids=ids).logits[:, -1]     # prompt tuning adds its tokens before: the last is ours
        with model.disable_adapter():
            return model(input_ids=ids).logits[:, -1]


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_adapter_trains_and_its_weights_change(runs, kind, tiny_dir):
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file

    from studio.models.lora import apply_lora

    job = runs[kind]
    losses = [r["loss"] for r in job.metrics.rows("train")]
    assert sum(losses[-2:]) < sum(losses[:2]), losses
    saved = load_file(str(job.run_dir / "adapter" / "adapter_model.safetensors"))
    if kind in ("pissa", "olora"):
        # Saved converted: [A | A0] and [B | -B0], a LoRA of twice the rank; BA - B0A0 is what training changed.
        import json
        conf = json.loads((job.run_dir / "adapter" / "adapter_config.json").read_text())
        assert conf["r"] == 8 and conf["init_lora_weights"] is True
        a = next(k for k in saved if "lora_A" in k)
        delta = saved[a.replace("lora_A", "lora_B")] @ saved[a]
        assert delta.abs().max() > 1e-4
        return
    torch.manual_seed(0)
    from transformers import set_seed
    set_seed(job.cfg.training.seed)
    fresh = get_peft_model_state_dict(apply_lora(tiny_model(tiny_tokenizer()), job.cfg.lora))
    assert set(fresh) == set(saved)
    changed = [k for k in saved if not torch.allclose(saved[k], fresh[k])]
    assert changed, "no adapter weight moved"


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_adapter_reloads_from_its_folder_and_chats_with_the_base_switched_off(runs, kind, tiny_dir):
    from transformers import AutoModelForCausalLM

    from studio.device import DeviceLock
    from studio.inference import ChatSession
    from studio.training.extend import load_adapter_weights

    job = runs[kind]
    chat = ChatSession.from_run(job.run_dir, generation=GEN, device_lock=DeviceLock())
    plain = AutoModelForCausalLM.from_pretrained(str(tiny_dir))
    reference = ChatSession(plain, chat.tokenizer, chat.chat_template, GEN, device_lock=DeviceLock())
    assert chat.reply([], QUESTION, use_adapter=False) == reference.reply([], QUESTION)
    tok = chat.tokenizer
    base_logits = _last_logits(plain, tok)
    assert torch.allclose(_last_logits(chat.model, tok, use_adapter=False), base_logits, atol=1e-5)
    tuned = _last_logits(chat.model, tok)
    assert not torch.allclose(tuned, base_logits, atol=1e-4)
    # The model the job kept answers as the reloaded one, its base too (PiSSA's was restored to the original).
    assert torch.allclose(_last_logits(job.model, tok), tuned, atol=1e-4)
    assert torch.allclose(_last_logits(job.model, tok, use_adapter=False), base_logits, atol=1e-4)
    chat.reply([], QUESTION)                              # generation with the adapter works
    # extend's path: the saved weights copied into a fresh model of the (extension's) settings
    from studio.models.lora import apply_lora
    from studio.training.extend import plan_extend
    cfg, _ = plan_extend(job.run_dir, max_steps=1)
    fresh = apply_lora(tiny_model(tiny_tokenizer()), cfg.lora)
    load_adapter_weights(fresh, job.run_dir / "adapter")
    assert torch.allclose(_last_logits(fresh, tok), tuned, atol=1e-4)


@pytest.mark.parametrize("kind", PROMPT_BASED)
def test_prompt_based_adapters_train_on_padded_batches(runs, kind):
    info = runs[kind].info
    assert info["padding_free"] is False
    assert any("Packing is off" in n for n in info["notes"])


@pytest.mark.parametrize("kind", MERGEABLE)
def test_weight_adapters_merge_into_a_plain_model(runs, kind, tmp_path):
    from transformers import AutoModelForCausalLM

    from studio.export.run_export import export_run

    job = runs[kind]
    folder = export_run(job.run_dir, "merged", "float32", output=tmp_path / "merged", progress=lambda _: None)
    merged = AutoModelForCausalLM.from_pretrained(str(folder))
    tok = job.tokenizer
    assert torch.allclose(_last_logits(merged, tok), _last_logits(job.model, tok), atol=1e-4)


def test_a_loha_run_exports_to_gguf(runs, tmp_path):
    from studio.export.run_export import export_run

    path = export_run(runs["loha"].run_dir, "gguf", "f16", output=tmp_path / "x.gguf", progress=lambda _: None)
    assert path.is_file() and path.stat().st_size > 0


@pytest.mark.parametrize("kind", PROMPT_BASED)
def test_prompt_based_adapters_refuse_merging_and_say_what_works(runs, kind, tmp_path):
    from studio.export.run_export import export_run

    run_dir = runs[kind].run_dir
    for to in ("merged", "gguf"):
        with pytest.raises(ExportError) as e:
            export_run(run_dir, to, output=tmp_path / f"{to}-out", progress=lambda _: None)
        assert e.value.code == "export.not_mergeable"
        assert kind in e.value.message and "Chat" in e.value.message and "adapter" in e.value.message
        assert not (tmp_path / f"{to}-out").exists()
    assert export_run(run_dir, "adapter", output=tmp_path / "a.zip", progress=lambda _: None).is_file()


@pytest.mark.parametrize("changes, code, words", [
    ({"adapter": "loha", "use_dora": True}, "config.lora_only", "use_dora"),
    ({"adapter": "ia3", "use_rslora": True}, "config.lora_only", "use_rslora"),
    ({"adapter": "prompt", "init": "pissa"}, "config.lora_only", "init"),
    ({"init": "olora", "use_dora": True}, "config.init_dora", "DoRA"),
    ({"adapter": "lokr", "quantization": "4bit-nf4"}, "config.adapter_quantized", "lokr"),
    ({"init": "pissa", "quantization": "8bit"}, "config.init_quantized", "pissa"),
    ({"adapter": "llama-adapter", "quantization": "4bit-nf4"}, "config.adapter_quantized_mix", "llama-adapter"),
])
def test_combinations_peft_cannot_train_are_refused_by_name(changes, code, words, tmp_path):
    cfg = make_cfg(write_data(tmp_path))
    for k, v in changes.items():
        setattr(cfg.model if k == "quantization" else cfg.lora, k, v)
    with pytest.raises(ConfigError) as e:
        cfg.validate()
    assert e.value.code == code and words in e.value.message
    assert e.value.render("zh")[0] != e.value.message          # the catalogue has its words


def test_quantized_bases_keep_the_adapters_peft_supports_there(tmp_path):
    for adapter in ("lora", "ia3", "prefix", "prompt"):
        cfg = make_cfg(write_data(tmp_path))
        cfg.model.quantization, cfg.lora.adapter = "4bit-nf4", adapter
        cfg.validate()


def test_llama_adapter_is_refused_by_name_on_a_model_peft_cannot_fit_it_to():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from studio.models.lora import apply_lora

    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1))
    cfg = make_cfg("x.jsonl").lora
    cfg.adapter = "llama-adapter"
    with pytest.raises(ConfigError) as e:
        apply_lora(model, cfg)
    assert e.value.code == "config.adapter_unsupported" and "qwen2" in e.value.message


@pytest.mark.parametrize("kind", ["lora", *KINDS])
def test_the_estimate_counts_what_peft_trains(kind, tmp_path):
    from studio.models.adapter_size import adapter_params
    from studio.models.lora import apply_lora
    from studio.models.size import config_facts

    tok = tiny_tokenizer()
    model = tiny_model(tok)
    facts = config_facts(model.config.to_dict())
    cfg = make_cfg(write_data(tmp_path)).lora
    cfg.r, cfg.virtual_tokens = 4, 4
    for k, v in KINDS.get(kind, {}).items():
        setattr(cfg, k, v)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainable, _ = apply_lora(model, cfg).get_nb_trainable_parameters()
    estimate = adapter_params(cfg, facts["hidden_size"], facts["intermediate_size"], facts["num_layers"],
                              facts["kv_width"], facts["lora_in_out"], facts["linear_dims"])
    assert abs(estimate - trainable) <= 0.05 * trainable, (estimate, trainable)


def test_resume_compares_the_adapter_and_its_start(tmp_path):
    from studio.training.resume import relevant_settings, setting_differences

    before = make_cfg(write_data(tmp_path))
    now = make_cfg(write_data(tmp_path))
    now.lora.adapter, now.lora.init = "loha", "pissa"
    diffs = setting_differences(relevant_settings(before), relevant_settings(now))
    assert any(d.startswith("lora.adapter") for d in diffs) and any(d.startswith("lora.init") for d in diffs)


def test_prefix_tuning_refuses_gradient_checkpointing_on_and_trains_without_it_on_auto(tmp_path):
    cfg = make_cfg(write_data(tmp_path))
    cfg.lora.adapter, cfg.training.gradient_checkpointing = "prefix", "on"
    with pytest.raises(ConfigError) as e:
        cfg.validate()
    assert e.value.code == "config.prefix_checkpointing"
    cfg.training.gradient_checkpointing = "auto"
    cfg.validate()


def test_an_evaluation_of_runs_with_different_adapter_kinds_says_so(runs):
    from studio.device import DeviceLock
    from studio.errors import EvalError
    from studio.evaluation import evaluate

    with pytest.raises(EvalError) as e:
        list(evaluate([runs["loha"].run_dir, runs["ia3"].run_dir], [{"prompt": QUESTION}], device_lock=DeviceLock()))
    assert e.value.code == "eval.mixed_adapters" and "ia3, loha" in e.value.message


def test_an_evaluation_holds_two_runs_of_one_prompt_based_kind(runs, tmp_path, tiny_dir):
    from studio.device import DeviceLock
    from studio.evaluation import evaluate
    from studio.training import TrainingJob

    cfg = _cfg(write_data(tmp_path, n=8, pairs=PAIRS[2:4]), tiny_dir, "prompt", steps=2)
    job = TrainingJob(cfg, tmp_path / "prompt-2", keep_model=False)
    job.run_sync()
    assert job.state == "done", job.message
    rows = list(evaluate([runs["prompt"].run_dir, job.run_dir], [{"prompt": QUESTION}], device_lock=DeviceLock(),
                         max_new_tokens=4))
    row = next(r for r in rows if r.get("prompt") == QUESTION)
    plain = _plain_reply(tiny_dir, runs["prompt"].run_dir)
    assert row["base"] == plain                            # the base column: both adapters switched off
    assert {runs["prompt"].run_dir.name, job.run_dir.name} <= set(row)        # each run answered with its own virtual tokens


def _plain_reply(tiny_dir, run_dir):
    """The tiny base itself asked as the run asks (its template, system prompt, settings; 4 tokens)."""
    from transformers import AutoModelForCausalLM

    from studio.device import DeviceLock
    from studio.inference import ChatSession

    import dataclasses

    chat = ChatSession.from_run(run_dir, device_lock=DeviceLock())
    gen = dataclasses.replace(chat.generation, max_new_tokens=4)
    return ChatSession(AutoModelForCausalLM.from_pretrained(str(tiny_dir)), chat.tokenizer, chat.chat_template,
                       gen, device_lock=DeviceLock(), system_prompt=chat.system_prompt).reply([], QUESTION)


@pytest.mark.parametrize("kind", ["ia3", "prefix", "prompt"])
def test_the_adapters_peft_has_for_4bit_weights_train_on_a_quantized_base(kind, tmp_path, tiny_dir):
    pytest.importorskip("bitsandbytes")
    from studio.device import DeviceLock
    from studio.inference import ChatSession
    from studio.training import TrainingJob

    cfg = _cfg(write_data(tmp_path, n=8, pairs=PAIRS[:2]), tiny_dir, kind, steps=6)
    cfg.model.quantization = "4bit-nf4"
    job = TrainingJob(cfg, tmp_path / "run", keep_model=False)
    job.run_sync()
    assert job.state == "done", job.message
    losses = [r["loss"] for r in job.metrics.rows("train")]
    assert sum(losses[-2:]) < sum(losses[:2]), losses
    chat = ChatSession.from_run(job.run_dir, generation=GEN, device_lock=DeviceLock())
    assert not torch.allclose(_last_logits(chat.model, chat.tokenizer),
                              _last_logits(chat.model, chat.tokenizer, use_adapter=False), atol=1e-4)


def test_the_estimate_keeps_every_activation_for_prefix_tuning():
    from studio.config import StudioConfig
    from studio.models.size import config_facts, estimate_from_facts

    facts = config_facts(tiny_model(tiny_tokenizer()).config.to_dict())
    cfg = StudioConfig()
    cfg.training.gradient_checkpointing = "auto"
    gpu = {"device": "cuda", "free_gb": 80.0}
    lora = estimate_from_facts(cfg, facts, device=gpu)["parts"]["activations"]
    cfg.lora.adapter = "prefix"
    assert estimate_from_facts(cfg, facts, device=gpu)["parts"]["activations"] > lora


@pytest.mark.parametrize("first", ["prompt", "llama-adapter"])
def test_a_new_run_starts_from_the_clean_base_under_a_prompt_based_adapter(first, tmp_path, tiny_dir):
    from transformers import AutoModelForCausalLM

    from studio.training import TrainingJob

    data = write_data(tmp_path, n=8, pairs=PAIRS[:2])
    job = TrainingJob(_cfg(data, tiny_dir, first, steps=2), tmp_path / "first")
    job.run_sync()
    assert job.state == "done", job.message
    second = TrainingJob(_cfg(data, tiny_dir, "loha", steps=2), tmp_path / "second", model=job.model,
                         tokenizer=job.tokenizer)
    second.run_sync()
    assert second.state == "done", second.message
    names = {type(m).__name__ for m in second.model.modules()}
    assert "AdaptedAttention" not in names and "PromptEmbedding" not in names
    plain = AutoModelForCausalLM.from_pretrained(str(tiny_dir))
    assert torch.allclose(_last_logits(second.model, job.tokenizer, use_adapter=False),
                          _last_logits(plain, job.tokenizer), atol=1e-5)


def test_pissa_starts_the_same_twice_from_one_seed_so_a_resume_rebuilds_its_base():
    from transformers import set_seed

    from studio.models.lora import apply_lora

    cfg = make_cfg("x.jsonl").lora
    cfg.r, cfg.init = 4, "pissa"
    weights = []
    for _ in range(2):
        set_seed(0)
        model = apply_lora(tiny_model(tiny_tokenizer()), cfg)
        weights.append({k: v.clone() for k, v in model.state_dict().items()})
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_an_adapter_saved_from_files_is_converted_as_peft_converts_it(tmp_path):
    """FSDP's adapter comes from the trainer's checkpoint files: converted there as peft converts the model's."""
    import json

    from safetensors.torch import load_file
    from transformers import set_seed

    from studio.models.lora import apply_lora
    from studio.training.initial_adapter import convert_folder, save_converted, save_initial

    cfg = make_cfg("x.jsonl").lora
    cfg.r, cfg.init = 4, "olora"
    set_seed(0)
    model = apply_lora(tiny_model(tiny_tokenizer()), cfg)
    save_initial(model, tmp_path)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))       # "trained"
    save_converted(model, tmp_path / "by-peft", tmp_path)
    model.save_pretrained(str(tmp_path / "by-files"))     # what a checkpoint holds
    convert_folder(tmp_path / "by-files", tmp_path)
    ours, peft_own = (load_file(str(tmp_path / d / "adapter_model.safetensors")) for d in ("by-files", "by-peft"))
    assert set(ours) == set(peft_own) and all(torch.allclose(ours[k], peft_own[k]) for k in ours)
    conf = [json.loads((tmp_path / d / "adapter_config.json").read_text()) for d in ("by-files", "by-peft")]
    assert [(c["r"], c["lora_alpha"], c["init_lora_weights"]) for c in conf] == [(8, 2 * cfg.alpha, True)] * 2
