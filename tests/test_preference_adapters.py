"""The preference methods with the prompt-based adapters (config.PROMPT_ADAPTERS), as tried on the tiny Llama:
prefix tuning and LLaMA-Adapter train with DPO, KTO, ORPO and SimPO, prompt tuning with DPO and KTO (TRL's DPO and
KTO trainers cut its virtual tokens off the logits); prompt tuning with ORPO or SimPO, whose trainers do not and fail
on their first step, is refused by the config's validation naming the adapter, the method and what to pick."""

from __future__ import annotations

import statistics

import pytest

from preference_rows import labelled_data, pair_data
from test_preference_methods import cfg_for, run
from tiny import tiny_tokenizer


def _cfg(method: str, adapter: str):
    from studio.config import merge
    return merge(cfg_for(method, **({"beta": 1.0} if method == "orpo" else {})),
                 {"lora": {"adapter": adapter, "virtual_tokens": 4},
                  "training": {"learning_rate": 0.1, "max_steps": 24, "gradient_checkpointing": "off"}})


@pytest.mark.parametrize("adapter,method", [("prefix", "dpo"), ("prefix", "orpo"), ("prefix", "simpo"),
                                            ("prompt", "dpo"), ("prompt", "kto"), ("llama-adapter", "dpo"),
                                            ("llama-adapter", "simpo")])
def test_a_prompt_based_adapter_learns_the_preference(tmp_path, adapter, method):
    tok = tiny_tokenizer()
    data = labelled_data(tok) if method == "kto" else pair_data(tok)
    cfg = _cfg(method, adapter)
    cfg.validate()
    job = run(cfg, tmp_path / f"{adapter}-{method}", tok, data)
    assert job.state == "done", job.message
    rows = job.metrics.rows("train")
    loss = [r["loss"] for r in rows]
    margin = [r["rewards/margins"] for r in rows]
    assert statistics.mean(loss[-4:]) < statistics.mean(loss[:4]) - 0.005, loss
    assert statistics.mean(margin[-4:]) > statistics.mean(margin[:4]) + 0.01, margin
    if method in ("dpo", "kto"):
        # The reference is the model as the run started (a frozen copy of the starting virtual tokens, a few
        # thousand numbers, not of the model): at the first step the trained model and it agree exactly.
        assert rows[0]["rewards/chosen"] == 0 and rows[0]["rewards/rejected"] == 0, rows[0]
        assert not (job.run.adapter_dir / "ref").exists()


@pytest.mark.parametrize("method", ["orpo", "simpo"])
def test_prompt_tuning_with_orpo_or_simpo_is_refused_before_loading(method):
    from studio.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        _cfg(method, "prompt").validate()
    assert e.value.code == "config.prompt_tuning_method"
    message, hint = e.value.render("en")
    assert "lora.adapter prompt" in message and f"training.method {method}" in message
    assert "dpo or kto" in hint and "prefix" in hint
    zh, zh_hint = e.value.render("zh")
    assert "提示微调" in zh and method in zh and "dpo" in zh_hint
    for other in ("prefix", "llama-adapter", "lora"):
        _cfg(method, other).validate()          # the same method with the other adapters is allowed
