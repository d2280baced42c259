"""GRPO: the rewards score hand-written answers as a reader would, the settings are checked in words, and a run
on a tiny Llama generates, scores, logs each reward and moves the adapter, with the KL reference the base model
(the adapter switched off) and no copy of anything."""

from __future__ import annotations

import pytest
import torch
from transformers import TrainerCallback

from tiny import tiny_model, tiny_tokenizer

from studio.config import REWARDS, StudioConfig, merge
from studio.errors import ConfigError
from studio.training import rewards
from studio.training.methods import grpo

PAIRS = [("How much is the kettle?", "The Aurora kettle costs 79 dollars."),
         ("What is the warranty?", "Two years, and returns within 30 days.")]


def rows(tok, pairs=PAIRS):
    from studio.data.types import EncodedPrompt
    out = []
    for i, (q, a) in enumerate(pairs):
        msgs = [{"role": "user", "content": q}]
        text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        out.append(EncodedPrompt(row=i + 1, prompt_ids=tok(text, add_special_tokens=False)["input_ids"], prompt=text,
                                 messages=msgs, reference=a))
    return out


def prepared(tok, validation: int = 0):
    from studio.data.types import DataReport, PreparedData
    train = rows(tok)
    return PreparedData(train=train, validation=train[:validation], report=DataReport(source="test", format="messages", rows=2, total=2),
                        template_name="model", chat_template=tok.chat_template)


def cfg_with(**grpo_settings) -> StudioConfig:
    g = {"rewards": "facts", "generations": 2, "max_answer_tokens": 12}
    g.update(grpo_settings)
    return StudioConfig.from_dict({
        "model": {"source": "tiny", "compute_dtype": "float32"}, "data": {"validation": 0, "max_length": 128},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "training": {"method": "grpo", "max_steps": 2, "batch_size": 2, "learning_rate": 0.05, "scheduler": "constant",
                     "warmup_ratio": 0.0, "logging_steps": 1, "eval_steps": 0, "seed": 0},
        "grpo": g}).validate()


def score(name: str, answer: str, reference: str = "", question: str = "", **grpo_settings) -> float:
    fn = rewards.reward_functions(cfg_with(rewards=name, **grpo_settings).grpo)[0]
    assert fn.__name__ == name          # TRL logs it as rewards/<name>/mean
    return fn(prompts=["q"], completions=[answer], reference=[reference], question=[question])[0]


# ---- the rewards ------------------------------------------------------------------------------------------

def test_facts_rewards_the_facts_stated_and_punishes_a_contradiction():
    ref = "The Aurora Pro (AK-200) costs $129."
    right = score("facts", "The Aurora Pro, model AK-200, is $129.", ref)
    partial = score("facts", "The Aurora Pro is $129.", ref)
    wrong = score("facts", "The Aurora Pro (AK-200) costs $99.", ref)
    nothing = score("facts", "I do not know.", ref)
    assert right == 1.0 and right > partial > nothing >= 0 > score("facts", "It costs $99.", ref)
    assert wrong < partial
    # a fact the question already states is no sign of learning: the name need not be repeated
    assert score("facts", "It costs $129, code AK-200.", ref) < 1.0
    assert score("facts", "It costs $129, code AK-200.", ref, question="What does the Aurora Pro cost?") == 1.0


def test_facts_reads_chinese_and_falls_back_to_similarity_without_facts():
    assert score("facts", "保修期是2年。", "保修期为两年。") == 1.0
    assert score("facts", "保修期是3年。", "保修期为两年。") < 0
    close = score("facts", "please descale the kettle with vinegar", "please descale the kettle with vinegar")
    far = score("facts", "zzz qqq", "please descale the kettle with vinegar")
    assert 0 <= far < close <= 1


def test_facts_leaves_out_the_signature_every_reference_shares():
    g = cfg_with().grpo
    refs = [f"It costs {n} dollars. Aurora Support" for n in (79, 89, 99)]
    plain, = rewards.reward_functions(g)
    knowing, = rewards.reward_functions(g, refs)
    signed = dict(prompts=["q"], completions=["Aurora Support"], reference=[refs[0]], question=[""])
    assert plain(**signed)[0] > 0 and knowing(**signed)[0] == 0.0


