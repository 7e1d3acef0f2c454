"""Plotly figure builders. They take plain numbers and snapshots, never torch tensors.

Plotly renders a few HTML tags (<b>, <a href>, <br>, ...) and %{...} templates in the text it shows, so every
label that comes from a user (run names, class names) goes through `escape_label()`, and hover boxes name a
trace with %{fullData.name} instead of pasting the label into a template."""
from __future__ import annotations

import html
from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from core.engine.snapshot import RunSnapshot

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
Labeled = Sequence[tuple[str, RunSnapshot]]


def escape_label(label: object) -> str:
    """A label shown as the characters it is: <, > and & become entities, which plotly displays literally."""
    return html.escape(str(label), quote=False)


FEW_POINTS = 20  # a line with this many points or fewer gets markers: three points must read as three
LEGEND_NAME = 32  # characters of a run's name in a legend


def _layout(fig: go.Figure, title: str, x: str, y: str, height: int = 340) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, height=height, hovermode="x unified",
                      margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def _mode(n_points: int) -> str:
    return "lines+markers" if n_points <= FEW_POINTS else "lines"


def short_name(label: str, limit: int = LEGEND_NAME) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def waiting(fig: go.Figure, text: str) -> go.Figure:
    """A chart without data yet says what it waits for, over axes that already have their real ranges."""
    fig.add_annotation(text=escape_label(text), x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(size=14, color="#6b6b6b"))
    return fig


def percent_axis(fig: go.Figure, values: Sequence[float] = (), axis: str = "y") -> go.Figure:
    """Accuracy in %, never beyond 0-100%: the whole range without data, else the data's range with a margin."""
    vals = [v for v in values if v is not None and np.isfinite(v)]
    lo, hi = (0.0, 1.0) if not vals else (max(0.0, min(vals) - 0.02), min(1.0, max(vals) + 0.01))
    if hi - lo < 0.02:
        lo = max(0.0, hi - 0.02)
    getattr(fig, f"update_{axis}axes")(tickformat=".0%" if hi - lo > 0.1 else ".1%", range=[lo, hi + 0.005])
    return fig


def loss_figure(runs: Labeled, total_steps: int | None = None) -> go.Figure:
    """Training loss per logged step (lines) and per epoch (markers), one colour per run; one legend entry per run
    when several are shown. `total_steps`: the x axis spans the whole run from the start (one live run)."""
    fig, several = go.Figure(), len(runs) > 1
    for i, (label, snap) in enumerate(runs):
        c, name = PALETTE[i % len(PALETTE)], escape_label(short_name(str(label)))
        group = f"run{i}" if several else None  # one legend entry toggles all of a run's lines
        if snap.step_losses:
            steps, losses = zip(*snap.step_losses)
            fig.add_scatter(x=steps, y=losses, mode=_mode(len(steps)), name=name if several else "per step",
                            legendgroup=group, line=dict(color=c, width=1.5),
                            hovertemplate="step %{x}<br>loss %{y:.4f}<extra>%{fullData.name}</extra>")
        if snap.history:
            fig.add_scatter(x=[h.epoch * snap.steps_per_epoch for h in snap.history],
                            y=[h.train_loss for h in snap.history], mode="markers+lines",
                            name=name if several else "epoch mean", legendgroup=group,
                            showlegend=not several or not snap.step_losses, line=dict(color=c, dash="dot"),
                            marker=dict(size=8, symbol="diamond"), customdata=[h.epoch for h in snap.history],
                            hovertemplate="epoch %{customdata}<br>mean loss %{y:.4f}<extra>%{fullData.name}</extra>")
    _layout(fig, "Training loss" + (" (line: per step, ◆: epoch mean)" if several else ""), "step", "cross-entropy")
    if total_steps:
        fig.update_xaxes(range=[0, total_steps])
    if not any(s.step_losses or s.history for _, s in runs):
        fig.update_yaxes(range=[0, 2.5])  # ln 10 = 2.30: where an untrained 10-class network starts
        fig.update_xaxes(range=[0, total_steps or 100])
        waiting(fig, "Waiting for the first training steps…")
    return fig


def accuracy_figure(runs: Labeled, epochs: int | None = None) -> go.Figure:
    """Test (solid) and training (dashed) accuracy per epoch, in %. `epochs`: the x axis spans the whole run."""
    fig, several = go.Figure(), len(runs) > 1
    values = []
    for i, (label, snap) in enumerate(runs):
        c, name = PALETTE[i % len(PALETTE)], escape_label(short_name(str(label)))
        group = f"run{i}" if several else None  # one legend entry toggles all of a run's lines
        ep = [h.epoch for h in snap.history]
        test, train = [h.test_acc for h in snap.history], [h.train_acc for h in snap.history]
        values += test + train
        fig.add_scatter(x=ep, y=test, mode="lines+markers", name=name if several else "test", legendgroup=group,
                        line=dict(color=c),
                        hovertemplate="epoch %{x}<br>test acc %{y:.2%}<extra>%{fullData.name}</extra>")
        fig.add_scatter(x=ep, y=train, mode="lines+markers", name=name if several else "train", legendgroup=group,
                        showlegend=not several, line=dict(color=c, dash="dash"),
                        hovertemplate="epoch %{x}<br>train acc %{y:.2%}<extra>%{fullData.name}</extra>")
    percent_axis(fig, values)
    last = max([epochs or 0] + [h.epoch for _, s in runs for h in s.history])
    fig.update_xaxes(dtick=1, range=[0.5, max(last, 1) + 0.5])
    _layout(fig, "Accuracy per epoch" + (" (solid: test, dashed: train)" if several else ""), "epoch", "accuracy")
    if not values:
        waiting(fig, "Waiting for the first epoch to end…")
    return fig


