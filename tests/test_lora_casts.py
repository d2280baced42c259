"""Skipping peft's input casts under autocast (studio.models.lora.skip_input_casts_under_autocast) changes
no bit of a training step, removes copies, and leaves generation outside autocast working."""
import torch
from transformers import AutoModelForCausalLM

from studio.config import LoraConfig
from studio.models.lora import apply_lora, clean_base, skip_input_casts_under_autocast


def _model(tiny_dir, skip: bool):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.bfloat16)
    peft_model = apply_lora(model, LoraConfig(r=8, alpha=16, dropout=0.0, target_modules="all-linear"))
    for name, p in peft_model.named_parameters():     # B starts at zero; make the adapter's path count
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    if skip:
        skip_input_casts_under_autocast(peft_model)
    return peft_model


def _step(model):
    ids = torch.arange(48).reshape(2, 24) % 50 + 3
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss.detach(), grads


def _copies(model) -> int:
    from torch.profiler import profile
    with profile() as prof:
        _step(model)
    return sum(e.count for e in prof.key_averages() if e.key == "aten::_to_copy")


def test_a_step_under_autocast_is_bit_identical_with_fewer_copies(tiny_dir):
    plain, lean = _model(tiny_dir, skip=False), _model(tiny_dir, skip=True)
    loss_a, grads_a = _step(plain)
    loss_b, grads_b = _step(lean)
    assert torch.equal(loss_a, loss_b)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 0
    for name in grads_a:
        assert torch.equal(grads_a[name], grads_b[name]), name
    plain.zero_grad()
    lean.zero_grad()
    assert _copies(lean) < _copies(plain)


def test_outside_autocast_the_casts_come_back_and_generation_works(tiny_dir):
    model = _model(tiny_dir, skip=True)
    _step(model)                    # under autocast: casts off
    layers = [m for m in model.modules() if hasattr(m, "cast_input_dtype_enabled") and hasattr(m, "lora_A")]
    assert layers and not any(m.cast_input_dtype_enabled for m in layers)
    with torch.inference_mode():    # no autocast: a bf16 input meets float32 adapters, so the casts are needed
        out = model.generate(input_ids=torch.tensor([[3, 4, 5]]), max_new_tokens=4, do_sample=False)
    assert out.shape[-1] == 7
    assert all(m.cast_input_dtype_enabled for m in layers)


def test_the_switch_leaves_with_the_adapter(tiny_dir):
    base = clean_base(_model(tiny_dir, skip=True))
    assert not hasattr(base, "_studio_cast_switch") and not base._forward_pre_hooks