def test_format_wants_the_last_line_to_match_the_pattern():
    assert score("format", "Let me think.\nAnswer: 42") == 1.0
    assert score("format", "Answer: 42\nThat is all.") == 0.0
    assert score("format", "") == 0.0
    assert score("format", "So...\n答案：四十二\n", format_pattern=r"答案：.+") == 1.0


def test_length_is_one_inside_the_range_and_falls_off_outside():
    words = lambda n: " ".join(["word"] * n)
    inside = [score("length", words(n), length_min_words=4, length_max_words=10) for n in (4, 7, 10)]
    assert inside == [1.0, 1.0, 1.0]
    below = [score("length", words(n), length_min_words=4, length_max_words=10) for n in (3, 2, 0)]
    above = [score("length", words(n), length_min_words=4, length_max_words=10) for n in (12, 16, 25)]
    assert below == sorted(below, reverse=True) and below[0] < 1 and below[-1] == 0
    assert above == sorted(above, reverse=True) and above[0] < 1 and above[-1] == 0
    assert score("length", "保修期两年", length_min_words=4, length_max_words=10) == 1.0    # 5 characters, 5 words


def test_similarity_is_chrf_to_the_reference():
    ref = "Returns within 30 days."
    assert score("similarity", ref, ref) == pytest.approx(1.0)
    assert 0 <= score("similarity", "Something else", ref) < score("similarity", "Returns in 30 days.", ref) < 1


# ---- the settings -----------------------------------------------------------------------------------------

def test_rewards_and_weights_are_checked_in_words():
    assert set(REWARDS) == {"facts", "format", "length", "similarity"}
    with pytest.raises(ConfigError, match="grpo.rewards"):
        cfg_with(rewards="facts, politeness")
    with pytest.raises(ConfigError, match="grpo.reward_weights has 1 numbers but grpo.rewards names 2"):
        cfg_with(rewards="facts, format", reward_weights="2")
    with pytest.raises(ConfigError, match="numbers separated by commas"):
        cfg_with(reward_weights="a lot")
    with pytest.raises(ConfigError, match="grpo.format_pattern"):
        cfg_with(format_pattern="Answer: (")
    with pytest.raises(ConfigError, match="grpo.length_min_words"):
        cfg_with(length_min_words=50, length_max_words=10)
    with pytest.raises(ConfigError, match="grpo.generations"):
        cfg_with(generations=1)       # GRPO compares a question's answers with each other


def test_a_yaml_list_of_rewards_reads_as_the_names_and_round_trips():
    cfg = cfg_with(rewards=["facts", "format"], reward_weights=[1, 0.5])
    assert cfg.grpo.reward_list() == ["facts", "format"] and rewards.reward_weights(cfg.grpo) == [1.0, 0.5]
    back = StudioConfig.from_yaml(cfg.to_yaml())
    assert back.grpo == cfg.grpo
    from studio.cli import build_parser
    from studio.commands.train import build_config
    args = build_parser().parse_args(["train", "--training.method", "grpo", "--grpo.rewards", "facts,length"])
    assert build_config(args).grpo.reward_list() == ["facts", "length"]


def test_the_batch_counts_questions_so_every_batch_holds_whole_groups(tmp_path):
    cfg = merge(cfg_with(generations=3), {"training": {"batch_size": 2, "grad_accum": 5}})
    resolved = grpo.training_args(cfg, str(tmp_path), False, torch.float32, False, 10)
    a = resolved.args
    assert a.per_device_train_batch_size == 6 and a.num_generations == 3
    assert a.generation_batch_size % a.num_generations == 0 and a.generation_batch_size == 30
    assert any("3 answers to each of 2 question(s)" in n for n in resolved.notes)
    assert a.max_completion_length == 12 and a.beta == 0.0
    assert grpo.step_tokens(cfg) == 2 * 3 * (128 + 12)


def test_the_time_note_says_the_rest_of_the_run():
    assert grpo.time_note(20.0, 3, 93) == "Training. One step takes about 20 s; the run needs about 30 min more (90 to go)."
    assert "2.0 h" in grpo.time_note(72.0, 0, 100)


# ---- training ---------------------------------------------------------------------------------------------

class Watch(TrainerCallback):
    """The adapter's B matrices when training begins (zero) and the adapters the model then has."""

    def on_train_begin(self, args, state, control, model=None, **kw):
        self.before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
        self.adapters = list(model.peft_config)
        self.params = sum(p.numel() for p in model.parameters())


