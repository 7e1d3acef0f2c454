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


def _layout(fig: go.Figure, title: str, x: str, y: str, height: int = 340) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, height=height, hovermode="x unified",
                      margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def loss_figure(runs: Labeled) -> go.Figure:
    """Training loss per logged step (lines) and per epoch (markers), one colour per run."""
    fig = go.Figure()
    for i, (label, snap) in enumerate(runs):
        c, label = PALETTE[i % len(PALETTE)], escape_label(label)
        if snap.step_losses:
            steps, losses = zip(*snap.step_losses)
            fig.add_scatter(x=steps, y=losses, mode="lines", name=f"{label}: per step", line=dict(color=c, width=1.5),
                            hovertemplate="step %{x}<br>loss %{y:.4f}<extra></extra>")
        if snap.history:
            fig.add_scatter(x=[h.epoch * snap.steps_per_epoch for h in snap.history], y=[h.train_loss for h in snap.history],
                            mode="markers+lines", name=f"{label}: epoch mean", line=dict(color=c, dash="dot"),
                            marker=dict(size=8, symbol="diamond"), customdata=[h.epoch for h in snap.history],
                            hovertemplate="epoch %{customdata}<br>mean loss %{y:.4f}<extra></extra>")
    return _layout(fig, "Training loss", "step", "cross-entropy")


def accuracy_figure(runs: Labeled) -> go.Figure:
    """Training (dashed) and test (solid) accuracy per epoch."""
    fig = go.Figure()
    for i, (label, snap) in enumerate(runs):
        c, label = PALETTE[i % len(PALETTE)], escape_label(label)
        ep = [h.epoch for h in snap.history]
        fig.add_scatter(x=ep, y=[h.test_acc for h in snap.history], mode="lines+markers", name=f"{label}: test",
                        line=dict(color=c), hovertemplate="epoch %{x}<br>test acc %{y:.2%}<extra></extra>")
        fig.add_scatter(x=ep, y=[h.train_acc for h in snap.history], mode="lines+markers", name=f"{label}: train",
                        line=dict(color=c, dash="dash"), hovertemplate="epoch %{x}<br>train acc %{y:.2%}<extra></extra>")
    fig.update_yaxes(tickformat=".1%")
    fig.update_xaxes(dtick=1)
    return _layout(fig, "Accuracy per epoch", "epoch", "accuracy")


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
               fmt: str = ".3f", yrange: tuple[float, float] | None = None, height: int = 280) -> go.Figure:
    fig = go.Figure(go.Bar(x=[escape_label(v) for v in labels], y=list(values),
                           marker_color=list(colors) if colors else None,
                           text=[format(v, fmt) for v in values], textposition="outside",
                           hovertemplate="%{x}: %{y:" + fmt + "}<extra></extra>"))
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10))
    fig.update_xaxes(type="category")
    if yrange:
        fig.update_yaxes(range=list(yrange))
    return fig


def line_figure(x: Sequence[float], series: dict[str, Sequence[float]], title: str, xlabel: str, ylabel: str,
                hline: tuple[float, str] | None = None, log_x: bool = False) -> go.Figure:
    fig = go.Figure()
    for i, (name, ys) in enumerate(series.items()):
        fig.add_scatter(x=list(x), y=list(ys), mode="lines", name=escape_label(name),
                        line=dict(color=PALETTE[i % len(PALETTE)]),
                        hovertemplate=f"{escape_label(xlabel)} %{{x:.3f}}<br>{escape_label(ylabel)} %{{y:.4f}}"
                                      "<extra>%{fullData.name}</extra>")
    if hline:
        fig.add_hline(y=hline[0], line_dash="dot", annotation_text=hline[1])
    if log_x:
        fig.update_xaxes(type="log")
    return _layout(fig, title, xlabel, ylabel)


def saliency_overlay(input28: np.ndarray, saliency: np.ndarray, scale: int = 6) -> np.ndarray:
    """The 28x28 input in grey with the saliency in red on top, scaled up with hard pixel edges: (28*s, 28*s, 3)."""
    grey = 255 - input28.astype(np.float32)  # dark ink on white, as drawn
    heat = saliency / max(float(saliency.max()), 1e-12)
    rgb = np.stack([grey * (1 - heat) + 255 * heat, grey * (1 - heat), grey * (1 - heat)], axis=-1)
    return np.kron(rgb.clip(0, 255).astype(np.uint8), np.ones((scale, scale, 1), np.uint8))


def arm_band_figure(arms: dict[str, list[RunSnapshot]], metric: str) -> go.Figure:
    """Mean over seeds with a min-max band, per arm. metric: 'loss' (per logged step) or 'test_acc' (per epoch)."""
    fig = go.Figure()
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
        if len(series) > 1:
            fig.add_scatter(x=xs + xs[::-1], y=list(ys.max(0)) + list(ys.min(0))[::-1], fill="toself", line=dict(width=0),
                            fillcolor=c, opacity=0.2, hoverinfo="skip", showlegend=False)
        fmt = ".2%" if metric != "loss" else ".4f"
        fig.add_scatter(x=xs, y=ys.mean(0), mode="lines" if metric == "loss" else "lines+markers", line=dict(color=c),
                        name=f"{label} (mean of {len(series)})" if len(series) > 1 else label,
                        hovertemplate=f"%{{x}}: %{{y:{fmt}}}<extra>%{{fullData.name}}</extra>")
    if metric == "loss":
        return _layout(fig, "Training loss per step (band: min-max over seeds)", "step", "cross-entropy")
    fig.update_yaxes(tickformat=".1%")
    fig.update_xaxes(dtick=1)
    return _layout(fig, "Test accuracy per epoch (band: min-max over seeds)", "epoch", "test accuracy")


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
