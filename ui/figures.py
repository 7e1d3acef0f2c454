"""Plotly figure builders. They take plain numbers and snapshots, never torch tensors.

Plotly renders a few HTML tags (<b>, <a href>, <br>, ...) and %{...} templates in the text it shows, so every
label that comes from a user (run names, class names) goes through `escape_label()`, and hover boxes name a
trace with %{fullData.name} instead of pasting the label into a template."""
from __future__ import annotations

import html
from typing import Sequence

import numpy as np
import plotly.colors as pc
import plotly.graph_objects as go

from core.engine.snapshot import RunSnapshot
from core.lessons.curves import ema

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
ARM_COLORS = {"BN": PALETTE[0], "no-BN": PALETTE[1]}  # the BatchNorm lab's two arms, the same on every chart
Labeled = Sequence[tuple[str, RunSnapshot]]


def rgba(color: str, alpha: float) -> str:
    """A #rrggbb colour with transparency, for a band's fill under a line of the same colour."""
    return "rgba({},{},{},{})".format(*pc.hex_to_rgb(color), alpha)


def colorscale(name: str) -> list[list]:
    """A named plotly colour scale with every colour written as rgb(r,g,b). Streamlit swaps the strings
    #000001-#000010 in a figure for its theme's colours (placeholders of its plotly theme), and Inferno and Magma
    begin at #000004: their black zero would be drawn pink."""
    return [[pos, c if c.startswith("rgb") else "rgb({},{},{})".format(*pc.hex_to_rgb(c))]
            for pos, c in pc.get_colorscale(name)]


def escape_label(label: object) -> str:
    """A label shown as the characters it is: <, > and & become entities, which plotly displays literally."""
    return html.escape(str(label), quote=False)


FEW_POINTS = 20  # a line with this many points or fewer gets markers: three points must read as three
LEGEND_NAME = 32  # characters of a run's name in a legend


LEGEND_BELOW = dict(orientation="h", yref="container", y=0, yanchor="bottom", x=0, xanchor="left")


def _layout(fig: go.Figure, title: str, x: str, y: str, height: int = 340) -> go.Figure:
    """Title, axis titles and a legend in a row of its own at the figure's bottom edge, below the x axis' title
    (placed in plot-height units, a legend collides with that title at some chart sizes)."""
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, height=height, hovermode="x unified",
                      margin=dict(l=10, r=10, t=40, b=10), legend=LEGEND_BELOW)
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


def loss_figure(runs: Labeled, total_steps: int | None = None, log_y: bool = False,
                smoothing: float = 0.0) -> go.Figure:
    """Training loss per logged step (lines) and per epoch (markers), one colour per run; one legend entry per run
    when several are shown. `total_steps`: the x axis spans the whole run from the start (one live run).
    `log_y`: a log axis, where the first steps' 2.3 no longer squash the rest. `smoothing` in [0, 1): the step
    losses' exponential moving average (core/lessons/curves.py) drawn over the raw ones, which stay, faint."""
    fig, several = go.Figure(), len(runs) > 1
    for i, (label, snap) in enumerate(runs):
        c, name = PALETTE[i % len(PALETTE)], escape_label(short_name(str(label)))
        group = f"run{i}" if several else None  # one legend entry toggles all of a run's lines
        if snap.step_losses:
            steps, losses = zip(*snap.step_losses)
            if smoothing:
                fig.add_scatter(x=steps, y=losses, mode="lines", name="per step (raw)", legendgroup=group,
                                showlegend=not several, line=dict(color=c, width=1), opacity=0.25,
                                hovertemplate="step %{x}<br>loss %{y:.4f}<extra>raw</extra>")
            fig.add_scatter(x=steps, y=ema(losses, smoothing) if smoothing else losses, mode=_mode(len(steps)),
                            name=name if several else ("per step, smoothed" if smoothing else "per step"),
                            legendgroup=group, line=dict(color=c, width=1.5),
                            hovertemplate="step %{x}<br>loss %{y:.4f}<extra>%{fullData.name}</extra>")
        if snap.history:
            fig.add_scatter(x=[h.epoch * snap.steps_per_epoch for h in snap.history],
                            y=[h.train_loss for h in snap.history], mode="markers+lines",
                            name=name if several else "epoch mean", legendgroup=group,
                            showlegend=not several or not snap.step_losses, line=dict(color=c, dash="dot"),
                            marker=dict(size=8, symbol="diamond"), customdata=[h.epoch for h in snap.history],
                            hovertemplate="epoch %{customdata}<br>mean loss %{y:.4f}<extra>%{fullData.name}</extra>")
    _layout(fig, "Training loss" + (" (line: per step, ◆: epoch mean)" if several else ""), "step",
            "cross-entropy" + (" (log scale)" if log_y else ""))
    if log_y:
        fig.update_yaxes(type="log", dtick=1)  # labels at powers of ten only
    if total_steps:
        fig.update_xaxes(range=[0, total_steps])
    if not any(s.step_losses or s.history for _, s in runs):
        # ln 10 = 2.30: where an untrained 10-class network starts (a log axis' range is in powers of ten)
        fig.update_yaxes(range=[-2, np.log10(2.5)] if log_y else [0, 2.5])
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


