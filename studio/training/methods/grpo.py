"""GRPO (group relative policy optimisation): the model answers each question ``grpo.generations`` times
itself, the rewards of ``grpo.rewards`` (studio/training/rewards.py) score every answer, and it learns to make
the answers that scored above their group's mean likelier. TRL's ``GRPOTrainer`` does the work with its own
generation (transformers ``generate``; no vLLM).

The dataset holds each row's rendered prompt (``prompt``: the studio's chat template, system prompt and
generation prompt included, as plain text so TRL renders nothing again) with its token ids (``prompt_ids``,
where generation starts), the row's own answer as ``reference`` and its last question as ``question``; TRL
passes these columns to every reward function.

``training.batch_size`` counts questions: TRL's micro-batch counts answers, so it is batch size x generations,
and every batch TRL generates for then holds whole groups of one question's answers, the rule TRL checks
(generation batch divisible by ``num_generations``) holding by construction.

With ``grpo.kl_beta`` above 0 the KL penalty's reference is the model as the run started, as for DPO
(``reference.base_as_reference``): TRL copies the starting adapter as a second adapter 'ref'; for a fresh adapter
(LoRA's B starts at zero) that copy is the base and is removed, so the reference is the adapter switched off and
nothing is duplicated; a run started from an SFT run's adapter (``--from-run``) keeps it (a few MB), so the penalty
holds the model near the SFT model it started from. (Removing it there failed the run at its first step: TRL had
already chosen to read the reference through 'ref'.) The saved adapter folder holds the trained adapter only.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ...config import REWARDS, StudioConfig
from ..args import ResolvedArgs, build_training_args
from .reference import base_as_reference

DATA = "prompt"
COLUMNS = ("prompt", "prompt_ids", "reference", "question")
# What TRL's GRPOTrainer logs each step, as it names them: the total reward (weighted sum) and its spread over
# a question's answers, each reward's mean, the answers' length in tokens and the share cut at the limit, the KL
# to the reference (logged when grpo.kl_beta > 0), the entropy and the share of clipped ratios.
METRICS: tuple[str, ...] = ("reward", "reward_std", "frac_reward_zero_std",
                            *(f"rewards/{name}/mean" for name in REWARDS), "completions/mean_length",
                            "completions/clipped_ratio", "kl", "entropy", "clip_ratio/region_mean")


def training_args(cfg: StudioConfig, output_dir: str, on_cuda: bool, dtype: torch.dtype, has_validation: bool,
                  train_rows: int = 0) -> ResolvedArgs:
    """TRL's ``GRPOConfig``: the shared arguments, the micro-batch in answers, the generation and the KL term."""
    from trl import GRPOConfig

    from ..rewards import reward_weights

    t, g = cfg.training, cfg.grpo
    answers = t.batch_size * g.generations
    resolved = build_training_args(cfg, output_dir, on_cuda, dtype, has_validation, train_rows, GRPOConfig, dict(
        per_device_train_batch_size=answers,
        per_device_eval_batch_size=answers,
        num_generations=g.generations,
        max_completion_length=g.max_answer_tokens,
        beta=g.kl_beta,
        reward_weights=reward_weights(g),
        # The job checkpoints the layers itself (models/lora.py); GRPOConfig's own default is on.
        gradient_checkpointing=False,
        # TRL's Liger path replaces the GRPO loss, not only the layers; the plain loss is the one tested.
        use_liger_kernel=False,
        liger_kernel_config=None,
        log_completions=False,
    ))
    resolved.args.studio_grpo = g       # the trainer's rewards read it (the method interface passes the args)
    resolved.notes.append(f"GRPO: each step writes {g.generations} answers to each of {t.batch_size} question(s) "
                          f"(a micro-batch of {answers} answers, at most {g.max_answer_tokens} tokens each) and scores "
                          f"them by {', '.join(g.reward_list())}.")
    return resolved


def dataset(rows: Sequence) -> Any:
    """A ``datasets.Dataset`` of ``EncodedPrompt`` rows: the rendered prompt and its token ids, the reference answer,
    the question."""
    from datasets import Dataset

    return Dataset.from_dict({"prompt": [r.prompt for r in rows], "prompt_ids": [list(r.prompt_ids) for r in rows],
                              "reference": [r.reference for r in rows],
                              "question": [question_of(r.messages) for r in rows]})


def question_of(messages: list[dict]) -> str:
    """The last user message: the facts it states already are not counted as learned (scoring.score_answer)."""
    return next((str(m.get("content") or "") for m in reversed(messages or []) if m.get("role") == "user"), "")


def collator(args: Any, tokenizer: Any) -> None:
    """None: GRPO batches its own generations."""
    return None


def step_tokens(cfg: StudioConfig) -> int:
    """Each question of the micro-batch, ``generations`` times, at the full prompt and answer length."""
    return cfg.training.batch_size * cfg.grpo.generations * (cfg.data.max_length + cfg.grpo.max_answer_tokens)


