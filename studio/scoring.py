"""Scoring an answer against its reference: which of the reference's checkable facts the answer states.

    s = score_answer("The Aurora Pro costs $99.", "The Aurora Pro (AK-200) costs $129.")
    s["right"]        # False
    s["explanation"]  # "expected $129, the answer says $99; missing AK-200"
    s["similarity"]   # chrF, 0-100 (sacrebleu)

A *fact* is something a reader can check without judgement: an amount of money with its currency, a
number with its unit (45 days, 2-year, 8 am, 1.7 L, 45天), a code (E4, AK-200, 1-800-555-0142), a name
(capitalised words inside a sentence, or text in Chinese quotes), a plain number, or a yes/no the
reference opens with. Each fact of the reference is *found* in the answer, *contradicted* by it (the
answer gives another value of the same kind: another amount in the same currency, another number
with the same unit, another code with the same letters, the opposite yes/no) or *missing*.

The verdict is deterministic: an answer is right when it contradicts no fact, states every amount,
number, code and yes/no of the reference, and at least half of its names. Facts the question itself
states, and names every reference of the set shares (a signature such as "— Aurora Support"), are not
counted. A reference left with no number, code or yes/no ("E4 means limescale buildup…") is judged by its
content words too (five letters or more, not in the question): at least a third must be in the answer.
A reference with nothing to check gets no verdict (``right`` None); its similarity still says how close
the words are.
Works on English and Chinese text (full-width digits, Chinese units and numerals).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_CURRENCY_SIGNS = {"$": "USD", "US$": "USD", "€": "EUR", "£": "GBP", "¥": "CNY", "￥": "CNY"}
_CURRENCY_WORDS = {"dollar": "USD", "dollars": "USD", "usd": "USD", "euro": "EUR", "euros": "EUR", "eur": "EUR",
                   "pound": "GBP", "pounds": "GBP", "gbp": "GBP", "yuan": "CNY", "rmb": "CNY", "cny": "CNY",
                   "元": "CNY", "块": "CNY", "人民币": "CNY", "美元": "USD", "欧元": "EUR", "英镑": "GBP"}

# Unit spellings → one name, so "2-year", "2 years" and "2年" are the same fact.
_UNITS = {
    "year": ("years", "year", "yrs", "yr", "年"), "month": ("months", "month", "个月", "月"),
    "week": ("weeks", "week", "wks", "周", "星期", "个星期"), "day": ("days", "day", "天", "日"),
    "hour": ("hours", "hour", "hrs", "hr", "h", "小时", "个小时"),
    "minute": ("minutes", "minute", "mins", "min", "分钟"), "second": ("seconds", "second", "secs", "sec", "s", "秒", "秒钟"),
    "am": ("a.m.", "am"), "pm": ("p.m.", "pm"), "°C": ("°c", "℃", "degrees celsius", "degrees", "度"), "°F": ("°f", "℉"),
    "%": ("%", "percent", "per cent", "％"), "L": ("litres", "liters", "litre", "liter", "l", "升"),
    "ml": ("ml", "millilitres", "milliliters", "毫升"), "V": ("volts", "volt", "v", "伏"), "W": ("watts", "watt", "w", "瓦"),
    "dB": ("db", "decibels"), "GHz": ("ghz",), "MHz": ("mhz",), "cm": ("centimetres", "centimeters", "cm", "厘米"),
    "mm": ("mm", "millimetres", "millimeters", "毫米"), "m": ("metres", "meters", "m", "米"),
    "km": ("km", "kilometres", "kilometers", "公里"), "kg": ("kg", "kilograms", "公斤", "千克"), "g": ("grams", "g", "克"),
    "GB": ("gb",), "MB": ("mb",), "TB": ("tb",), "times": ("times", "次", "倍"), "part": ("parts", "part", "份"),
    "item": ("pieces", "piece", "pack", "个", "件"), "business day": ("business days", "business day", "working days",
                                                                      "working day", "个工作日", "工作日"),
}
_UNIT_OF = {spelling: name for name, spellings in _UNITS.items() for spelling in spellings}
_UNIT_RE = "|".join(sorted((re.escape(s) for s in _UNIT_OF), key=len, reverse=True))

_WORD_NUMBERS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
_WORD_NUMBERS.update({"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "hundred": "100"})
_ZH_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}

_NUM = r"\d+(?:[.,]\d+)*"
_MONEY_RE = re.compile(rf"(US\$|[$€£¥￥])\s?({_NUM})|({_NUM})\s?(dollars?|usd|euros?|eur|pounds?|gbp|yuan|rmb|cny|"
                       rf"人民币|美元|欧元|英镑|元|块)", re.I)
_QUANTITY_RE = re.compile(rf"({_NUM})(?:\s?-\s?|\s)?({_UNIT_RE})(?![A-Za-z])", re.I)
_TIME_RE = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s?(a\.m\.|p\.m\.|am|pm)(?![A-Za-z])", re.I)
_CODE_RE = re.compile(r"(?<![\w-])(?:[A-Za-z]*[A-Z][A-Za-z]*-?\d+[A-Za-z0-9]*|\d{1,4}(?:-\d{2,4}){2,})(?![\w-])")
_NUMBER_RE = re.compile(rf"(?<![\w.,]){_NUM}(?![\w])")
_NAME_RE = re.compile(r"(?<![A-Za-z])(?:[A-Z]|i[A-Z])[A-Za-z'’]*(?:\s+(?:of\s+|the\s+|de\s+)?(?:[A-Z]|i[A-Z])[A-Za-z'’]+)*")
_ZH_QUOTED_RE = re.compile(r"[「“《『]([^」”》』]{1,30})[」”》』]")
_SENTENCE_START_RE = re.compile(r"(?:^|[.!?]\s+|\n\s*)$")
# Words that open English sentences with a capital without being names ("The Aurora Pro…").
_OPENERS = set("the a an every each our your my we you it its this that these those there here please if when what "
               "how why where which who yes no sure happy thanks all any some one no not and but or so also just "
               "then after before for from in on at to with by".split())
_NOT_NAMES = {"i", "i'm", "i'll", "i've", "i'd", "ok", "okay", "hi", "hello", "thanks", "yes", "no"}
_YES = ("yes", "yeah", "yep", "sure", "of course", "absolutely", "是的", "是", "对", "可以", "能", "有")
_NO = ("no", "nope", "not", "unfortunately", "sorry", "不", "没有", "不能", "不可以", "不是", "否")
_GREETING_RE = re.compile(r"^\s*(?:happy to help|sure thing|great question|hi|hello|thanks[^.!?]*)[!.,]\s*", re.I)


@dataclass
class Fact:
    kind: str        # money | quantity | time | code | number | name | yesno
    text: str        # as the reference wrote it
    key: tuple       # what is compared: (currency, value), (unit, value), ...

    def group(self) -> tuple:
        """Values in one group can contradict each other (same currency, same unit, same code letters)."""
        return (self.kind, self.key[0]) if self.kind in ("money", "quantity", "time", "code", "yesno") else ()


def normalise(text: str) -> str:
    """Full-width digits and letters to ASCII, English and simple Chinese number words to digits."""
    text = unicodedata.normalize("NFKC", text or "")
    text = re.sub(r"\b(" + "|".join(_WORD_NUMBERS) + r")\b", lambda m: _WORD_NUMBERS[m.group(1).lower()], text,
                  flags=re.I)
    return re.sub(r"[零一二两三四五六七八九十]+(?=[年个月周天日小时分钟秒元块份次倍岁])", _zh_number, text)


def _zh_number(m: re.Match) -> str:
    s = m.group(0)
    if "十" not in s:
        return "".join(str(_ZH_DIGITS[c]) for c in s) if all(c in _ZH_DIGITS for c in s) else s
    tens, _, ones = s.partition("十")
    return str((_ZH_DIGITS.get(tens, 1) if tens else 1) * 10 + (_ZH_DIGITS.get(ones, 0) if ones else 0))


def _value(number: str) -> str:
    """'1,500' and '1500' are one value; '3.50' is '3.5'."""
    n = number.replace(",", "") if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", number) else number.replace(",", ".")
    try:
        f = float(n)
    except ValueError:
        return number
    return str(int(f)) if f == int(f) else str(f)


def extract_facts(text: str) -> list[Fact]:
    """The checkable facts of a text, each once, in the order they appear."""
    text = normalise(text)
    facts: list[Fact] = []
    taken: list[tuple[int, int]] = []      # spans already read as a fact, so '$129' is not also '129'

    def add(kind: str, span: tuple[int, int], shown: str, key: tuple) -> None:
        if any(a < span[1] and span[0] < b for a, b in taken):
            return
        taken.append(span)
        if not any(f.kind == kind and f.key == key for f in facts):
            facts.append(Fact(kind, shown, key))

    for m in _MONEY_RE.finditer(text):
        if m.group(1):
            currency, number = _CURRENCY_SIGNS[m.group(1).upper() if m.group(1) != "¥" else "¥"], m.group(2)
        else:
            currency, number = _CURRENCY_WORDS[m.group(4).lower()], m.group(3)
        add("money", m.span(), m.group(0).strip(), (currency, _value(number)))
    for m in _TIME_RE.finditer(text):
        half = "am" if m.group(3).lower().startswith("a") else "pm"
        add("time", m.span(), m.group(0).strip(), ("clock", f"{int(m.group(1))}:{m.group(2) or '00'} {half}"))
    for m in _QUANTITY_RE.finditer(text):
        unit = _UNIT_OF.get(m.group(2).lower(), _UNIT_OF.get(m.group(2)))
        if unit and unit not in ("am", "pm"):
            add("quantity", m.span(), m.group(0).strip(), (unit, _value(m.group(1))))
    for m in _CODE_RE.finditer(text):
        code = m.group(0)
        letters = re.sub(r"[^A-Za-z]", "", code).upper() or "PHONE"
        if letters.lower() in _UNIT_OF or not re.search(r"\d", code):
            continue
        add("code", m.span(), code, (letters, re.sub(r"[^A-Za-z0-9]", "", code).upper()))
    for m in _NUMBER_RE.finditer(text):
        add("number", m.span(), m.group(0), ("", _value(m.group(0))))
    for m in _NAME_RE.finditer(text):
        name = m.group(0)
        start = m.start()
        if _SENTENCE_START_RE.search(text[:start]) is not None:     # "Every Aurora…": drop the first word
            first, _, rest = name.partition(" ")
            if not rest:
                continue                    # one capitalised word opening a sentence: an ordinary word
            if first.lower() in _OPENERS:
                start += len(first) + 1
                name = rest
        if name.lower() in _NOT_NAMES or any(a <= start < b for a, b in taken):
            continue
        if not any(f.kind == "name" and f.key[1] == name.lower() for f in facts):
            facts.append(Fact("name", name, ("", name.lower())))
    for m in _ZH_QUOTED_RE.finditer(text):
        if not any(f.kind == "name" and f.key[1] == m.group(1).lower() for f in facts):
            facts.append(Fact("name", m.group(1), ("", m.group(1).lower())))
    yesno = _yes_or_no(text)
    if yesno:
        facts.insert(0, Fact("yesno", yesno, ("answer", yesno)))
    return facts


def _yes_or_no(text: str) -> str | None:
    """'yes' or 'no' when the text opens with one (after a greeting such as "Happy to help!")."""
    head = _GREETING_RE.sub("", text).strip().lower()
    for word in sorted(_YES + _NO, key=len, reverse=True):
        if head.startswith(word) and (not word.isascii() or not head[len(word):len(word) + 1].isalnum()):
            if word in ("not", "unfortunately", "sorry") and not re.match(r"^(unfortunately|sorry)[, ]", head):
                continue
            return "yes" if word in _YES else "no"
    return None


def shared_facts(references: list[str]) -> set[tuple]:
    """Names every reference of a set states (with at least three references): a house signature such as
    "— Aurora Support", which an answer gets right by style alone, so it is not counted as a fact."""
    refs = [r for r in references if r and r.strip()]
    if len(refs) < 3:
        return set()
    keys = [{(f.kind, f.key) for f in extract_facts(r) if f.kind == "name"} for r in refs]
    return set.intersection(*keys)


def score_answer(answer: str, reference: str, question: str = "", ignore: set[tuple] | frozenset = frozenset()) -> dict:
    """Each fact of ``reference`` found, contradicted or missing in ``answer``; the verdict; chrF similarity.
    Facts the ``question`` already states ("…flashing E4…") and those in ``ignore`` (``shared_facts``) are
    not counted: repeating them shows nothing learned."""
    given = {(f.kind, f.key) for f in extract_facts(question)} | set(ignore)
    ref_facts = [f for f in extract_facts(reference) if (f.kind, f.key) not in given]
    answer_facts = extract_facts(answer)
    plain = normalise(answer).lower()
    found, missing, contradicted = [], [], []
    for fact in ref_facts:
        if _stated(fact, answer_facts, plain):
            found.append(fact)
            continue
        rivals = [a for a in answer_facts if a.group() == fact.group() and fact.group()
                  and not any(r.key == a.key for r in ref_facts)]
        (contradicted if rivals else missing).append((fact, rivals))
    if not any(f.kind != "name" for f in ref_facts):   # "E4 means limescale…": the words are the fact
        named = " ".join(f.key[1] for f in ref_facts if f.kind == "name")
        for term in (w for w in _terms(reference, question) if w not in named):
            fact = Fact("word", term, ("", term))
            (found if term in plain else missing).append(fact if term in plain else (fact, []))
            ref_facts.append(fact)
    strict = [f for f in ref_facts if f.kind not in ("name", "word")]

    def share(kind: str) -> tuple[int, int]:
        return sum(1 for f in found if f.kind == kind), sum(1 for f in ref_facts if f.kind == kind)

    (names_found, names), (words_found, words) = share("name"), share("word")
    if not ref_facts:
        right = None
    else:      # every strict fact, half the names, a third of the content words (a paraphrase keeps fewer)
        right = (not contradicted and all(f in found for f in strict) and 2 * names_found >= names
                 and 3 * words_found >= words)
    return {"right": right, "facts": len(ref_facts), "found": [f.text for f in found],
            "missing": [f.text for f, _ in missing],
            "contradicted": [{"expected": f.text, "answer_says": [r.text for r in rivals]} for f, rivals in contradicted],
            "explanation": explain(right, found, missing, contradicted, len(ref_facts)),
            "similarity": similarity(answer, reference)}


_STOPWORDS = set("""about above after again against also always another because before being below between both
could does doing down during each even every from further have having here into itself just many more most much
must need never only other over same should since some still such than that their them then there these they
this those through under until very what when where which while will with would your yours you're we're it's
don't isn't aren't can't won't doesn't didn't happy help support aurora means thing things""".split())