CONFUSION_SCALES = {"errors": "errors only", "log": "log scale", "linear": "linear"}  # how the cells are coloured


def confusion_figure(counts: np.ndarray, class_names: Sequence[str], normalized: bool, scale: str = "linear",
                     selected: tuple[int, int] | None = None, size: int = 480) -> go.Figure:
    """Rows: true class, columns: predicted, a square per cell (markers: a click selects a cell, which plotly
    does not do for heatmaps). `scale`: "errors" colours the off-diagonal cells on a scale of their own, the
    diagonal grey (its counts dwarf every error); "log" colours every cell by log10(1 + count); "linear" by the
    value. `normalized`: each row as shares of its true class. `selected`: (true, predicted) of the cell shown
    selected. A fixed size in px, so that the squares fill their cells."""
    k = len(class_names)
    z = counts / np.maximum(counts.sum(1, keepdims=True), 1) if normalized else counts.astype(float)
    names = [escape_label(n) for n in class_names]
    margin = dict(l=60, r=10, t=40, b=50)
    cell = min(size - margin["l"] - margin["r"] - 70, size - margin["t"] - margin["b"]) / k  # 70: the colour bar
    fmt = (lambda v: f"{v:.1%}") if normalized else (lambda v: f"{int(v)}")
    off = ~np.eye(k, dtype=bool)
    cells = [(i, j) for i in range(k) for j in range(k) if scale != "errors" or off[i, j]]
    values = np.array([z[i, j] for i, j in cells])
    colour, title = values, "share of the row" if normalized else "count"
    if scale == "log":
        colour, title = np.log10(1 + (values * 1000 if normalized else values)), "count, log scale"
        if normalized:
            title = "share, log scale"
    top = float(colour.max()) if len(colour) and colour.max() > 0 else 1.0
    bar = dict(title=dict(text=title, side="right"), thickness=12)
    if scale == "log":  # ticks at round counts (or shares), placed on the log10(1 + x) scale
        ticks = [v for v in ((0, 0.001, 0.01, 0.1, 1) if normalized else (0, 1, 10, 100, 1000, 10000))
                 if np.log10(1 + (v * 1000 if normalized else v)) <= top * 1.001]
        bar.update(tickvals=[np.log10(1 + (v * 1000 if normalized else v)) for v in ticks],
                   ticktext=[fmt(v) for v in ticks])
    elif normalized:
        bar.update(tickformat=".0%")
    marker = dict(symbol="square", size=cell * 0.94, color=colour, cmin=0, cmax=top, colorscale=colorscale("Blues"),
                  showscale=True, colorbar=bar, line=dict(width=0))
    text = [fmt(z[i, j]) for i, j in cells]
    dark = [c > 0.6 * top for c in colour]  # white text on the darker squares
    fig = go.Figure(go.Scatter(
        x=[names[j] for _, j in cells], y=[names[i] for i, _ in cells], mode="markers+text", marker=marker,
        text=text, textfont=dict(size=11, color=["white" if d else "#303030" for d in dark]),
        customdata=[[i, j] for i, j in cells], name="cells",
        hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>"))
    if scale == "errors":
        diag = [fmt(z[i, i]) for i in range(k)]
        fig.add_scatter(x=names, y=names, mode="markers+text", text=diag, name="diagonal", textfont=dict(size=11),
                        marker=dict(symbol="square", size=cell * 0.94, color="#dcdcdc", line=dict(width=0)),
                        customdata=[[i, i] for i in range(k)],
                        hovertemplate="true %{y}, predicted %{x}: %{text} (correct)<extra></extra>")
    if selected is not None:
        i, j = selected
        fig.add_scatter(x=[names[j]], y=[names[i]], mode="markers", hoverinfo="skip", showlegend=False,
                        marker=dict(symbol="square-open", size=cell, color="#d62728", line=dict(width=3)))
    fig.update_yaxes(autorange="reversed", title="true class", type="category", categoryorder="array",
                     categoryarray=names, showgrid=False, zeroline=False)
    fig.update_xaxes(title="predicted class", type="category", categoryorder="array", categoryarray=names,
                     showgrid=False, zeroline=False, side="bottom")
    what = " (row-normalised)" if normalized else " (counts)"
    fig.update_layout(title="Confusion matrix" + what, width=size, height=size, margin=margin, showlegend=False,
                      clickmode="event+select", plot_bgcolor="white", dragmode=False)
    return fig


def bar_figure(labels: Sequence[str], values: Sequence[float], title: str, colors: Sequence[str] | None = None,
               fmt: str = ".3f", yrange: tuple[float, float] | None = None, height: int = 280,
               percent: bool = False, text: bool = True, hline: tuple[float, str] | None = None) -> go.Figure:
    """`text`: each bar's value written above it (off for many bars: the hover still says it); `hline`: a
    dashed reference line (value, label)."""
    fig = go.Figure(go.Bar(x=[escape_label(v) for v in labels], y=list(values),
                           marker_color=list(colors) if colors else None,
                           text=[format(v, fmt) for v in values] if text else None, textposition="outside",
                           hovertemplate="%{x}: %{y:" + fmt + "}<extra></extra>"))
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10))
    fig.update_xaxes(type="category")
    if yrange:
        fig.update_yaxes(range=list(yrange))
    if percent:
        fig.update_yaxes(tickformat=".0%")
    if hline:
        fig.add_hline(y=hline[0], line_dash="dot", line_color="#6b6b6b", annotation_text=escape_label(hline[1]),
                      annotation_position="top left")
    return fig


