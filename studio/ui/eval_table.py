"""The scored evaluation as people read it: totals first ("a 7 of 8 · base 0 of 8"), then one row per
question with each model's ✓/✗, its answer (wrapped) and the line that says why, in columns that fit a
laptop screen. Pure functions from ``evaluation.evaluate`` rows to HTML."""

from __future__ import annotations

import html

from ..errors import StudioError
from .i18n import t

_OK, _BAD, _NONE = "#15803d", "#b91c1c", "#6b7280"
_CELL = "padding:6px 8px;vertical-align:top;border-top:1px solid #e5e7eb;overflow-wrap:anywhere;"


def mark(score: dict | None) -> str:
    if not score or score.get("right") is None:
        return f'<span style="color:{_NONE};font-weight:700">·</span>'
    if score["right"]:
        return f'<span style="color:{_OK};font-weight:700">✓</span>'
    return f'<span style="color:{_BAD};font-weight:700">✗</span>'


def totals_line(totals: dict, lang: str, judges: dict | None = None) -> str:
    """'**a** 7 of 8 facts right · **base** 0 of 8' (Markdown), or '' when nothing had a reference; with a
    judge's totals a second sentence, 'Judge: **a** 6 of 8 · **base** 1 of 8'."""
    parts = [t("eval.total", lang).format(name=name, right=v["right"], scored=v["scored"])
             for name, v in totals.items() if v and v["scored"]]
    line = " · ".join(parts)
    judged = [t("eval.judge_total", lang, name=name, right=v["right"], judged=v["judged"])
              + (t("eval.judge_unclear", lang, n=v["unclear"]) if v["unclear"] else "")
              for name, v in (judges or {}).items() if v and v["judged"]]
    if judged:
        line += ("  \n" if line else "") + t("eval.judge_line", lang) + " " + " · ".join(judged)
    return line


JUDGE_MARKS = {"right": ("✓", _OK), "wrong": ("✗", _BAD), "unclear": ("?", _NONE)}


def judge_cell(row: dict, models: list[str], lang: str) -> str:
    """Each model's verdict (✓ / ✗ / ?) and the judge's reason; '…' while the row waits for the judge."""
    if "judge" not in row:
        return f'<span style="color:{_NONE}">…</span>' if row["reference"] else ""
    lines = []
    for name in models:
        v = (row["judge"] or {}).get(name)
        if not v:
            continue
        sign, colour = JUDGE_MARKS.get(v["verdict"], JUDGE_MARKS["unclear"])
        reason = _reason(v, lang)
        lines.append(f'<div style="margin-bottom:4px"><span style="color:{colour};font-weight:700">{sign}</span> '
                     f'<b>{html.escape(name)}</b>: <span style="color:{_NONE}">{html.escape(reason)}</span></div>')
    return "".join(lines)


def _reason(verdict: dict, lang: str) -> str:
    """The judge's reason; for a prompt the judge could not read, the studio's own words in ``lang``."""
    if verdict.get("error"):
        return StudioError.from_dict(verdict["error"]).render(lang)[0]
    return verdict["reason"] or t("eval.judge_no_reason", lang)


def table_html(rows: list[dict], totals: dict, lang: str, judges: dict | None = None, judging: bool = False) -> str:
    """The whole table: a header with each model's total, then each question; ``judging`` (or a judged
    row) adds the judge's column, last, with its totals in the header."""
    if not rows:
        return f'<p style="color:{_NONE}">{html.escape(t("eval.empty", lang))}</p>'
    models = list(rows[0]["scores"])
    judged = judging or any("judge" in r for r in rows)
    width = max(16, (52 if judged else 64) // len(models))
    head = [f'<th style="{_CELL}width:24%;text-align:left">{html.escape(t("eval.question", lang))}</th>']
    for name in models:
        tot = totals.get(name) or {}
        score = f"{tot.get('right', 0)} / {tot.get('scored', 0)}" if tot.get("scored") else ""
        head.append(f'<th style="{_CELL}width:{width}%;text-align:left">{html.escape(name)}'
                    f'<br><span style="font-weight:400">{html.escape(score)}</span></th>')
    if judged:
        tops = " · ".join(f"{name} {v['right']} / {v['judged']}" for name, v in (judges or {}).items() if v["judged"])
        head.append(f'<th style="{_CELL}width:22%;text-align:left">{html.escape(t("eval.judge_col", lang))}'
                    f'<br><span style="font-weight:400">{html.escape(tops)}</span></th>')
    body = []
    for n, row in enumerate(rows, 1):
        cells = [f'<td style="{_CELL}"><b>{n}.</b> {html.escape(row["prompt"])}'
                 + (f'<div style="color:{_NONE};margin-top:4px">{html.escape(t("eval.reference", lang))}: '
                    f'{html.escape(row["reference"])}</div>' if row["reference"] else "") + "</td>"]
        for name in models:
            score = row["scores"].get(name)
            why = (f'<div style="color:{_NONE};font-size:0.9em;margin-top:4px">{html.escape(score["explanation"])}'
                   f' · chrF {score["similarity"]}</div>') if score else ""
            cells.append(f'<td style="{_CELL}">{mark(score)} {html.escape(row[name])}{why}</td>')
        if judged:
            cells.append(f'<td style="{_CELL}font-size:0.9em">{judge_cell(row, models, lang)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return ('<table style="width:100%;table-layout:fixed;border-collapse:collapse">'
            f'<thead><tr>{"".join(head)}</tr></thead><tbody>{"".join(body)}</tbody></table>')
