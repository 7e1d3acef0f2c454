"""Figure builders for the BatchNorm lab's paper mode: the three panels of Ioffe & Szegedy (2015), figure 1.
They take plain numbers (core/lessons/bn_paper.py reads them from the runs)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from ui.figures import PALETTE, escape_label, percent_axis, waiting

ARM_COLOURS = {"with BN": PALETTE[0], "without BN": PALETTE[1]}
HEIGHT = 320


def _layout(fig: go.Figure, title: str, ylabel: str, total: int) -> go.Figure:
    fig.update_layout(title=title, xaxis_title="training steps", yaxis_title=ylabel, height=HEIGHT,
                      hovermode="x unified", margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.3))
    fig.update_xaxes(range=[0, total], tickformat="~s")  # 10k, 20k, …: the paper's axis
    return fig


def accuracy_panel(curves: dict[str, tuple[Sequence[int], Sequence[float]]], total: int) -> go.Figure:
    """(a) test accuracy against steps, one line per network."""
    fig, values = go.Figure(), []
    for name, (steps, acc) in curves.items():
        if not steps:
            continue
        values += list(acc)
        fig.add_scatter(x=list(steps), y=list(acc), mode="lines", name=escape_label(name),
                        line=dict(color=ARM_COLOURS.get(name, PALETTE[2])),
                        hovertemplate="%{y:.2%}<extra>%{fullData.name}</extra>")
    percent_axis(fig, values)
    _layout(fig, "(a) Test accuracy", "test accuracy", total)
    return fig if values else waiting(fig, "Waiting for the first record…")


def percentile_panel(steps: Sequence[int], q: Sequence[Sequence[float]], title: str, colour: str, total: int,
                     yrange: tuple[float, float] | None = None) -> go.Figure:
    """(b) or (c): one unit's 15th / 50th / 85th percentiles against steps (q: (points, 3))."""
    fig = go.Figure()
    if len(steps):
        arr = np.asarray(q, dtype=float)
        for name, col, dash in (("85th", 2, "dot"), ("50th", 1, "solid"), ("15th", 0, "dot")):
            fig.add_scatter(x=list(steps), y=arr[:, col], mode="lines", name=name, line=dict(color=colour, dash=dash),
                            hovertemplate="%{y:.3f}<extra>%{fullData.name}</extra>")
    _layout(fig, escape_label(title), "input of the activation", total)
    if yrange:
        fig.update_yaxes(range=list(yrange))
    return fig if len(steps) else waiting(fig, "Waiting for the first record…")


def shared_range(*series: Sequence[Sequence[float]]) -> tuple[float, float] | None:
    """One y range for panels (b) and (c), so that their movements compare by eye."""
    vals = [v for s in series for row in s for v in row]
    if not vals:
        return None
    lo, hi = min(vals), max(vals)
    pad = 0.05 * (hi - lo) or 0.1
    return lo - pad, hi + pad
