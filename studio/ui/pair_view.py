"""One preference pair as the Data tab shows it: the prompt both answers share across the top, then the chosen
and the rejected answer side by side, each piece as the training text has it and the loss-carrying pieces marked.

``pair`` is one of the data report's ``preview_pairs``: ``{"row", "prompt", "chosen", "rejected"}``, each answer
a list of ``[text, carries_loss]`` pieces made from the tokens training uses.
"""

from __future__ import annotations

import html

from .i18n import t

_LOSS = "background:#bbf7d0;border-radius:3px"
_BOX = ("border:1px solid #d1d5db;border-radius:8px;padding:8px 10px;white-space:pre-wrap;word-break:break-word;"
        "font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px;line-height:1.45")


def _pieces(pieces: list) -> str:
    out = []
    for text, carries_loss in pieces or []:
        piece = html.escape(str(text))
        out.append(f'<span style="{_LOSS}">{piece}</span>' if carries_loss else piece)
    return "".join(out)


def pair_html(pair: dict | None, lang: str) -> str:
    """The pair's HTML ('' without a pair)."""
    if not pair:
        return ""
    head = html.escape(t("data.pair_row", lang, row=pair.get("row", "?")))
    prompt = (f'<div style="{_BOX};background:#f9fafb"><b>{html.escape(t("data.pair_prompt", lang))}</b>\n'
              f'{_pieces(pair.get("prompt"))}</div>')

    def side(key: str, color: str) -> str:
        return (f'<div style="flex:1;min-width:260px"><div style="font-weight:600;color:{color};margin:6px 0 4px">'
                f'{html.escape(t(f"data.pair_{key}", lang))}</div>'
                f'<div style="{_BOX};border-color:{color}">{_pieces(pair.get(key))}</div></div>')

    return (f'<div class="pair-preview"><div style="margin-bottom:4px">{head}</div>{prompt}'
            f'<div style="display:flex;gap:12px;flex-wrap:wrap">{side("chosen", "#15803d")}'
            f'{side("rejected", "#b91c1c")}</div>'
            f'<div style="color:#6b7280;font-size:12px;margin-top:4px">{html.escape(t("data.pair_legend", lang))}'
            f'</div></div>')
