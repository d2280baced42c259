"""The optional judge of an evaluation: a chat model the user picks grading each answer against its reference.

    judge = Judge.open("default", device_lock=lock)      # any source studio.models loads, or a run folder
    judge.grade("How much is the Pro?", "The Pro costs $129.", "It costs $99.")
    # {"verdict": "wrong", "reason": "The answer says $99, the reference $129.", "raw": "VERDICT: wrong\\n..."}
    judge.close()                                          # the model freed before anything else loads

The prompt is fixed and shown (``PROMPT`` / ``PROMPT_ZH``, what the app's accordion and ``studio eval --help``
print): a reader can see exactly what the judge was asked. It asks for a ``VERDICT: right|wrong`` line and a
``REASON:`` line; ``parse_verdict`` reads them leniently (case, markdown, Chinese words, a bare first word)
and anything else is 'unclear', never an error. Decoding is greedy with a bounded length (``MAX_NEW_TOKENS``)
so the same answer gets the same verdict every time. A judge is an opinion, not a measurement: the facts
score (studio/scoring.py) stays the deterministic one, and the judge is off unless asked for.
"""

from __future__ import annotations

import gc
import re
from pathlib import Path
from typing import Any, Callable

from .config import GenerationConfig, ModelConfig
from .device import DeviceLock
from .errors import EvalError

MAX_NEW_TOKENS = 64          # a verdict line and one sentence; longer only costs time on a CPU
VERDICTS = ("right", "wrong", "unclear")

PROMPT = """You are grading an answer to a question. The reference answer is correct.
The answer is right when it states the same facts as the reference (numbers, prices, dates, names, codes, yes or no) and contradicts none of them; wording, length and politeness do not matter. It is wrong when a fact of the reference is missing, different or contradicted.

Question: {question}
Reference answer: {reference}
Answer to grade: {answer}

Reply with exactly two lines:
VERDICT: right or wrong
REASON: one short sentence"""

PROMPT_ZH = """你在给一个问题的回答评分。参考答案是正确的。
回答说出了与参考答案相同的事实（数字、价格、日期、名称、编号、是或否），且没有与之矛盾，就是对的；措辞、长短和礼貌用语都不重要。参考答案中的事实缺失、不同或被否定，就是错的。

问题：{question}
参考答案：{reference}
待评分的回答：{answer}

请只回复两行：
VERDICT: right 或 wrong
REASON: 一句简短的理由"""

_CJK = re.compile(r"[\u3400-\u9fff]")
# "VERDICT: right", "**Verdict:** Wrong", "结论：错误"; the word after the colon is read by _verdict_of.
_VERDICT_LINE = re.compile(r"^[\s*#>\-]*(?:verdict|判定|判断|结论|评判)[\s*]*[:：][\s*]*(.*)$", re.I)
_REASON_LINE = re.compile(r"^[\s*#>\-]*(?:reason|理由|原因)[\s*]*[:：][\s*]*(.*)$", re.I)
_EN = {"right": "right", "correct": "right", "yes": "right", "true": "right",
       "wrong": "wrong", "incorrect": "wrong", "no": "wrong", "false": "wrong"}
# Longest first: "不正确" must not be read as "正确".
_ZH = (("不正确", "wrong"), ("不对", "wrong"), ("错误", "wrong"), ("错", "wrong"), ("否", "wrong"),
       ("正确", "right"), ("对", "right"), ("是", "right"))


def language_of(question: str) -> str:
    """'zh' for a question written in Chinese (any CJK character), else 'en': the judge is asked in its words."""
    return "zh" if _CJK.search(question or "") else "en"


def judge_prompt(question: str, reference: str, answer: str, lang: str | None = None) -> str:
    """The text the judge reads: ``PROMPT`` (or ``PROMPT_ZH`` for a Chinese question) filled in."""
    template = PROMPT_ZH if (lang or language_of(question)) == "zh" else PROMPT
    # str.replace, not format: a brace in an answer ("{x}") must not break the prompt
    return (template.replace("{question}", question.strip()).replace("{reference}", reference.strip())
            .replace("{answer}", answer.strip() or "(empty)"))


def _verdict_of(text: str) -> str | None:
    """'right' / 'wrong' from the start of ``text``; None when it is neither or both ('right or wrong',
    the template echoed back)."""
    text = text.strip().strip("*_`\"'[]() ")
    words = re.findall(r"[A-Za-z]+|[\u3400-\u9fff]+", text)[:3]
    found = set()
    for w in words:
        if w.lower() in _EN:
            found.add(_EN[w.lower()])
        elif _CJK.match(w):
            found.update(v for k, v in _ZH if w.startswith(k) and not (k in ("正确", "对") and w.startswith("不")))
            break                      # Chinese words run together: only the first is the verdict
    if not words:
        return None
    first = words[0].lower()
    if first not in _EN and not _CJK.match(first):
        return None                    # "VERDICT: maybe", "VERDICT: partly right"
    return found.pop() if len(found) == 1 else None


