"""Plotly figures of the studio: the live loss curve, run overlays and the token-length histogram.

Pure functions from rows/numbers to figures, so they are testable without a browser.
Metric rows are the trainer's dicts: ``type`` "train" with ``loss``, or "eval" with ``eval_loss``,
both with ``step``.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import plotly.graph_objects as go

from .i18n import t

TRAIN_COLOR = "#2563eb"
EVAL_COLOR = "#ea580c"
PALETTE = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777"]


def _layout(fig: go.Figure, x: str, y: str, height: int = 360) -> go.Figure:
    # No figure title: the gr.Plot label names the chart (Gradio adds 100 px of margin to titled plots).
    fig.update_layout(
        height=height, template="plotly_white",
        margin=dict(l=50, r=20, t=30, b=40), xaxis_title=x, yaxis_title=y,
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1),
        font=dict(family="Noto Sans, Noto Sans CJK SC, sans-serif"),
    )
    return fig


def loss_points(rows: Iterable[dict]) -> tuple[list, list, list, list]:
    """(train steps, train losses, eval steps, eval losses) from metric rows; rows without a number are skipped."""
    ts, tl, es, el = [], [], [], []
    for r in rows:
        step = r.get("step")
        if step is None:
            continue
        if r.get("type", "train") == "eval" or "eval_loss" in r:
            if isinstance(r.get("eval_loss"), (int, float)):
                es.append(step)
                el.append(r["eval_loss"])
        elif isinstance(r.get("loss"), (int, float)):
            ts.append(step)
            tl.append(r["loss"])
    return ts, tl, es, el


def loss_figure(rows: Sequence[dict], lang: str = "en", total_steps: int | None = None) -> go.Figure:
    """Train loss (line with points) and eval loss (larger markers) against the step."""
    ts, tl, es, el = loss_points(rows)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=ts, y=tl, mode="lines+markers", name=t("plot.train_loss", lang),
                             line=dict(color=TRAIN_COLOR, width=2), marker=dict(size=5)))
    if es:
        fig.add_trace(go.Scatter(x=es, y=el, mode="lines+markers", name=t("plot.eval_loss", lang),
                                 line=dict(color=EVAL_COLOR, width=2, dash="dot"), marker=dict(size=9)))
    _layout(fig, t("plot.step", lang), t("plot.loss", lang))
    if total_steps:
        fig.update_xaxes(range=[0, max(total_steps, max(ts + es, default=0)) * 1.02])
    if not ts and not es:
        fig.add_annotation(text=t("plot.no_points", lang), showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper", font=dict(size=14, color="#6b7280"))
    return fig


def overlay_figure(curves: dict[str, Sequence[dict]], lang: str = "en") -> go.Figure:
    """One train-loss line per run (and its eval loss dotted, same colour), for comparing runs."""
    fig = go.Figure()
    for i, (name, rows) in enumerate(curves.items()):
        color = PALETTE[i % len(PALETTE)]
        ts, tl, es, el = loss_points(rows)
        fig.add_trace(go.Scatter(x=ts, y=tl, mode="lines", name=name, line=dict(color=color, width=2)))
        if es:
            fig.add_trace(go.Scatter(x=es, y=el, mode="lines+markers", name=f"{name} · {t('plot.eval', lang)}",
                                     line=dict(color=color, dash="dot"), marker=dict(size=7)))
    _layout(fig, t("plot.step", lang), t("plot.loss", lang))
    if not curves:
        fig.add_annotation(text=t("plot.pick_runs", lang), showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper", font=dict(size=14, color="#6b7280"))
    return fig


def length_histogram(lengths: Sequence[int], max_length: int, lang: str = "en") -> go.Figure:
    """Token lengths of the examples with the max-length cut as a red line; rows past it are cut or dropped."""
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=list(lengths), nbinsx=min(60, max(10, len(lengths) // 4)),
                               marker=dict(color=TRAIN_COLOR), name=t("plot.examples", lang)))
    over = sum(1 for n in lengths if n > max_length)
    note = t("plot.max_length", lang, n=max_length) + (" · " + t("plot.over_max", lang, n=over) if over else "")
    right = max([max_length, *lengths]) * 1.05
    # The words go on the side of the line that has room: right of it they were cut off at the chart's edge.
    fig.add_vline(x=max_length, line=dict(color="#dc2626", width=2, dash="dash"), annotation_text=note,
                  annotation_position="top left" if max_length > right / 2 else "top right")
    _layout(fig, t("plot.tokens", lang), t("plot.count", lang), height=300)
    fig.update_xaxes(range=[0, right])   # the cut line always in view
    fig.update_layout(showlegend=False, bargap=0.05)
    return fig
