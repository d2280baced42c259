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

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)     # TRL's use_liger_kernel deprecation note
        trainer = SFTTrainer(model=model, args=args, train_dataset=train, eval_dataset=validation,
                             processing_class=tokenizer, callbacks=callbacks)
    if precision == "fp16":
        for p in model.parameters():
            if p.requires_grad and p.dtype != torch.float32:
                p.data = p.data.float()
    return trainer