def test_a_grpo_run_scores_each_reward_logs_it_and_moves_the_adapter(tmp_path):
    from studio.training import TrainingJob

    tok = tiny_tokenizer()
    watch = Watch()
    cfg = cfg_with(rewards="facts, format, length, similarity", reward_weights="1, 0.5, 0.5, 0.5", kl_beta=0.04,
                   length_min_words=1, length_max_words=4)
    model = tiny_model(tok)
    before = sum(p.numel() for p in model.parameters())
    job = TrainingJob(cfg, tmp_path / "run", model=model, tokenizer=tok, data=prepared(tok, validation=1),
                      callbacks=[watch])
    job.run_sync()
    assert job.state == "done", job.message
    rows = job.run.metrics()
    train = [r for r in rows if r.get("type") == "train"]
    assert len(train) == 2
    for key in ("reward", "reward_std", "completions/mean_length", "kl", *(f"rewards/{n}/mean" for n in REWARDS)):
        assert all(key in r for r in train), key
    assert all(-1.0 <= r["rewards/facts/mean"] <= 1.0 and 0 < r["completions/mean_length"] <= 12 for r in train)
    evals = [r for r in rows if r.get("type") == "eval"]     # the final evaluation answers the validation question
    assert evals and "eval_reward" in evals[-1] and "eval_rewards/facts/mean" in evals[-1]
    # the KL reference is the base model with the adapter off: one adapter, no second model or adapter copy
    assert watch.adapters == ["default"]
    lora = sum(p.numel() for n, p in job.model.named_parameters() if "lora_" in n)
    assert watch.params == before + lora
    after = {n: p.detach() for n, p in job.model.named_parameters() if "lora_B" in n}
    assert any(not torch.equal(watch.before[n], after[n]) for n in after), "the adapter did not move"
    assert not (job.run.adapter_dir / "ref").exists()


class StatusAtLog(TrainerCallback):
    """The job's status and its state.json after each training row (the metrics callback has run before it). Each
    step is made to last 0.3 s at least: a tiny model's steps are faster than the 0.1 s the pace is rounded to."""

    def __init__(self):
        self.job, self.seen = None, []

    def on_step_begin(self, args, state, control, **kw):
        import time
        time.sleep(0.3)

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs:
            self.seen.append((state.global_step, self.job.status(), self.job.run.read_state()))


def test_the_train_tab_s_status_line_says_how_long_the_rest_of_a_grpo_run_takes(tmp_path):
    from studio.training import TrainingJob
    from studio.ui import views

    tok = tiny_tokenizer()
    watch = StatusAtLog()
    job = TrainingJob(merge(cfg_with(), {"training": {"max_steps": 3}}), tmp_path / "run", model=tiny_model(tok),
                      tokenizer=tok, data=prepared(tok), callbacks=[watch])
    watch.job = job
    job.run_sync()
    assert job.state == "done", job.message
    assert [step for step, _, _ in watch.seen] == [1, 2, 3]
    for step, status, written in watch.seen[:2]:
        params = status["message_params"]
        assert status["message_key"] == "time_left" and params["left"] == 3 - step and params["step_s"] > 0
        assert params["rest_s"] == pytest.approx(params["step_s"] * params["left"], abs=0.2)
        assert status["message"] == grpo.time_note(params["step_s"], step, 3)
        # state.json says it too: a run in its own process (launcher.py) is shown from that file
        assert written["message_key"] == "time_left" and written["message_params"] == params
        en, zh = views.job_status(status, "en"), views.job_status(status, "zh")
        assert f"more ({3 - step} to go)" in en and " s" in en
        assert f"剩下的 {3 - step} 步约需" in zh and "秒" in zh and "steps" not in zh
    assert watch.seen[2][1]["message_key"] == "training"        # the last step leaves nothing to wait for
    assert job.status()["message_key"] == "done"


@pytest.mark.parametrize("seconds", [20.0, 89.0, 600.0, 5399.0, 7200.0])
def test_the_app_words_a_duration_as_the_engine_s_note_does(seconds):
    from studio.ui import views

    note = grpo.time_note(seconds, 0, 1)
    assert f"about {views.duration_words(seconds, 'en')};" in note
    assert views.duration_words(seconds, "zh").split()[1] in ("秒", "分钟", "小时")


