"""The rewards GRPO scores its answers by (``grpo.rewards``), each a plain function with TRL's reward signature:
``reward(prompts, completions, reference, question, **kwargs) -> list[float]``, one score per answer, where
``reference`` and ``question`` are the dataset's columns of the row each answer belongs to.

- ``facts``: the share of the reference's checkable facts (amounts, numbers with units, codes, names, yes/no:
  ``studio/scoring.py``, the scored evaluation's own extraction) the answer states, less the share it
  contradicts: 1 = every fact right, -1 = every fact contradicted. A reference with nothing to check scores by
  similarity instead, so such a row still tells the answers apart.
- ``format``: 1 when the answer's last non-empty line matches ``grpo.format_pattern``, else 0.
- ``length``: 1 inside ``grpo.length_min_words``..``length_max_words`` words, falling off linearly to 0 at
  half the fewest or twice the most (Chinese and Japanese characters count as one word each).
- ``similarity``: chrF to the reference (0-1).

``reward_functions(cfg.grpo)`` gives the functions the config names, each named as TRL logs it
(``rewards/<name>/mean``), and ``reward_weights(cfg.grpo)`` their weights.
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

from ..config import REWARDS, GrpoConfig
from ..scoring import score_answer, shared_facts, similarity

Reward = Callable[..., list[float]]


def _text(completion) -> str:
    """An answer as text: TRL passes a string for text prompts, a list of messages for conversational ones."""
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion or "")


def facts_score(answer: str, reference: str, question: str = "", ignore: frozenset | set = frozenset()) -> float:
    """(found - contradicted) / facts of the reference, in -1..1; chrF/100 when it has nothing to check.
    ``ignore``: names every reference shares (``scoring.shared_facts``), which style alone gets right."""
    s = score_answer(answer, reference, question, ignore)
    if not s["facts"]:
        return (s["similarity"] or 0.0) / 100
    return (len(s["found"]) - len(s["contradicted"])) / s["facts"]


def format_score(answer: str, pattern: str) -> float:
    lines = [line.strip() for line in answer.strip().splitlines() if line.strip()]
    return 1.0 if lines and re.fullmatch(pattern, lines[-1]) else 0.0


_CJK_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def word_count(text: str) -> int:
    """Words of Latin-script text, plus one for every Chinese or Japanese character (they have no spaces)."""
    return len(_CJK_RE.findall(text)) + len(_CJK_RE.sub(" ", text).split())


def length_score(answer: str, low: int, high: int) -> float:
    n = word_count(answer)
    if low <= n <= high:
        return 1.0
    if n < low:       # 0 at half the fewest: an empty answer to a 'at least 5 words' rule scores 0
        return max(0.0, (n - low / 2) / (low / 2)) if low > 0 else 1.0
    return max(0.0, 1.0 - (n - high) / high)      # 0 at twice the most


def reward_functions(g: GrpoConfig, references: Sequence[str] = ()) -> list[Reward]:
    """The functions ``g.rewards`` names (``cfg.grpo``), in its order. ``references``: the training rows' answers,
    whose shared names (a signature such as "— Aurora Support") ``facts`` does not count, as the scored evaluation."""
    ignore = shared_facts(list(references)) if "facts" in g.reward_list() else set()
    makers: dict[str, Callable[[str, str, str], float]] = {
        "facts": lambda a, ref, q: facts_score(a, ref, q, ignore),
        "format": lambda a, ref, q: format_score(a, g.format_pattern),
        "length": lambda a, ref, q: length_score(a, g.length_min_words, g.length_max_words),
        "similarity": lambda a, ref, q: (similarity(a, ref) or 0.0) / 100,
    }
    assert set(makers) == set(REWARDS), "config.REWARDS and the rewards here name the same functions"
    return [_reward(name, makers[name]) for name in g.reward_list()]


def _reward(name: str, score: Callable[[str, str, str], float]) -> Reward:
    def reward(prompts: Sequence, completions: Sequence, reference: Sequence[str] = (), question: Sequence[str] = (),
               **kwargs) -> list[float]:
        refs = list(reference) or [""] * len(completions)
        asked = list(question) or [""] * len(completions)
        return [float(score(_text(c), r or "", q or "")) for c, r, q in zip(completions, refs, asked)]

    reward.__name__ = reward.__qualname__ = name       # TRL logs rewards/<__name__>/mean
    return reward


def reward_weights(g: GrpoConfig) -> list[float] | None:
    """``grpo.reward_weights`` as numbers (None: TRL weighs every reward 1)."""
    return g.weight_list()
