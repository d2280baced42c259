"""The chart of what a training method logs beyond the loss: DPO's rewards of the chosen and rejected answers,
their margin and how often the chosen one wins, KTO's KL term, GRPO's rewards.

A pure function of the run's metric rows and the metric names its method logs (the method's ``METRICS``, which
the rows carry under the same names, with ``eval_`` before them on held-back rows), so tests need no browser.
Shares (names ending in ``accuracies``) go on a right-hand axis from 0 to 1: they are a different scale.
"""

from __future__ import annotations

from typing import Sequence

import plotly.graph_objects as go

from .i18n import TEXT, t
from .plots import PALETTE, _layout


def metric_label(name: str, lang: str) -> str:
    """The words for a logged metric; its own name where the studio has none."""
    key = f"metric.{name}"
    return t(key, lang) if key in TEXT else name


def charted(name: str) -> bool:
    """Whether the chart draws a logged metric: the rewards, margins, shares won and the KL term, which share one
    scale. Log-probabilities (about -150 a row), answer lengths and the like stay in metrics.jsonl: drawn here they
    flatten every reward into one line. ``eval_`` names are drawn as their training name's dotted twin."""
    return not name.startswith("eval_") and (name.startswith("rewards/") or name in ("reward", "reward_std", "kl"))


def plotted(rows: Sequence[dict], names: Sequence[str]) -> list[str]:
    """The charted metric names that have a number in the rows, train or held-back, in the method's order."""
    return [n for n in names if charted(n) and any(isinstance(r.get(n), (int, float)) or isinstance(r.get(f"eval_{n}"), (int, float))
                                    for r in rows)]


def _is_share(name: str) -> bool:
    return name.endswith("accuracies") or name.endswith("accuracy")


def method_figure(rows: Sequence[dict], names: Sequence[str], lang: str = "en",
                  total_steps: int | None = None) -> go.Figure:
    """One line per logged metric against the step (solid while training, dotted with markers on held-back rows)."""
    fig = go.Figure()
    shown = plotted(rows, names)
    for i, name in enumerate(shown):
        color = PALETTE[i % len(PALETTE)]
        axis = "y2" if _is_share(name) else "y"
        for key, eval_row in ((name, False), (f"eval_{name}", True)):
            pts = [(r["step"], r[key]) for r in rows if r.get("step") is not None and isinstance(r.get(key), (int, float))]
            if not pts:
                continue
            label = metric_label(name, lang) + (f" · {t('plot.eval', lang)}" if eval_row else "")
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], name=label, yaxis=axis,
                                     mode="lines+markers",
                                     line=dict(color=color, width=2, dash="dot" if eval_row else "solid"),
                                     marker=dict(size=8 if eval_row else 4)))
    _layout(fig, t("plot.step", lang), t("plot.value", lang))
    if any(_is_share(n) for n in shown):
        fig.update_layout(yaxis2=dict(title=t("plot.share", lang), overlaying="y", side="right", range=[0, 1.02],
                                      tickformat=".0%", showgrid=False))
    if total_steps:
        steps = [r["step"] for r in rows if r.get("step") is not None]
        fig.update_xaxes(range=[0, max([total_steps, *steps]) * 1.02])
    if not shown:
        fig.add_annotation(text=t("plot.no_points", lang), showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper", font=dict(size=14, color="#6b7280"))
    return fig
