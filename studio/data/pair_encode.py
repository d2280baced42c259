"""Tokenising preference pairs, labelled answers and prompts through the run's chat template, as SFT renders.

The prompt is the conversation up to the answer with the generation prompt (``render.format_prompt``); an
answer's tokens are what follows the prompt's tokens in the full render of prompt + answer, so each answer
ends as the template ends an assistant turn. The prompt's tokens must be a true prefix of the full render's,
else the row is refused with that said. The length rule is SFT's: prompt + the longer answer against
``data.max_length``; over it, the answers are cut (``overlong: truncate``) or the row left out (``drop``), and
a row whose prompt leaves no room for any answer token is left out.
"""

from __future__ import annotations

from .messages import BadRow
from .render import format_prompt, render
from .types import EncodedLabelled, EncodedPair, EncodedPrompt


class TooLong(Exception):
    """The row is left out for its length; ``tokens`` is its length."""

    def __init__(self, tokens: int):
        super().__init__(tokens)
        self.tokens = tokens


def _tokens(tokenizer, text: str) -> tuple[list[int], list[int]]:
    """Token ids and each token's end in the text (empty for slow tokenizers, which have no offsets)."""
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [e for _, e in enc["offset_mapping"]]
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]), []


def prompt_part(tokenizer, jinja: str, prompt: list[dict]) -> tuple[str, list[int]]:
    text = format_prompt(tokenizer, jinja, prompt)
    return text, _tokens(tokenizer, text)[0]


def answer_part(tokenizer, jinja: str, prompt: list[dict], answer: list[dict], prompt_text: str,
                prompt_ids: list[int], which: str) -> tuple[list[int], str, list[int]]:
    """(answer ids, full text, token ends of the full text) of prompt + answer."""
    full = render(tokenizer, jinja, prompt + answer)
    if not full.startswith(prompt_text):
        raise BadRow(f"the chat template writes the prompt differently when the {which} answer follows, so the "
                     "answer cannot be told from the prompt")
    ids, ends = _tokens(tokenizer, full)
    if ids[:len(prompt_ids)] != prompt_ids:
        raise BadRow(f"the prompt's tokens are not the start of the tokens of the prompt with the {which} answer (the "
                     "tokenizer joins the answer's first letters to the prompt), so the answer cannot be told apart")
    return ids[len(prompt_ids):], full, ends


def _text_of(tokenizer, full: str, ends: list[int], ids: list[int], n: int) -> str:
    """The text of the first ``n`` tokens of ``full``."""
    if n >= len(ids):
        return full
    return full[:ends[n - 1]] if ends else tokenizer.decode(ids[:n])


def fit_answers(prompt_len: int, answers: list[list[int]], cfg) -> tuple[list[list[int]], bool]:
    """The answers within the maximum length and whether they were cut; TooLong when the row is left out."""
    longest = prompt_len + max(len(a) for a in answers)
    if longest <= cfg.max_length:
        return answers, False
    room = cfg.max_length - prompt_len
    if cfg.overlong == "drop" or room <= 0:
        raise TooLong(longest)
    return [a[:room] for a in answers], True


def encode_pair(tokenizer, jinja: str, pair, cfg) -> tuple[EncodedPair, int]:
    """The pair's tokens and its length before any cut (prompt + the longer answer)."""
    p_text, p_ids = prompt_part(tokenizer, jinja, pair.prompt)
    c_ids, c_full, c_ends = answer_part(tokenizer, jinja, pair.prompt, pair.chosen, p_text, p_ids, "chosen")
    r_ids, r_full, r_ends = answer_part(tokenizer, jinja, pair.prompt, pair.rejected, p_text, p_ids, "rejected")
    length = len(p_ids) + max(len(c_ids), len(r_ids))
    (c_cut, r_cut), cut = fit_answers(len(p_ids), [c_ids, r_ids], cfg)
    n = len(p_ids)
    return EncodedPair(row=pair.row, prompt_ids=p_ids, chosen_ids=c_cut, rejected_ids=r_cut,
                       text=_text_of(tokenizer, c_full, c_ends, p_ids + c_ids, n + len(c_cut)),
                       rejected_text=_text_of(tokenizer, r_full, r_ends, p_ids + r_ids, n + len(r_cut)),
                       truncated=cut), length


def encode_labelled(tokenizer, jinja: str, item, cfg) -> tuple[EncodedLabelled, int]:
    p_text, p_ids = prompt_part(tokenizer, jinja, item.prompt)
    which = "desirable" if item.label else "undesirable"
    a_ids, full, ends = answer_part(tokenizer, jinja, item.prompt, item.completion, p_text, p_ids, which)
    (a_cut,), cut = fit_answers(len(p_ids), [a_ids], cfg)
    return EncodedLabelled(row=item.row, prompt_ids=p_ids, completion_ids=a_cut, label=item.label,
                           text=_text_of(tokenizer, full, ends, p_ids + a_ids, len(p_ids) + len(a_cut)),
                           truncated=cut), len(p_ids) + len(a_ids)


def encode_prompt(tokenizer, jinja: str, item, cfg) -> tuple[EncodedPrompt, int]:
    """A GRPO prompt; left out (TooLong) when it leaves no room within the maximum length for an answer."""
    p_text, p_ids = prompt_part(tokenizer, jinja, item.messages)
    if len(p_ids) >= cfg.max_length:
        raise TooLong(len(p_ids))
    return EncodedPrompt(row=item.row, prompt_ids=p_ids, prompt=p_text, messages=item.messages,
                         reference=item.reference), len(p_ids)