def _terms(reference: str, question: str) -> list[str]:
    """The content words of a reference that has no number, code or yes/no: words of five letters or more,
    not in the question and not common words, each once (Latin script only)."""
    asked = {re.sub(r"['’]s$", "", w) for w in re.findall(r"[a-z][a-z'’-]+", normalise(question).lower())}
    out: list[str] = []
    for word in re.findall(r"[a-z][a-z'’-]+", normalise(reference).lower()):
        word = word.strip("'’-")
        if len(word) >= 5 and word not in _STOPWORDS and word not in asked and word.rstrip("s") not in asked \
                and word not in out:
            out.append(word)
    return out


def _stated(fact: Fact, answer_facts: list[Fact], plain: str) -> bool:
    if any(a.kind == fact.kind and a.key == fact.key for a in answer_facts):
        return True
    if fact.kind == "name":         # "Sundays" is stated by "Sunday"
        return fact.key[1] in plain or fact.key[1].rstrip("s") in plain
    if fact.kind == "number":     # a plain number may sit inside an amount or quantity of the answer
        return any(a.key[-1] == fact.key[1] for a in answer_facts if a.kind in ("money", "quantity", "number"))
    if fact.kind == "code":
        return fact.key[1] in re.sub(r"[^a-z0-9]", "", plain).upper()
    return False