def around(values: Sequence[float], include: float | None = None, pad: float = 0.15) -> tuple[float, float]:
    """An axis range that shows how values differ: their span (and `include`, e.g. a starting value) with a
    margin, instead of one that starts at 0 and flattens them."""
    vals = [float(v) for v in values if v is not None and np.isfinite(v)] + ([include] if include is not None else [])
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    margin = max(hi - lo, 1e-3) * pad
    return lo - margin, hi + margin


def line_figure(x: Sequence[float], series: dict[str, Sequence[float]], title: str, xlabel: str, ylabel: str,
                hline: tuple[float, str] | None = None, log_x: bool = False, percent: bool = False,
                colors: dict[str, str] | None = None, dashes: dict[str, str] | None = None,
                groups: dict[str, str] | None = None) -> go.Figure:
    """One line per series; markers when there are few points; `percent`: y values are fractions shown in %
    on a 0-100% axis. `colors` / `dashes` / `groups`: a series' colour, dash and legend group by its name (else
    the palette in order, solid, none): the BatchNorm lab draws each arm in its colour on every chart."""
    fig = go.Figure()
    yfmt = ".2%" if percent else ".4f"
    for i, (name, ys) in enumerate(series.items()):
        fig.add_scatter(x=list(x), y=list(ys), mode=_mode(len(x)), name=escape_label(name),
                        legendgroup=(groups or {}).get(name),
                        line=dict(color=(colors or {}).get(name, PALETTE[i % len(PALETTE)]),
                                  dash=(dashes or {}).get(name, "solid")),
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
    """Mean over seeds with a min-max band, per arm, in the arm's colour (ARM_COLORS). metric: 'loss' (per
    logged step) or 'test_acc' (per epoch). `epochs`: the accuracy chart's x axis spans them from the start."""
    fig, values = go.Figure(), []
    for i, (arm, snaps) in enumerate(arms.items()):
        c, label = ARM_COLORS.get(arm, PALETTE[i % len(PALETTE)]), escape_label(arm)
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
            fig.add_scatter(x=xs + xs[::-1], y=list(ys.max(0)) + list(ys.min(0))[::-1], fill="toself", mode="lines",
                            line=dict(width=0, color=c), fillcolor=rgba(c, 0.2), hoverinfo="skip", showlegend=False,
                            legendgroup=arm)
        fmt = ".2%" if metric != "loss" else ".4f"
        fig.add_scatter(x=xs, y=ys.mean(0), mode=_mode(len(xs)) if metric == "loss" else "lines+markers",
                        line=dict(color=c), name=f"{label} (mean of {len(series)})" if len(series) > 1 else label,
                        legendgroup=arm, hovertemplate=f"%{{x}}: %{{y:{fmt}}}<extra>%{{fullData.name}}</extra>")
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


def percentile_figure(panels: dict[str, tuple[str, list[int], list[list[float]]]], title: str,
                      height: int = 300) -> go.Figure:
    """One small panel per series, side by side on a shared y axis: the 15th-85th percentile band and the median
    over training steps, in the colour of the series' arm. panels: name -> (arm, steps, (points, 3) percentiles)."""
    from plotly.subplots import make_subplots

    names = list(panels)
    fig = make_subplots(rows=1, cols=max(1, len(names)), shared_yaxes=True, horizontal_spacing=0.03,
                        subplot_titles=[escape_label(n) for n in names])
    for col, name in enumerate(names, start=1):
        arm, steps, q = panels[name]
        c = ARM_COLORS.get(arm, PALETTE[(col - 1) % len(PALETTE)])
        q = np.array(q)  # (points, 3): 15th, 50th, 85th
        fig.add_scatter(x=steps, y=q[:, 0], mode="lines", line=dict(width=0, color=c), legendgroup=arm,
                        showlegend=False, hoverinfo="skip", row=1, col=col)
        fig.add_scatter(x=steps, y=q[:, 2], mode="lines", line=dict(width=0, color=c), fill="tonexty",
                        fillcolor=rgba(c, 0.25), legendgroup=arm, showlegend=False, row=1, col=col, customdata=q[:, 0],
                        hovertemplate="step %{x}: 15th %{customdata:.3f}, 85th %{y:.3f}<extra></extra>")
        fig.add_scatter(x=steps, y=q[:, 1], mode="lines", line=dict(color=c, width=2), name=arm, legendgroup=arm,
                        showlegend=False, row=1, col=col, hovertemplate="step %{x}: median %{y:.3f}<extra></extra>")
        fig.update_xaxes(title_text="step", row=1, col=col)
    fig.update_yaxes(title_text="value", row=1, col=1)
    fig.update_annotations(font_size=12)
    fig.update_layout(title=dict(text=escape_label(title), font=dict(size=14)), height=height, showlegend=False,
                      margin=dict(l=10, r=10, t=70, b=10), hovermode="closest")
    return fig