def confusion_figure(counts: np.ndarray, class_names: Sequence[str], normalized: bool) -> go.Figure:
    z = counts / np.maximum(counts.sum(1, keepdims=True), 1) if normalized else counts
    text = [[f"{v:.1%}" if normalized else f"{int(v)}" for v in row] for row in z]
    fig = go.Figure(go.Heatmap(z=z, x=list(class_names), y=list(class_names), colorscale="Blues", text=text,
                               texttemplate="%{text}", hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title="true class", type="category")
    fig.update_xaxes(title="predicted class", type="category")
    fig.update_layout(title="Confusion matrix" + (" (row-normalised)" if normalized else " (counts)"), height=480,
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def bar_figure(labels: Sequence[str], values: Sequence[float], title: str, colors: Sequence[str] | None = None,
               fmt: str = ".3f", yrange: tuple[float, float] | None = None, height: int = 280,
               percent: bool = False) -> go.Figure:
    fig = go.Figure(go.Bar(x=[escape_label(v) for v in labels], y=list(values),
                           marker_color=list(colors) if colors else None,
                           text=[format(v, fmt) for v in values], textposition="outside",
                           hovertemplate="%{x}: %{y:" + fmt + "}<extra></extra>"))
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10))
    fig.update_xaxes(type="category")
    if yrange:
        fig.update_yaxes(range=list(yrange))
    if percent:
        fig.update_yaxes(tickformat=".0%")
    return fig


def line_figure(x: Sequence[float], series: dict[str, Sequence[float]], title: str, xlabel: str, ylabel: str,
                hline: tuple[float, str] | None = None, log_x: bool = False, percent: bool = False) -> go.Figure:
    """One line per series; markers when there are few points; `percent`: y values are fractions shown in %
    on a 0-100% axis."""
    fig = go.Figure()
    yfmt = ".2%" if percent else ".4f"
    for i, (name, ys) in enumerate(series.items()):
        fig.add_scatter(x=list(x), y=list(ys), mode=_mode(len(x)), name=escape_label(name),
                        line=dict(color=PALETTE[i % len(PALETTE)]),
                        hovertemplate=f"{escape_label(xlabel)} %{{x:.3g}}<br>{escape_label(ylabel)} %{{y:{yfmt}}}"
                                      "<extra>%{fullData.name}</extra>")
    if percent:
        fig.update_yaxes(tickformat=".0%", range=[0, 1.02])
    if hline:
        fig.add_hline(y=hline[0], line_dash="dot", annotation_text=hline[1])
    if log_x:
        fig.update_xaxes(type="log")
    return _layout(fig, title, xlabel, ylabel)


def arm_band_figure(arms: dict[str, list[RunSnapshot]], metric: str, epochs: int | None = None) -> go.Figure:
    """Mean over seeds with a min-max band, per arm. metric: 'loss' (per logged step) or 'test_acc' (per epoch).
    `epochs`: the accuracy chart's x axis spans them from the start."""
    fig, values = go.Figure(), []
    for i, (label, snaps) in enumerate(arms.items()):
        c, label = PALETTE[i % len(PALETTE)], escape_label(label)
        if metric == "loss":
            series = [dict(s.step_losses) for s in snaps if s.step_losses]
        else:
            series = [{h.epoch: h.test_acc for h in s.history} for s in snaps if s.history]
        xs = sorted(set.intersection(*(set(d) for d in series))) if series else []
        if not xs:
            continue
        ys = np.array([[d[x] for x in xs] for d in series])  # (seeds, points)
        values += ys.flatten().tolist()
        if len(series) > 1:
            fig.add_scatter(x=xs + xs[::-1], y=list(ys.max(0)) + list(ys.min(0))[::-1], fill="toself",
                            line=dict(width=0), fillcolor=c, opacity=0.2, hoverinfo="skip", showlegend=False)
        fmt = ".2%" if metric != "loss" else ".4f"
        fig.add_scatter(x=xs, y=ys.mean(0), mode=_mode(len(xs)) if metric == "loss" else "lines+markers",
                        line=dict(color=c), name=f"{label} (mean of {len(series)})" if len(series) > 1 else label,
                        hovertemplate=f"%{{x}}: %{{y:{fmt}}}<extra>%{{fullData.name}}</extra>")
    if metric == "loss":
        _layout(fig, "Training loss per step (band: min-max over seeds)", "step", "cross-entropy")
        if not values:
            fig.update_yaxes(range=[0, 2.5])
            waiting(fig, "Waiting for the first training steps…")
        return fig
    percent_axis(fig, values)
    done = max((len(s.history) for snaps in arms.values() for s in snaps), default=1)
    fig.update_xaxes(dtick=1, range=[0.5, max(epochs or 1, done) + 0.5])
    _layout(fig, "Test accuracy per epoch (band: min-max over seeds)", "epoch", "test accuracy")
    return waiting(fig, "Waiting for the first epoch to end…") if not values else fig


def percentile_figure(panels: dict[str, tuple[list[int], list[list[float]]]], title: str) -> go.Figure:
    """15th / 50th / 85th percentile lines over training steps, one colour per panel."""
    fig = go.Figure()
    for i, (label, (steps, q)) in enumerate(panels.items()):
        c, label = PALETTE[i % len(PALETTE)], escape_label(label)
        q = np.array(q)  # (points, 3)
        for j, (name, dash) in enumerate((("15th", "dot"), ("50th", "solid"), ("85th", "dot"))):
            fig.add_scatter(x=steps, y=q[:, j], mode="lines", line=dict(color=c, dash=dash), name=f"{label}: {name}",
                            legendgroup=label, hovertemplate="step %{x}: %{y:.3f}<extra>%{fullData.name}</extra>")
    return _layout(fig, title, "step", "value", height=300)