def explain(right: bool | None, found: list, missing: list, contradicted: list, total: int) -> str:
    """One line a person reads: what was expected and what the answer said instead."""
    if right is None:
        return "no checkable facts in the reference (numbers, codes, names): judged by similarity only"
    parts = [f"expected {f.text}, the answer says {', '.join(r.text for r in rivals)}" for f, rivals in contradicted]
    if missing:
        parts.append("missing " + ", ".join(f.text for f, _ in missing))
    summary = f"{len(found)} of {total} facts stated"
    return summary + ("; " + "; ".join(parts) if parts else "")


def similarity(answer: str, reference: str) -> float | None:
    """chrF (character n-gram F-score, 0-100, sacrebleu): works on any script, Chinese included."""
    if not reference.strip():
        return None
    from sacrebleu.metrics import CHRF
    return round(CHRF().sentence_score(answer or "", [reference]).score, 1)


def totals(scores: list[dict]) -> dict:
    """{'right': n, 'scored': m, 'similarity': mean} over a model's answers; unscored ones left out."""
    scored = [s for s in scores if s and s.get("right") is not None]
    sims = [s["similarity"] for s in scores if s and s.get("similarity") is not None]
    return {"right": sum(1 for s in scored if s["right"]), "scored": len(scored),
            "similarity": round(sum(sims) / len(sims), 1) if sims else None}