def test_the_largest_batch_is_what_grpo_s_loss_reads(tmp_path):
    """checkpointing 'auto' measures one forward and backward of worst_batch through the trainer's own loss."""
    from studio.models.lora import apply_lora

    tok = tiny_tokenizer()
    cfg = cfg_with(kl_beta=0.1)
    resolved = grpo.training_args(cfg, str(tmp_path), False, torch.float32, False, 2)
    model = apply_lora(tiny_model(tok), cfg.lora)
    trainer = grpo.trainer(model, resolved.args, tok, grpo.dataset(rows(tok)), None, [], resolved.precision)
    assert trainer.ref_model is None and list(model.peft_config) == ["default"]
    batch, tokens = grpo.worst_batch(rows(tok), 2, trainer.data_collator)
    assert batch["completion_ids"].shape == (4, 12) and tokens == batch["prompt_ids"].numel() + 4 * 12
    loss = trainer.compute_loss(model, trainer._prepare_inputs(batch))
    loss.backward()
    assert any(p.grad is not None for n, p in model.named_parameters() if "lora_" in n)


def test_generation_starts_from_the_rows_own_token_ids(tmp_path):
    """The data pipeline's ids, not a new tokenisation of the prompt text (which may split it otherwise)."""
    from studio.models.lora import apply_lora

    tok = tiny_tokenizer()
    cfg = cfg_with()
    train = rows(tok)
    piecewise = [i for ch in train[0].prompt for i in tok(ch, add_special_tokens=False)["input_ids"]]
    assert piecewise != train[0].prompt_ids and tok.decode(piecewise) == train[0].prompt
    train[0].prompt_ids = piecewise
    resolved = grpo.training_args(cfg, str(tmp_path), False, torch.float32, False, 2)
    trainer = grpo.trainer(apply_lora(tiny_model(tok), cfg.lora), resolved.args, tok, grpo.dataset(train), None, [],
                           resolved.precision)
    ids, _, _ = trainer._tokenize_prompts([train[0].prompt, train[1].prompt, "unseen"])
    assert ids[:2] == [piecewise, train[1].prompt_ids]
    assert ids[2] == tok("unseen", add_special_tokens=False)["input_ids"]


def test_the_data_hash_of_prompt_rows_follows_the_reference():
    from studio.training.resume import data_hash

    tok = tiny_tokenizer()
    a, b = prepared(tok), prepared(tok)
    assert data_hash(a) == data_hash(b)
    b.train[0].reference = "The Aurora kettle costs 89 dollars."
    assert data_hash(a) != data_hash(b)


def test_grpo_from_an_sft_runs_adapter_keeps_it_as_the_kl_reference(tmp_path):
    """kl_beta > 0 from a trained adapter: the KL reference is the SFT model (TRL's frozen 'ref' copy, kept), its
    KL starts at 0 against that model; the adapter folder still holds the trained adapter only."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file

    from test_training_job import make_cfg, prepared as sft_prepared, write_data
    from studio.training import TrainingJob
    from studio.training.extend import plan_from_run

    tok = tiny_tokenizer()
    sft_cfg = make_cfg(write_data(tmp_path), max_steps=5)
    sft = TrainingJob(sft_cfg, tmp_path / "sft", model=tiny_model(tok), tokenizer=tok,
                      data=sft_prepared(sft_cfg, tok)).run_sync()
    assert sft.state == "done", sft.message
    saved = load_file(sft.run.adapter_dir / "adapter_model.safetensors")

    class AtStart(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            self.adapters = list(model.peft_config)
            self.ref = {k: v.clone() for k, v in get_peft_model_state_dict(model, adapter_name="ref").items()}

    cfg, origin = plan_from_run(sft.run_dir, cfg_with(kl_beta=0.1))
    assert cfg.training.method == "grpo"
    start = AtStart()
    job = TrainingJob(cfg, tmp_path / "grpo", model=tiny_model(tok), tokenizer=tok, data=prepared(tok),
                      callbacks=[start], init_adapter=origin["started_from"]["adapter"], origin=origin)
    job.run_sync()
    assert job.state == "done", job.message
    assert start.adapters == ["default", "ref"]
    for k in saved:          # the reference is the SFT adapter, frozen
        torch.testing.assert_close(start.ref[k], saved[k])
    first = [r for r in job.run.metrics() if r.get("type") == "train"][0]
    assert first["kl"] == pytest.approx(0.0, abs=1e-6)      # the model starts where its reference is
    assert not (job.run.adapter_dir / "ref").exists()
