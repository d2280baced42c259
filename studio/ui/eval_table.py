"""The scored evaluation as people read it: totals first ("a 7 of 8 · base 0 of 8"), then one row per
question with each model's ✓/✗, its answer (wrapped) and the line that says why, in columns that fit a
laptop screen. Pure functions from ``evaluation.evaluate`` rows to HTML."""

from __future__ import annotations

import html

from .i18n import t

_OK, _BAD, _NONE = "#15803d", "#b91c1c", "#6b7280"
_CELL = "padding:6px 8px;vertical-align:top;border-top:1px solid #e5e7eb;overflow-wrap:anywhere;"


def mark(score: dict | None) -> str:
    if not score or score.get("right") is None:
        return f'<span style="color:{_NONE};font-weight:700">·</span>'
    if score["right"]:
        return f'<span style="color:{_OK};font-weight:700">✓</span>'
    return f'<span style="color:{_BAD};font-weight:700">✗</span>'


def totals_line(totals: dict, lang: str) -> str:
    """'**a** 7 of 8 facts right · **base** 0 of 8' (Markdown), or '' when nothing had a reference."""
    parts = [t("eval.total", lang).format(name=name, right=v["right"], scored=v["scored"])
             for name, v in totals.items() if v and v["scored"]]
    return " · ".join(parts)


def table_html(rows: list[dict], totals: dict, lang: str) -> str:
    """The whole table: a header with each model's total, then each question."""
    if not rows:
        return f'<p style="color:{_NONE}">{html.escape(t("eval.empty", lang))}</p>'
    models = list(rows[0]["scores"])
    width = max(18, 64 // len(models))
    head = [f'<th style="{_CELL}width:24%;text-align:left">{html.escape(t("eval.question", lang))}</th>']
    for name in models:
        tot = totals.get(name) or {}
        score = f"{tot.get('right', 0)} / {tot.get('scored', 0)}" if tot.get("scored") else ""
        head.append(f'<th style="{_CELL}width:{width}%;text-align:left">{html.escape(name)}'
                    f'<br><span style="font-weight:400">{html.escape(score)}</span></th>')
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
        body.append("<tr>" + "".join(cells) + "</tr>")
    return ('<table style="width:100%;table-layout:fixed;border-collapse:collapse">'
            f'<thead><tr>{"".join(head)}</tr></thead><tbody>{"".join(body)}</tbody></table>')