def worst_batch(rows: list, batch_size: int, collator: Any) -> tuple[dict, int]:
    """The longest prompts, each ``generations`` times with an answer of ``max_answer_tokens``, as the batch
    GRPO's loss reads after generating (``collator``: the trainer's ``GroupBatches``, which knows both): what
    one forward and backward pass holds at its longest, which checkpointing 'auto' measures."""
    generations, answer = collator.generations, collator.max_answer_tokens
    longest = sorted(rows, key=lambda r: len(r.prompt_ids), reverse=True)[:batch_size]
    width = max((len(r.prompt_ids) for r in longest), default=1)
    prompt = torch.zeros(len(longest) * generations, width, dtype=torch.long)
    prompt_mask = torch.zeros_like(prompt)
    for i, r in enumerate(longest):
        for k in range(generations):       # left-padded, as TRL pads prompts for generation
            prompt[i * generations + k, width - len(r.prompt_ids):] = torch.tensor(r.prompt_ids)
            prompt_mask[i * generations + k, width - len(r.prompt_ids):] = 1
    n = prompt.shape[0]
    completion = torch.zeros(n, answer, dtype=torch.long)
    batch = {"prompt_ids": prompt, "prompt_mask": prompt_mask, "completion_ids": completion,
             "completion_mask": torch.ones_like(completion), "advantages": torch.ones(n),
             "num_items_in_batch": torch.tensor(float(n * answer))}
    if collator.kl_beta > 0:
        batch["ref_per_token_logps"] = torch.zeros(n, answer)
    return batch, n * (width + answer)


class GroupBatches:
    """GRPO's collator (TRL's: the rows as they are), knowing what a micro-batch of answers holds."""

    def __init__(self, generations: int, max_answer_tokens: int, kl_beta: float):
        self.generations, self.max_answer_tokens, self.kl_beta = generations, max_answer_tokens, kl_beta

    def __call__(self, features: list) -> list:
        return features


def trainer(model, args, tokenizer, train, validation, callbacks, precision: str, collator: Any = None):
    """TRL's GRPOTrainer over the rendered prompts, with the rewards ``grpo.rewards`` names (``args.studio_grpo``)."""
    import warnings

    from ..rewards import reward_functions

    g = args.studio_grpo
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        out = _trainer_class()(model=model, reward_funcs=reward_functions(g, train["reference"]), args=args, train_dataset=train,
                               eval_dataset=validation, processing_class=tokenizer, callbacks=callbacks)
    out.data_collator = GroupBatches(g.generations, g.max_answer_tokens, g.kl_beta)
    out.prompt_ids_of = {}
    for part in (train, validation):      # the generation starts from the very token ids the data pipeline made
        if part is not None:
            out.prompt_ids_of.update(zip(part["prompt"], part["prompt_ids"]))
    unwrapped = out.accelerator.unwrap_model(out.model)
    base_as_reference(unwrapped)    # a fresh adapter's copy is the base: dropped; a trained one's is kept
    if precision == "fp16":       # float16 mixed precision's gradient scaler needs float32 adapters (as sft.py)
        for p in model.parameters():
            if p.requires_grad and p.dtype != torch.float32:
                p.data = p.data.float()
    return out


def _trainer_class():
    from trl import GRPOTrainer

    class _StudioGRPOTrainer(GRPOTrainer):
        """The prompts are the studio's rendered text: generation starts from the rows' own token ids (the data
        pipeline's, ``prompt_ids_of``), a text not among them tokenised as data/render.py does (no special tokens
        added: the template writes its own)."""

        def _tokenize_prompts(self, prompts: list):
            if prompts and isinstance(prompts[0], str):
                known = getattr(self, "prompt_ids_of", {})
                ids = [known.get(p) or self.processing_class(text=p, add_special_tokens=False)["input_ids"]
                       for p in prompts]
                return [list(i) for i in ids], None, {}
            return super()._tokenize_prompts(prompts)

        def _prepare_inputs(self, inputs):
            if isinstance(inputs, dict) and "completion_ids" in inputs:    # worst_batch's, measured as it is
                if not hasattr(self, "current_gradient_accumulation_steps"):   # set by train(); before it, its value
                    self.current_gradient_accumulation_steps = self.args.gradient_accumulation_steps
                return super(GRPOTrainer, self)._prepare_inputs(inputs)
            return super()._prepare_inputs(inputs)

    return _StudioGRPOTrainer


def time_note(seconds_per_step: float, steps_done: int, total_steps: int) -> str:
    """How long the rest of a run takes at the pace of its steps so far, in words the app shows after the first
    steps (a GRPO step is mostly generation, so its pace is steady and the first steps tell it)."""
    left = max(0, total_steps - steps_done)
    return (f"Training. One step takes about {_duration(seconds_per_step)}; the run needs about "
            f"{_duration(seconds_per_step * left)} more ({left} to go).")


def pace(row: dict, total_steps: int) -> dict | None:
    """The figures of ``time_note`` after a training metrics row (its step and the time left at the pace of this
    session's steps, ``eta_s``): ``step_s`` (one step), ``left`` (steps), ``rest_s`` (their time); None at the last
    step or before the pace is known. The job shows them as its message while training (``TrainingJob._on_row``),
    which the Train tab's status line says in the user's language."""
    left = total_steps - int(row.get("step") or 0)
    eta = row.get("eta_s")
    if row.get("type") != "train" or left <= 0 or eta is None:      # 0.0: steps shorter than its rounding
        return None
    return {"step_s": round(eta / left, 1), "left": left, "rest_s": round(eta, 1)}


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
