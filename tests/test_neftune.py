"""NEFTune (training.neftune_noise_alpha): the setting reaches the trainer, and the trainer really adds noise
to the word embeddings while training, scaled as the paper says (alpha / sqrt(sequence length x width))."""

import math

import pytest
import torch
from transformers import TrainerCallback

from studio.config import ConfigError, merge
from studio.training.args import build_training_args
from test_training_job import run_job


def test_the_setting_reaches_the_trainer_args(tmp_path):
    from test_training_job import make_cfg
    cfg = make_cfg(tmp_path / "x.jsonl")
    off = build_training_args(cfg, str(tmp_path), False, torch.float32, False).args
    assert off.neftune_noise_alpha is None                  # 0 = off: no hook at all
    on = merge(cfg, {"training": {"neftune_noise_alpha": 5}})
    assert build_training_args(on, str(tmp_path), False, torch.float32, False).args.neftune_noise_alpha == 5.0


def test_the_run_says_when_padding_free_batches_weaken_the_noise(tmp_path):
    """The trainer scales the noise by the joined length of a padding-free step, not by each row's."""
    from test_training_job import make_cfg
    cfg = merge(make_cfg(tmp_path / "x.jsonl"), {"training": {"neftune_noise_alpha": 5, "batch_size": 4,
                                                              "packing": True}})
    notes = build_training_args(cfg, str(tmp_path), False, torch.float32, False).notes
    assert any("NEFTune with padding-free batches" in n and "1/2.0" in n for n in notes)
    padded = merge(cfg, {"training": {"packing": False}})
    assert not any("NEFTune" in n for n in build_training_args(padded, str(tmp_path), False, torch.float32,
                                                               False).notes)


def test_a_negative_alpha_is_refused_by_name(tmp_path):
    from test_training_job import make_cfg
    with pytest.raises(ConfigError, match="training.neftune_noise_alpha"):
        merge(make_cfg(tmp_path / "x.jsonl"), {"training": {"neftune_noise_alpha": -1}}).validate()


class EmbeddingNoise(TrainerCallback):
    """Watches the input embeddings' output during training: how far it is from the plain table lookup."""

    def __init__(self):
        self.deviation: list[float] = []      # largest |output - lookup| of each forward pass while training
        self.bound: list[float] = []          # alpha / sqrt(L * d) for alpha = 1

    def on_train_begin(self, args, state, control, model=None, **kw):
        emb = model.get_input_embeddings()

        # Registered after the trainer's NEFTune hook, so it sees the embeddings as the model does.
        def hook(module, inputs, output):
            if module.training:
                plain = torch.nn.functional.embedding(inputs[0], module.weight)
                self.deviation.append((output - plain).abs().max().item())
                self.bound.append(1 / math.sqrt(output.size(1) * output.size(2)))
        emb.register_forward_hook(hook)


@pytest.mark.parametrize("alpha", [0.0, 5.0])
def test_noise_is_added_to_the_embeddings_only_when_on(tmp_path, alpha):
    watch = EmbeddingNoise()
    job = run_job(tmp_path, name=f"neftune-{alpha}", callbacks=[watch], max_steps=3, neftune_noise_alpha=alpha)
    assert job.state == "done", job.message
    assert len(watch.deviation) >= 3
    if alpha == 0:
        assert max(watch.deviation) == 0.0
    else:
        # uniform noise in [-alpha/sqrt(L*d), alpha/sqrt(L*d)]: present, and never larger than that
        assert all(0 < d <= alpha * b * 1.0001 for d, b in zip(watch.deviation, watch.bound))
        assert min(d / (alpha * b) for d, b in zip(watch.deviation, watch.bound)) > 0.5
