"""Training methods: the registry's names are the choices of ``training.method``, each one a module with the
whole interface; SFT is the default, and what it says one step holds is what the estimate counted before."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from studio.config import METHODS, StudioConfig, field_choices, merge
from studio.errors import ConfigError
from studio.training import methods

INTERFACE = ("DATA", "COLUMNS", "METRICS", "training_args", "dataset", "collator", "trainer", "step_tokens", "worst_batch")
FACTS = {"num_params": 1_000_000_000, "hidden_size": 2048, "num_layers": 16, "vocab_size": 32000,
         "intermediate_size": 8192}


def test_every_method_of_the_registry_has_the_whole_interface():
    assert field_choices("training", "method") == METHODS and StudioConfig().training.method == "sft"
    for name in METHODS:
        module = methods.get(name)
        assert [a for a in INTERFACE if not hasattr(module, a)] == [], name


def test_an_unknown_method_is_refused_in_words():
    with pytest.raises(ConfigError, match="training.method"):
        merge(StudioConfig(), {"training": {"method": "nonsense"}}).validate()
    with pytest.raises(ConfigError, match="training.method"):
        methods.get("nonsense")


def test_the_method_round_trips_yaml_and_the_command_line():
    from studio.cli import build_parser
    from studio.commands.train import build_config

    assert "method: sft" in StudioConfig().to_yaml()
    assert StudioConfig.from_yaml(StudioConfig().to_yaml()).training.method == "sft"
    args = build_parser().parse_args(["train", "--training.method", "sft"])
    assert build_config(args).training.method == "sft"


def test_sft_says_one_step_holds_the_batch_at_full_length_as_the_estimate_counted():
    from studio.fit import fit_to_gpu
    from studio.models.size import estimate_from_facts

    cfg = merge(StudioConfig(), {"training": {"batch_size": 3}, "data": {"max_length": 256}})
    assert methods.step_tokens(cfg) == 3 * 256
    gpu = {"device": "cuda", "free_gb": 6.0}
    assert estimate_from_facts(cfg, FACTS, gpu, step_tokens=methods.step_tokens(cfg)) == estimate_from_facts(
        cfg, FACTS, gpu)
    assert fit_to_gpu(cfg, FACTS, 6.0, methods.step_tokens) == fit_to_gpu(cfg, FACTS, 6.0)


def test_a_methods_metrics_are_kept_in_the_rows(tmp_path):
    from studio.runs import MetricsLog
    from studio.training.callbacks import MetricsCallback, Progress

    log = MetricsLog(tmp_path / "metrics.jsonl")
    cb = MetricsCallback(log, Progress(), extra_metrics=("rewards/margins",))
    state = SimpleNamespace(global_step=1, epoch=0.5, num_input_tokens_seen=10, max_steps=4)
    cb.on_log(None, state, None, logs={"loss": 0.5, "rewards/margins": 0.25, "entropy": 1.0})
    row = log.rows("train")[0]
    assert row["rewards/margins"] == 0.25 and "entropy" not in row
    log.close()