def parse_verdict(reply: str) -> dict:
    """{'verdict': 'right'|'wrong'|'unclear', 'reason': str} from the judge's reply; never raises."""
    reply = str(reply or "")
    lines = [ln.strip() for ln in reply.splitlines() if ln.strip()]
    verdicts, reason, rest_of_verdict = [], "", ""
    for ln in lines:
        m = _VERDICT_LINE.match(ln)
        if m:
            v = _verdict_of(m.group(1))
            verdicts.append(v)
            if not rest_of_verdict:    # "VERDICT: wrong - the price differs": the words after the verdict
                rest_of_verdict = re.sub(r"^[\s*]*[A-Za-z]+|^[\s*]*[\u3400-\u9fff]+", "", m.group(1), count=1)
            continue
        m = _REASON_LINE.match(ln)
        if m and not reason:
            reason = m.group(1).strip()
    if not verdicts and lines:         # no VERDICT line: a reply that opens with the word itself
        verdicts = [_verdict_of(lines[0])]
    clear = {v for v in verdicts if v}
    verdict = clear.pop() if len(clear) == 1 and None not in verdicts[:1] else "unclear"
    if not reason and verdict != "unclear":
        reason = rest_of_verdict.strip(" -—:：,.*") or " ".join(ln for ln in lines if not _VERDICT_LINE.match(ln))
    elif not reason:                   # unreadable: what it did say is the only reason there is
        reason = " ".join(lines)
    return {"verdict": verdict, "reason": _short(reason)}


def _short(text: str, limit: int = 240) -> str:
    # control characters (a confused model's bytes) would only garble the table
    text = " ".join("".join(c for c in text if c.isprintable() or c.isspace()).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def is_run_folder(source: str) -> bool:
    """A finished run's folder (config.yaml and an adapter): the judge is that run's tuned model."""
    from .runs import RunFolder
    p = Path(source).expanduser()
    return p.is_dir() and (p / "config.yaml").is_file() and RunFolder(p).has_adapter()


def check_source(source: str) -> None:
    """Refuse a judge that cannot judge before any answer is generated (minutes of answers would end in an
    error): the source must load a tokenizer with a chat template. A run folder has its own (checked on open)."""
    if is_run_folder(source):
        return
    from .models.load import load_tokenizer
    tok = load_tokenizer(ModelConfig(source=source))     # not found, offline...: the model's own message
    if not getattr(tok, "chat_template", None):
        raise EvalError("The judge model '{source}' has no chat template, so it cannot be asked a question; pick "
                        "a chat (instruct) model.", code="eval.judge_no_template", source=source)


class Judge:
    """One loaded judge for one evaluation. ``reply`` (prompt text → reply text) replaces the model: tests,
    and any caller with its own way of asking."""

    def __init__(self, reply: Callable[[str], str], name: str, chat: Any = None):
        self._reply, self.name, self._chat = reply, name, chat

    @classmethod
    def open(cls, source: str, *, device_lock: DeviceLock) -> "Judge":
        """Load the judge: 'default', a folder, a .gguf, a Hub id (when online), or a finished run's folder
        (the base with that run's adapter). Greedy, no system prompt, at most ``MAX_NEW_TOKENS``."""
        from .inference import ChatSession

        gen = GenerationConfig(max_new_tokens=MAX_NEW_TOKENS, temperature=0.0, repetition_penalty=1.0)
        device_lock.check_free_elsewhere("The judge")
        if is_run_folder(source):
            chat = ChatSession.from_run(source, gen, device_lock=device_lock, system_prompt="")
        else:
            from .models.load import load_model, load_tokenizer
            cfg = ModelConfig(source=source)
            tok = load_tokenizer(cfg)
            chat = ChatSession(load_model(cfg, for_training=False), tok, tok.chat_template, gen,
                               device_lock=device_lock)
        return cls(lambda text: chat.reply(None, text, use_adapter=True), source, chat)

    def grade(self, question: str, reference: str, answer: str) -> dict:
        """{'verdict', 'reason', 'raw'}: the judge's reading of one answer. A reply it cannot read, or a
        prompt longer than the judge reads, is 'unclear'; a judge that fails to answer at all (out of
        memory...) raises, as any answer would."""
        from .errors import ChatError
        try:
            raw = self._reply(judge_prompt(question, reference, answer))
        except ChatError as e:
            if e.code != "chat.prompt_too_long":
                raise
            # One long answer must not end the evaluation: the judge could not read it, so no verdict. The
            # error goes with it so the table can say why in the reader's language (``reason`` is English).
            return {"verdict": "unclear", "reason": e.message, "raw": "", "error": e.to_dict()}
        return {**parse_verdict(raw), "raw": str(raw or "")}

    def close(self) -> None:
        """Free the judge's model (the evaluation's next model, or training, needs the memory)."""
        self._chat = self._reply = None
        gc.collect()
        from .models.load import free_gpu
        free_gpu()


def totals(verdicts: list[dict | None]) -> dict:
    """{'right', 'wrong', 'unclear', 'judged'} over one model's verdicts; rows without one left out."""
    got = [v["verdict"] for v in verdicts if v]
    return {"right": got.count("right"), "wrong": got.count("wrong"), "unclear": got.count("unclear"),
            "judged": len(got)}
