"""The preference methods on a tiny Llama: DPO (and IPO), ORPO and SimPO move the model towards the chosen
answers of held-back pairs, KTO balances unbalanced labels, the reference is the base with the adapter off (no
second copy), one step holds twice an SFT step, a DPO run resumes, and DPO can start from an SFT run's adapter."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import TrainerCallback

from preference_rows import labelled_data, pair_data
from tiny import tiny_model, tiny_tokenizer

TRAINING = {"max_steps": 12, "batch_size": 4, "learning_rate": 0.01, "scheduler": "constant", "warmup_ratio": 0.0,
            "logging_steps": 1, "eval_steps": 0, "seed": 0}


def cfg_for(method, **preference):
    from studio.config import StudioConfig
    return StudioConfig.from_dict({"name": method, "model": {"source": "tiny", "compute_dtype": "float32"},
                                   "data": {"file": "pairs.jsonl", "validation": 0, "max_length": 128},
                                   "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
                                   "training": {**TRAINING, "method": method}, "preference": preference})


def run(cfg, run_dir, tok, data, callbacks=(), **kw):
    from studio.training import TrainingJob
    job = TrainingJob(cfg, run_dir, model=kw.pop("model", None) or tiny_model(tok), tokenizer=tok, data=data,
                      callbacks=callbacks, **kw)
    job.run_sync()
    return job


def margins(model, pairs) -> torch.Tensor:
    """logp(chosen) - logp(rejected) per pair, summed over the answer tokens, from the model itself."""
    def logp(prompt, answer):
        ids = torch.tensor([prompt + answer])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :-1].float()
        picked = torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None])[:, 0]
        return picked[len(prompt) - 1:].sum()
    model.eval()
    return torch.stack([logp(p.prompt_ids, p.chosen_ids) - logp(p.prompt_ids, p.rejected_ids) for p in pairs])


def losses(job) -> list[float]:
    return [r["loss"] for r in job.metrics.rows("train")]


@pytest.mark.parametrize("method,preference", [("dpo", {}), ("orpo", {"beta": 1.0}), ("simpo", {})])
def test_the_loss_falls_and_the_held_back_margin_rises(tmp_path, method, preference):
    tok = tiny_tokenizer()
    data = pair_data(tok)
    before = margins(tiny_model(tok), data.validation)
    job = run(cfg_for(method, **preference), tmp_path / method, tok, data)
    assert job.state == "done", job.message
    after = margins(job.model, data.validation)
    assert after.mean() > before.mean() + 0.5, (before, after)
    # Tokens/s as the Train tab shows it: every method counts each pair's real tokens, prompt twice (chosen and
    # rejected) and both answers, over the 6 epochs of 12 steps of 4 of the 8 pairs (no padding counted).
    rows = job.metrics.rows("train")
    per_epoch = sum(2 * len(r.prompt_ids) + len(r.chosen_ids) + len(r.rejected_ids) for r in data.train)
    assert rows[-1]["tokens_seen"] == 6 * per_epoch, (method, rows[-1]["tokens_seen"], per_epoch)
    assert all(r["tokens_per_sec"] > 0 for r in rows), [r["tokens_per_sec"] for r in rows]
    first, last = losses(job)[:3], losses(job)[-3:]
    assert sum(last) < sum(first)
    row = job.metrics.rows("train")[-1]
    assert {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"} <= set(row)
    if method == "orpo":
        assert "log_odds_ratio" in row
    summary = job.result["preference"]
    assert summary["pairs"] == 4 and summary["steps_before"] == 0 and summary["steps_after"] == 12
    assert summary["margin_after"] > summary["margin_before"]
    assert summary["sentence"].startswith("On 4 held-back pairs the model now "
                                          + ("favours the right answer" if method == "dpo" else "prefers the right answer"))
    assert summary["sentence"] in job.run.log_path.read_text()


def test_dpo_with_the_ipo_loss_and_an_sft_term_trains(tmp_path):
    tok = tiny_tokenizer()
    job = run(cfg_for("dpo", loss="ipo", sft_weight=1.0), tmp_path / "ipo", tok, pair_data(tok))
    assert job.state == "done", job.message
    assert sum(losses(job)[-3:]) < sum(losses(job)[:3])
    assert job.result["preference"]["margin_after"] > 0


def test_kto_balances_unbalanced_labels_and_logs_the_weights(tmp_path):
    from studio.training.methods.kto import balanced_weights

    assert balanced_weights([True] * 6 + [False] * 2) == (1.0, 3.0)
    assert balanced_weights([True] + [False] * 4) == (4.0, 1.0)
    tok = tiny_tokenizer()
    data = labelled_data(tok, good_per_bad=3)
    assert sum(r.label for r in data.train) == 6
    job = run(cfg_for("kto"), tmp_path / "kto", tok, data)
    assert job.state == "done", job.message
    assert "KTO weights: good answers 1.0, bad answers 3.0 (6 good, 2 bad rows" in job.run.log_path.read_text()
    assert sum(losses(job)[-3:]) < sum(losses(job)[:3])
    assert "kl" in job.metrics.rows("train")[-1]
    manual = run(cfg_for("kto", balance="manual"), tmp_path / "manual", tok, data)
    assert manual.state == "done" and "KTO weights" not in manual.run.log_path.read_text()


@pytest.mark.parametrize("method", ["dpo", "kto"])
def test_the_reference_is_the_base_with_the_adapter_off_not_a_copy(tmp_path, method):
    from trl.trainer.utils import use_adapter

    from studio.models.lora import apply_lora
    from studio.training import methods

    tok = tiny_tokenizer()
    cfg = cfg_for(method)
    data = labelled_data(tok) if method == "kto" else pair_data(tok)
    m = methods.get(method)
    base_logits = tiny_model(tok)(input_ids=torch.tensor([data.train[0].prompt_ids])).logits
    model = apply_lora(tiny_model(tok), cfg.lora)
    tensors, numbers = len(list(model.parameters())), sum(p.numel() for p in model.parameters())
    resolved = m.training_args(cfg, str(tmp_path / "out"), False, torch.float32, True, len(data.train))
    trainer = m.trainer(model, resolved.args, tok, m.dataset(data.train), m.dataset(data.validation), [], "fp32",
                        m.collator(resolved.args, tok))
    assert trainer.ref_model is None and list(model.peft_config) == ["default"]
    assert len(list(model.parameters())) == tensors and sum(p.numel() for p in model.parameters()) == numbers
    with torch.no_grad():        # nudge the adapter: with it off the model is the base again
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.add_(0.1)
        with use_adapter(model, None):
            ref_logits = model(input_ids=torch.tensor([data.train[0].prompt_ids])).logits
    torch.testing.assert_close(ref_logits, base_logits)


def test_one_preference_step_holds_twice_an_sft_step():
    from studio.config import merge
    from studio.training import methods

    for method in ("dpo", "kto", "orpo", "simpo"):
        cfg = merge(cfg_for(method), {"training": {"batch_size": 3}, "data": {"max_length": 256}})
        assert methods.step_tokens(cfg) == 2 * 3 * 256


def test_dpo_and_kto_estimate_their_reference_forward_and_orpo_simpo_none():
    """At the same rows the DPO/KTO estimate is SFT's at twice the tokens plus the no-gradient reference's loss tile
    and hidden states; ORPO's and SimPO's are the same step without that part; 'Fit to my GPU' counts it."""
    from studio.config import merge
    from studio.fit import fit_to_gpu
    from studio.models.size import estimate_from_facts
    from studio.training import methods

    facts = {"num_params": 1_235_814_400, "hidden_size": 2048, "num_layers": 16, "vocab_size": 128256,
             "intermediate_size": 8192, "kv_width": 512, "tied_embeddings": True}
    gpu = {"device": "cuda", "free_gb": 80.0}

    def estimate(method, batch=4):
        cfg = merge(cfg_for(method), {"training": {"batch_size": batch, "gradient_checkpointing": "on"},
                                      "data": {"max_length": 1024}, "model": {"quantization": "4bit-nf4"}})
        return cfg, estimate_from_facts(cfg, facts, gpu, methods.step_tokens(cfg))

    _, sft = estimate("sft", batch=8)               # the same sequences: 8 rows, as 4 pairs hold chosen + rejected
    tokens = 2 * 4 * 1024
    reference = (4096 * 32768 + tokens * 2048) * 2 / 1e9          # the tile and the hidden states, 16-bit
    assert "reference" not in sft["parts"]
    for method in ("dpo", "kto"):
        _, est = estimate(method)
        assert est["parts"]["reference"] == pytest.approx(reference, abs=1e-3)
        assert {k: v for k, v in est["parts"].items() if k != "reference"} == sft["parts"]
        assert est["total_gb"] == pytest.approx(sft["total_gb"] + reference, abs=0.011)
    for method in ("orpo", "simpo"):
        _, est = estimate(method)
        assert "reference" not in est["parts"] and est["parts"] == sft["parts"]
    cfg, dpo = estimate("dpo")
    _, orpo = estimate("orpo")
    budget = (dpo["total_gb"] + orpo["total_gb"]) / 2       # ORPO's step fits, DPO's does not
    assert fit_to_gpu(merge(cfg, {"training": {"method": "orpo"}}), facts, budget, methods.step_tokens)[2]
    fitted, changes, fits = fit_to_gpu(cfg, facts, budget, methods.step_tokens)
    assert changes and fitted.training.batch_size < 4


class StopAt(TrainerCallback):
    def __init__(self, job_ref, step):
        self.job_ref, self.step = job_ref, step

    def on_step_end(self, args, state, control, **kw):
        if state.global_step == self.step:
            self.job_ref[0].stop()


def test_a_stopped_dpo_run_resumes_and_a_changed_beta_is_refused(tmp_path):
    from studio.config import merge
    from studio.errors import ResumeError
    from studio.training import TrainingJob
    from studio.training.resume import plan_resume

    tok = tiny_tokenizer()
    data = pair_data(tok)
    cfg = merge(cfg_for("dpo", beta=0.2), {"training": {"max_steps": 6, "save_steps": 100}})
    ref: list = []
    job = TrainingJob(cfg, tmp_path / "dpo", model=tiny_model(tok), tokenizer=tok, data=data,
                      callbacks=[StopAt(ref, 3)], keep_model=False)
    ref.append(job)
    job.run_sync()
    assert job.state == "stopped", job.message
    fp = json.loads((job.run_dir / "fingerprint.json").read_text())
    assert fp["settings"]["training.method"] == "dpo" and fp["settings"]["preference.beta"] == 0.2
    plan = plan_resume(job.run_dir, tokenizer=tok, data=data)
    assert plan.step == 4                 # pressed during step 4: it is the last one
    resumed = run(plan.cfg, job.run_dir, tok, data, resume_from=plan.checkpoint)
    assert resumed.state == "done", resumed.message
    assert resumed.progress.step == 6 and sorted(r["step"] for r in resumed.metrics.rows("train")) == list(range(1, 7))
    stopped2 = TrainingJob(cfg, tmp_path / "again", model=tiny_model(tok), tokenizer=tok, data=data,
                           callbacks=[StopAt(ref2 := [], 2)], keep_model=False)
    ref2.append(stopped2)
    stopped2.run_sync()
    merge(cfg, {"preference": {"beta": 0.5}}).save(stopped2.run.config_path)
    with pytest.raises(ResumeError, match="preference.beta"):
        plan_resume(stopped2.run_dir, tokenizer=tok, data=data)


def test_dpo_starts_from_an_sft_runs_adapter_which_stays_its_reference_on_resume(tmp_path):
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file

    from test_training_job import make_cfg, prepared, write_data
    from studio.training import TrainingJob
    from studio.training.extend import plan_from_run
    from studio.training.resume import plan_resume

    tok = tiny_tokenizer()
    sft_cfg = make_cfg(write_data(tmp_path), max_steps=5)
    sft = run(sft_cfg, tmp_path / "sft", tok, prepared(sft_cfg, tok))
    assert sft.state == "done", sft.message
    saved = load_file(sft.run.adapter_dir / "adapter_model.safetensors")

    class AtStart(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            self.default = {k: v.clone() for k, v in get_peft_model_state_dict(model, adapter_name="default").items()}
            self.ref = {k: v.clone() for k, v in get_peft_model_state_dict(model, adapter_name="ref").items()}

    cfg, origin = plan_from_run(sft.run_dir, cfg_for("dpo"))
    assert cfg.training.method == "dpo" and cfg.model == sft_cfg.model and cfg.lora == sft_cfg.lora
    cfg.training.save_steps = 100
    first, ref = AtStart(), []
    dpo = TrainingJob(cfg, tmp_path / "dpo", model=tiny_model(tok), tokenizer=tok, data=pair_data(tok),
                      callbacks=[first, StopAt(ref, 3)], init_adapter=origin["started_from"]["adapter"], origin=origin)
    ref.append(dpo)
    dpo.run_sync()
    assert dpo.state == "stopped", dpo.message
    assert first.default.keys() == saved.keys()
    for k in saved:        # DPO began where SFT ended, and measures against the SFT model (the frozen "ref" copy)
        torch.testing.assert_close(first.default[k], saved[k])
        torch.testing.assert_close(first.ref[k], saved[k])
    fp = json.loads((dpo.run_dir / "fingerprint.json").read_text())
    assert fp["started_from"]["method"] == "sft" and fp["started_from"]["run_dir"] == str(sft.run_dir.resolve())
    assert not (dpo.run.adapter_dir / "ref").exists()

    plan = plan_resume(dpo.run_dir, tokenizer=tok, data=pair_data(tok))
    assert plan.start_kwargs()["init_adapter"] == sft.run.adapter_dir.resolve()
    again = AtStart()
    resumed = run(plan.cfg, dpo.run_dir, tok, plan.data, callbacks=[again], resume_from=plan.checkpoint,
                  init_adapter=plan.init_adapter)
    assert resumed.state == "done", resumed.message
    for k in saved:        # the reference is the SFT adapter again, not the base
        torch.testing.assert_close(again.ref[k], saved[k])
    after = load_file(resumed.run.adapter_dir / "adapter_model.safetensors")
    assert max((after[k] - saved[k]).abs().max().item() for k in saved) > 1e-4


def test_the_command_line_starts_a_run_from_another(tmp_path):
    from studio.cli import build_parser

    args = build_parser().parse_args(["train", "--method", "dpo", "--from-run", str(tmp_path)])
    assert args.from_run == str(tmp_path) and args.method == "dpo"


def test_the_summary_counts_pairs_and_says_it_plainly():
    from studio.training.methods.preference_summary import preference_summary

    rows = [{"type": "train", "step": 1, "loss": 1.0},
            {"type": "eval", "step": 0, "eval_rewards/accuracies": 0.5, "eval_rewards/margins": 0.0},
            {"type": "eval", "step": 10, "eval_rewards/accuracies": 11 / 12, "eval_rewards/margins": 3.42}]
    s = preference_summary(rows, 12, "simpo")
    assert s["sentence"] == ("On 12 held-back pairs the model now prefers the right answer 11 times (it did 6 "
                             "before training); the average margin rose from 0.0 to 3.4.")
    assert preference_summary([{"type": "eval", "step": 3, "eval_loss": 1.0}], 4) == {}
    # DPO at step 0 is its own reference (every margin 0, no pair won): no "before" count is claimed.
    rows[1]["eval_rewards/accuracies"] = 0.0
    assert preference_summary(rows, 12, "dpo")["sentence"] == (
        "On 12 held-back pairs the model now favours the right answer more than it did when it started on 11 of "
        "them; measured against the model as it started, the average margin rose from 0.0 to 3.4.")


def test_kto_with_one_row_a_batch_is_refused_in_words():
    from studio.config import merge
    from studio.errors import ConfigError

    with pytest.raises(ConfigError, match="batch_size of at least 2") as e:
        merge(cfg_for("kto"), {"training": {"batch_size": 1}}).validate()
    assert e.value.code == "config.kto_batch"
    merge(cfg_for("dpo"), {"training": {"batch_size": 1}}).validate()


@pytest.mark.parametrize("method", ["dpo", "kto", "orpo", "simpo"])
def test_the_worst_batch_goes_through_the_trainers_loss_as_checkpointing_auto_measures_it(tmp_path, method):
    from studio.models.lora import apply_lora
    from studio.training import methods

    tok = tiny_tokenizer()
    cfg = cfg_for(method)
    data = labelled_data(tok) if method == "kto" else pair_data(tok)
    m = methods.get(method)
    model = apply_lora(tiny_model(tok), cfg.lora)
    resolved = m.training_args(cfg, str(tmp_path / "out"), False, torch.float32, False, len(data.train))
    trainer = m.trainer(model, resolved.args, tok, m.dataset(data.train), None, [], "fp32",
                        m.collator(resolved.args, tok))
    batch, tokens = m.worst_batch(data.train, 2, trainer.data_collator)
    longest = max(len(r.prompt_ids) + len(getattr(r, "completion_ids", None) or r.chosen_ids) for r in data.train)
    assert tokens >= 2 * longest            # both sequences of each row (chosen and rejected, or the KL twin)
    loss = trainer.compute_loss(model, trainer._prepare_inputs(batch))
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad is not None and p.grad.abs().sum() > 0
                                        for n, p in model.named_parameters() if "lora_" in n)



def test_dpo_groups_pairs_by_length_so_batches_pad_less_over_the_same_pairs(tmp_path, monkeypatch):
    """Pairs of very different lengths: with training.group_by_length the batches of one pass pad to far fewer
    tokens than shuffled ones (off), and every pair is still trained on exactly once a pass."""
    from preference_rows import _data
    from studio.config import merge
    from studio.data.types import EncodedPair
    from studio.training.methods import dpo

    tok = tiny_tokenizer()
    rows = [EncodedPair(row=i + 1, prompt_ids=[5] * (4 + (i % 4) * 30), chosen_ids=[6] * (3 + (i % 4) * 10) + [7],
                        rejected_ids=[8] * 3 + [7], text=f"p{i}", rejected_text=f"r{i}") for i in range(64)]
    original = dpo.collator
    padded, pairs_seen = {}, {}
    for grouped in (True, False):
        seen: list = []

        def recording(args, tokenizer, seen=seen):
            inner = original(args, tokenizer)

            def collate(examples):
                batch = inner(examples)
                seen.append((int(batch["input_ids"].numel()), [len(e["prompt_ids"]) for e in examples]))
                return batch
            return collate
        monkeypatch.setattr(dpo, "collator", recording)
        cfg = merge(cfg_for("dpo"), {"training": {"max_steps": 16, "group_by_length": grouped},
                                     "data": {"max_length": 256}})
        job = run(cfg, tmp_path / f"run-{grouped}", tok, _data(rows, []))
        assert job.state == "done", job.message
        padded[grouped] = sum(n for n, _ in seen[-16:])
        pairs_seen[grouped] = sorted(x for _, ls in seen[-16:] for x in ls)
    assert pairs_seen[True] == pairs_seen[False] == sorted(len(r.prompt_ids) for r in rows)   # one pass each
    assert padded[True] < 0.8 * padded[False], padded
