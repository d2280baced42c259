"""On a CPU, TRL's fused LM head scores only the positions that are trained on (the prompt half of a chat row
is skipped), and the loss and the gradients are those of scoring every position."""

from __future__ import annotations

import torch


def _loss_and_grads(tiny_dir, compact: bool, monkeypatch):
    import trl.trainer.utils as tu
    from transformers import AutoModelForCausalLM

    from studio.training.methods import sft

    original = tu._use_triton
    tu._use_triton = getattr(original, "original", original)   # TRL's rule, even if a training patched it
    if compact:
        sft.compact_lm_head_on_cpu()
    seen = []
    monkeypatch.undo()                       # the previous case's spy, if any

    def spy(hidden, *rest):
        seen.append(hidden.shape[0])
        return kernel(hidden, *rest)

    kernel = tu._ChunkedLogProbFunction.apply
    monkeypatch.setattr(tu._ChunkedLogProbFunction, "apply", spy)
    try:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(str(tiny_dir), dtype=torch.float32)
        tu.add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
        ids = torch.randint(3, 100, (1, 24))
        labels = ids.clone()
        labels[:, :14] = -100                              # the prompt: not trained on
        out = model(input_ids=ids, labels=labels, fused_lm_head=True)
        out.loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return out.loss.detach(), grads, seen
    finally:
        tu._use_triton = original


def test_only_trained_positions_reach_the_lm_head_and_the_loss_is_the_same(tiny_dir, monkeypatch):
    full_loss, full_grads, full_seen = _loss_and_grads(tiny_dir, False, monkeypatch)
    loss, grads, seen = _loss_and_grads(tiny_dir, True, monkeypatch)
    assert full_seen == [23] and seen == [10]              # 23 next-token positions, 10 of them labelled
    assert torch.allclose(loss, full_loss, atol=1e-6)
    assert grads.keys() == full_grads.keys()
    for name in grads:
        assert torch.allclose(grads[name], full_grads[name], atol=1e-5), name
