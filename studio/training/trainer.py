"""The trainer a run trains with: what TrainingJob builds, apart from the run's own steps."""

from __future__ import annotations


def sft_trainer(model, args, tokenizer, train, validation, callbacks, precision: str):
    """TRL's SFTTrainer over already tokenised rows with their loss masks as ``labels``.

    TRL batches them (padding-free or padded), and computes the loss with its chunked LM head, which
    never materialises the float32 logits of the whole vocabulary. For a quantized base TRL keeps the
    adapters in bfloat16 (the QLoRA paper's choice); float16 mixed precision (GPUs without bfloat16)
    needs float32 adapters for its gradient scaler, so they are put back to float32 there."""
    import warnings

    import torch
    from trl import SFTTrainer

    if not torch.cuda.is_available():
        compact_lm_head_on_cpu()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)     # TRL's use_liger_kernel deprecation note
        trainer = SFTTrainer(model=model, args=args, train_dataset=train, eval_dataset=validation,
                             processing_class=tokenizer, callbacks=callbacks)
    if precision == "fp16":
        for p in model.parameters():
            if p.requires_grad and p.dtype != torch.float32:
                p.data = p.data.float()
    return trainer


def compact_lm_head_on_cpu() -> None:
    """Make TRL's fused LM head score only the positions that have a label on a CPU too.

    TRL projects through the LM head (49,152 words for the built-in model) only the positions whose next token is
    trained on, but only on Triton devices: elsewhere (Neuron) a changing number of positions would recompile its
    graphs. Eager PyTorch on a CPU compiles nothing, and the prompt positions are about half of every chat row, so
    there they are skipped as well; the loss is the same (tests/test_cpu_lm_head.py)."""
    import torch
    import trl.trainer.utils as tu

    original = getattr(tu, "_use_triton", None)
    if original is None or getattr(original, "studio_cpu", False):
        return

    def use_compact(device: torch.device) -> bool:
        return torch.device(device).type == "cpu" or original(device)

    use_compact.studio_cpu = True
    use_compact.original = original      # TRL's own rule, for a comparison without the patch
    tu._use_triton = use_compact
