"""Which text encoding a data file is in, and its text.

UTF-8 (with or without a byte-order mark) is read silently. UTF-16/32 are recognised by their BOM, or,
without one, by the zero bytes every other (or three of four) byte holds: such a file is also valid
UTF-8 and would otherwise be read as text full of NULs ("line 1 is not valid JSON").

Anything else is ranked by charset-normalizer. On short Western European text several single-byte
code pages are equally plausible to it (cp1250, cp1252 and cp1257 all decode "crème", as "crčme" for
two of them), so among the candidates it ranks as good as its best, cp1252 and then latin-1 are
preferred: they are what Excel and older Windows programs write in Western Europe and the Americas.
Text that is only plausible in another code page (Polish, Cyrillic, Greek, Chinese...) keeps its own.

The chosen encoding and a short sample of decoded text go into the report, and ``data.encoding``
overrides the choice when the sample shows garbled letters.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

from ..errors import DataError

# Preferred, in order, when charset-normalizer finds them as plausible as its first choice.
PREFERRED = ("cp1252", "latin_1")
TIE = 0.01                      # chaos (mess ratio) within this of the best counts as just as plausible
NAMES = {"utf_8": "UTF-8", "cp1252": "Windows-1252 (Western European)", "latin_1": "Latin-1 (ISO-8859-1)",
         "utf_16": "UTF-16", "utf_16_le": "UTF-16 LE", "utf_16_be": "UTF-16 BE", "utf_32": "UTF-32",
         "gb18030": "GB18030 (Chinese)", "big5": "Big5 (Traditional Chinese)", "cp932": "Shift-JIS (Japanese)",
         "shift_jis": "Shift-JIS (Japanese)", "euc_kr": "EUC-KR (Korean)", "cp949": "CP949 (Korean)",
         "cp1251": "Windows-1251 (Cyrillic)", "cp1250": "Windows-1250 (Central European)",
         "cp1253": "Windows-1253 (Greek)", "cp1254": "Windows-1254 (Turkish)"}
# The encodings the Data tab offers by name (any other Python codec name is accepted too).
COMMON = ("auto", "utf-8", "cp1252", "latin-1", "utf-16", "gb18030", "big5", "shift_jis", "euc-kr",
          "cp1251", "cp1250", "cp1253", "cp1254", "iso-8859-15")


@dataclass
class Decoded:
    text: str
    encoding: str                          # Python codec name, e.g. 'utf_8', 'cp1252'
    notes: list[str] = field(default_factory=list)
    sample: str = ""

    @property
    def label(self) -> str:
        return label(self.encoding)


def label(encoding: str) -> str:
    """A readable name such as 'Windows-1252 (Western European)'."""
    key = codecs.lookup(encoding).name.replace("-", "_") if encoding else ""
    return NAMES.get(key, NAMES.get(encoding, (encoding or "").upper().replace("_", "-")))


def sample_of(text: str, width: int = 80) -> str:
    """A short piece of the text around its first non-ASCII character (that is where a wrong encoding shows),
    in whole words, with '…' where it was cut."""
    at = next((i for i, ch in enumerate(text[:200_000]) if ord(ch) > 127), None)
    start = 0 if at is None else max(0, at - width // 3)
    end = start + width
    # Widen to whole words (not past a few characters more), so no word is cut in half.
    while 0 < start and not text[start - 1].isspace() and at is not None and at - start < width // 2:
        start -= 1
    while end < len(text) and not text[end].isspace() and end - start < width + 20:
        end += 1
    piece = " ".join(text[start:end].split())
    return ("…" if start > 0 else "") + piece + ("…" if end < len(text.rstrip()) else "")


def decode_bytes(raw: bytes, name: str, encoding: str = "auto") -> Decoded:
    """The text of a file, the encoding used, notes for the report and a sample of the text."""
    out = _forced(raw, name, encoding) if encoding and encoding.strip().lower() != "auto" else _detect(raw, name)
    out.sample = sample_of(out.text)
    return out


def _forced(raw: bytes, name: str, encoding: str) -> Decoded:
    enc = encoding.strip()
    try:
        codec = codecs.lookup(enc).name
    except LookupError:
        raise DataError("'{encoding}' is not a text encoding the studio knows; choose 'auto' or another one.",
                        code="data.unknown_encoding", encoding=enc) from None
    try:
        text = raw.decode("utf-8-sig" if codec == "utf-8" else enc)
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise DataError("{name} cannot be read as {encoding}: line {line} holds bytes that are not {encoding} text. "
                        "Choose 'auto' or another encoding.", code="data.wrong_encoding", name=name,
                        encoding=label(enc), line=line) from None
    note = [] if codec == "utf-8" else [f"{name} was read as {label(enc)}, as chosen in the encoding setting."]
    return Decoded(text, codec.replace("-", "_"), note)


def _detect(raw: bytes, name: str) -> Decoded:
    if raw.startswith(b"\xef\xbb\xbf"):
        try:
            return Decoded(raw[3:].decode("utf-8"), "utf_8")
        except UnicodeDecodeError as e:
            return _bom_but_not_utf8(raw[3:], name, raw[:3 + e.start].count(b"\n") + 1)
    for bom, enc in ((b"\xff\xfe\x00\x00", "utf_32"), (b"\x00\x00\xfe\xff", "utf_32"),
                     (b"\xff\xfe", "utf_16"), (b"\xfe\xff", "utf_16")):
        if raw.startswith(bom):
            try:
                return Decoded(raw.decode(enc), enc, [f"{name} was read as {label(enc)}."])
            except UnicodeDecodeError:
                break
    wide = _wide_without_bom(raw)
    if wide:
        try:
            return Decoded(raw.decode(wide), wide, [f"{name} is {label(wide)} text without a byte-order mark; "
                                                    "it was read as such."])
        except UnicodeDecodeError:
            pass
    if b"\x00" in raw[:65536]:
        raise DataError("{name} is not a text file (it holds zero bytes, as binary files do). If it is a "
                        "spreadsheet, save it as CSV; otherwise save it as UTF-8 text.", code="data.binary", name=name)
    try:
        return Decoded(raw.decode("utf-8"), "utf_8")
    except UnicodeDecodeError as e:
        bad_at = e.start
    enc = _rank(raw)
    if enc is None:
        line = raw[:bad_at].count(b"\n") + 1
        raise DataError("{name} is not UTF-8 text (the first unreadable character is on line {line}) and its "
                        "encoding could not be recognised.", code="data.not_utf8", name=name, line=line)
    try:
        text = raw.decode(enc)
    except (UnicodeDecodeError, LookupError):
        raise DataError("{name} looks like {encoding} text but could not be read that way.",
                        code="data.undecodable", name=name, encoding=label(enc)) from None
    return Decoded(text, enc, [f"{name} is not UTF-8; it was read as {label(enc)}. If the sample shows garbled "
                               "letters, choose the right encoding (or save the file as UTF-8 and load it again)."])


def _bom_but_not_utf8(body: bytes, name: str, line: int) -> Decoded:
    """A UTF-8 byte-order mark before text in another encoding (a program that adds the mark to what it did not
    convert): read the text in the encoding it is in, and say so, instead of a U+FFFD for every accented letter."""
    enc = _rank(body) or next((e for e in PREFERRED if _decodes(body, e)), "latin_1")
    try:
        text = body.decode(enc)
    except (UnicodeDecodeError, LookupError):
        enc, text = "latin_1", body.decode("latin_1")
    return Decoded(text, enc, [f"{name} begins with a UTF-8 byte-order mark, but its text is not UTF-8 (from line "
                               f"{line}); it was read as {label(enc)}. If the sample shows garbled letters, choose "
                               "the right encoding (or save the file as UTF-8 and load it again)."])


def _wide_without_bom(raw: bytes) -> str | None:
    """'utf_16_le' / 'utf_16_be' / 'utf_32_le' / 'utf_32_be' when the zero bytes say so, else None.
    Text that is mostly ASCII in UTF-16 has a zero in every other byte; in UTF-32, three of four."""
    head = raw[:8192]
    n = len(head)
    if n < 4 or b"\x00" not in head:
        return None
    zeros = [sum(1 for i in range(k, n, 4) if head[i] == 0) / max(1, len(range(k, n, 4))) for k in range(4)]
    if zeros[1] > 0.9 and zeros[2] > 0.9 and zeros[3] > 0.9 and zeros[0] < 0.5 and n % 4 == 0:
        return "utf_32_le"
    if zeros[0] > 0.9 and zeros[1] > 0.9 and zeros[2] > 0.9 and zeros[3] < 0.5 and n % 4 == 0:
        return "utf_32_be"
    even = (zeros[0] + zeros[2]) / 2
    odd = (zeros[1] + zeros[3]) / 2
    if odd > 0.3 and even < 0.05:
        return "utf_16_le"
    if even > 0.3 and odd < 0.05:
        return "utf_16_be"
    return None


def _rank(raw: bytes) -> str | None:
    """charset-normalizer's choice, with cp1252 / latin-1 preferred among equally plausible candidates."""
    from charset_normalizer import from_bytes

    matches = list(from_bytes(raw[:2_000_000]))
    if not matches:
        return None
    best = min(matches, key=lambda m: m.chaos)
    if best.encoding in ("utf_8", "ascii"):
        return None
    tied = [m for m in matches if m.chaos <= best.chaos + TIE]
    candidates = {enc for m in tied for enc in (m.could_be_from_charset or [m.encoding])}
    for enc in PREFERRED:
        if enc in candidates and _decodes(raw, enc):
            return enc
    return matches[0].encoding if matches[0] in tied else best.encoding


def _decodes(raw: bytes, enc: str) -> bool:
    try:
        raw.decode(enc)
        return True
    except UnicodeDecodeError:
        return False
