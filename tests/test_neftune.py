"""NEFTune (training.neftune_noise_alpha): the job adds noise to the word embeddings while training, scaled
as the paper says for each row (alpha / sqrt(the row's length x width)), padded or padding-free."""

import math

import pytest
import torch
from transformers import TrainerCallback

from studio.config import merge
from studio.errors import ConfigError
from studio.training.methods import sft
from test_training_job import run_job


def test_the_trainers_own_hook_is_never_used(tmp_path):
    """It scales by the whole batch tensor's length (a padding-free step's rows joined): the job adds its own."""
    from test_training_job import make_cfg
    cfg = merge(make_cfg(tmp_path / "x.jsonl"), {"training": {"neftune_noise_alpha": 5}})
    assert sft.training_args(cfg, str(tmp_path), False, torch.float32, False).args.neftune_noise_alpha is None


def _noise_seen(model):
    """The embeddings' deviation from the plain lookup at each forward call (after NEFTune's hook)."""
    seen = []

    def hook(module, inputs, output):
        seen.append((output - torch.nn.functional.embedding(inputs[0], module.weight)).detach().abs())
    model.get_input_embeddings().register_forward_hook(hook)
    return seen


@pytest.mark.parametrize("layout", ["padding-free", "padded"])
def test_each_row_gets_the_papers_noise_for_its_own_length(layout):
    from studio.training.neftune import RowScaledNoise
    from tiny import tiny_model, tiny_tokenizer

    torch.manual_seed(0)
    model = tiny_model(tiny_tokenizer())
    noise = RowScaledNoise(model, alpha=5.0).attach()
    seen = _noise_seen(model)
    d = model.config.hidden_size
    model.train()
    if layout == "padding-free":      # rows of 3 and 12 tokens joined, position ids restarting at 0
        ids = torch.randint(3, 300, (1, 15))
        model(input_ids=ids, position_ids=torch.tensor([[0, 1, 2, *range(12)]]))
        rows = [(seen[-1][0, :3], 3), (seen[-1][0, 3:], 12)]
    else:                             # a row of 4 tokens padded to 10, and a row of 10
        ids = torch.randint(3, 300, (2, 10))
        mask = torch.tensor([[1] * 4 + [0] * 6, [1] * 10])
        model(input_ids=ids, attention_mask=mask)
        rows = [(seen[-1][0, :4], 4), (seen[-1][1], 10)]
    for deviation, length in rows:
        bound = 5.0 / math.sqrt(length * d)
        # uniform in [-bound, bound]: never beyond it, and with 192+ draws its largest comes close
        assert 0.9 * bound < deviation.max().item() <= bound * 1.0001, (length, deviation.max().item(), bound)

    model.eval()
    model(input_ids=ids)
    assert seen[-1].max().item() == 0.0                    # no noise outside training
    model.train()
    noise.detach()
    model(input_ids=ids)
    assert seen[-1].max().item() == 0.0                    # and none once detached (the model chats clean)


def test_a_negative_alpha_is_refused_by_name(tmp_path):
    from test_training_job import make_cfg
    with pytest.raises(ConfigError, match="training.neftune_noise_alpha"):
        merge(make_cfg(tmp_path / "x.jsonl"), {"training": {"neftune_noise_alpha": -1}}).validate()


class EmbeddingNoise(TrainerCallback):
    """Watches the input embeddings' output during training: how far it is from the plain table lookup."""

    def __init__(self):
        self.deviation: list[float] = []      # largest |output - lookup| of each forward pass while training
        self.width = 0

    def on_train_begin(self, args, state, control, model=None, **kw):
        emb = model.get_input_embeddings()

        # Registered after the job's NEFTune hook, so it sees the embeddings as the model does.
        def hook(module, inputs, output):
            if module.training:
                plain = torch.nn.functional.embedding(inputs[0], module.weight)
                self.deviation.append((output - plain).abs().max().item())
                self.width = output.size(-1)
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
        # Each row's noise is within alpha / sqrt(its length x width); the demo rows are 10+ tokens long.
        assert all(0 < d <= alpha / math.sqrt(10 * watch.width) for d in watch.deviation)
    # The trained model is left without the noise hook: chat after training is not noisy.
    emb = job.model.get_input_embeddings()
    emb.train()
    ids = torch.tensor([[5, 6, 7]])
    assert torch.equal(emb(ids), torch.nn.functional.embedding(ids, emb.weight))
