"""What the Tuning page draws: the process-wide Tuner, this machine's pace, the lessons' figures, and the live
view of one study (Optuna's own plotly figures wherever Optuna has one)."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from core.lessons import predictions as P
from core.lessons.tuning import GvrResult, TrialRow, best_row, draw, gvr_result, spread_along, trial_rows
from core.store.pace import PROBE, Pace
from core.tuning.space import shown_params
from core.tuning.storage import repairs
from core.tuning.study import StudySpec, Tuner, budget_used
from ui import keys as K
from ui.figures import PALETTE
from ui.predict import reveal
from ui.registry import get_store, plain
from ui.session import Viewer


@st.cache_resource
def get_tuner() -> Tuner:
    return Tuner(get_store())  # STUDY_STORAGE from the environment, else studies.journal in the runs folder


def storage_notice(tuner: Tuner) -> bool:
    """Whether the studies' storage can be read; if not, one message naming the file, the line and what to do
    (a damaged journal, an unusable storage URL). Also says what this process repaired in the journal."""
    try:
        tuner.specs()
    except ValueError as e:
        st.error(plain(str(e)))
        return False
    for note in repairs(tuner.storage_url):
        st.warning("Repaired: " + plain(note))
    return True


@st.cache_data(show_spinner=False)
def draws(lo: float, hi: float, n: int, log: bool, seed: int) -> np.ndarray:
    """The lessons' sample draws, made once per process (Optuna's sampler takes about 0.1 s for 2,000)."""
    return draw(lo, hi, n, log=log, seed=seed)


def get_pace(data_dir: str | None) -> Pace:
    """This machine's pace, measured once per process (core.store.pace.PROBE, shared with every page's estimate):
    the Tuning lab's every estimate rests on it, so this page waits for it."""
    if PROBE.pace is not None:
        return PROBE.pace
    with st.spinner("Measuring this machine's pace (a few training steps and one evaluation, once per server start)…"):
        return PROBE.wait(data_dir)


def _layout(fig: go.Figure, title: str, x: str, y: str, height: int = 360) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, height=height, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=-0.25))
    return fig


def _log_ticks(fig: go.Figure, lo: float, hi: float, axis: str = "x") -> None:
    ks = list(range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1))
    getattr(fig, f"update_{axis}axes")(tickvals=ks, ticktext=[f"10<sup>{k}</sup>" for k in ks])


def sample_histogram(samples: dict[str, np.ndarray], lo: float, hi: float, title: str, xlabel: str,
                     per_decade: int = 4) -> go.Figure:
    """Counts of each sample set in bins of equal width on a log scale (log10 of the value on the x axis)."""
    a, b = math.log10(lo), math.log10(hi)
    edges = np.linspace(a, b, max(1, round((b - a) * per_decade)) + 1)
    fig = go.Figure()
    for i, (name, v) in enumerate(samples.items()):
        counts, _ = np.histogram(np.log10(v), edges)
        fig.add_bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=(edges[1] - edges[0]) * 0.9 / len(samples),
                    offset=(edges[1] - edges[0]) * (-0.45 + 0.9 * i / len(samples)), name=name,
                    marker_color=PALETTE[i], hovertemplate="%{y} draws<extra>" + name + "</extra>")
    _log_ticks(fig, lo, hi)
    fig.update_layout(barmode="overlay")
    return _layout(fig, title, xlabel + " (log scale)", "draws", height=300)


def trials_scatter(series: dict[str, list[tuple[float, TrialRow]]], title: str, xlabel: str,
                   log_x: bool = True) -> go.Figure:
    """Each trial's accuracy against one parameter, one colour per study; pruned trials hollow."""
    fig = go.Figure()
    symbols = ("circle", "square", "diamond", "triangle-up")
    for i, (name, pts) in enumerate(series.items()):
        pts = [(x, r) for x, r in pts if r.accuracy is not None and r.counted]
        shapes = [symbols[i % 4] + ("-open" if r.state == "PRUNED" else "") for _, r in pts]
        fig.add_scatter(x=[x for x, _ in pts], y=[r.accuracy for _, r in pts], mode="markers", name=name,
                        marker=dict(color=PALETTE[i], size=11, symbol=shapes), customdata=[r.number for _, r in pts],
                        hovertemplate=f"{xlabel} %{{x:.3g}}<br>accuracy %{{y:.2%}}<br>trial %{{customdata}}"
                                      f"<extra>{name}</extra>")
    failed = [(x, r) for pts in series.values() for x, r in pts if r.state == "FAIL" and r.counted]
    if failed:  # settings that fail (a diverged run) are a result too: drawn along the bottom, with no accuracy
        fig.add_scatter(x=[x for x, _ in failed], y=[0.0] * len(failed), mode="markers", name="failed (diverged)",
                        marker=dict(color="grey", size=10, symbol="x"), customdata=[r.error or "failed" for _, r in failed],
                        hovertemplate=f"{xlabel} %{{x:.3g}}<br>%{{customdata}}<extra></extra>")
    if log_x:
        fig.update_xaxes(type="log", dtick=1, exponentformat="power")
    fig.update_yaxes(tickformat=".0%")
    return _layout(fig, title, xlabel, "test accuracy")


def region_scatter(layers: dict[str, list[TrialRow]], x: str, y: str, boxes: dict[str, dict[str, tuple[float, float]]],
                   xlabel: str, ylabel: str, title: str = "Coarse to fine") -> go.Figure:
    """Trials on two log-scale parameters, coloured by accuracy; each named box drawn as a rectangle."""
    fig = go.Figure()
    symbols = ("circle", "diamond")
    accs = [r.accuracy for rows in layers.values() for r in rows if r.accuracy is not None]
    lo, hi = (min(accs), max(accs)) if accs else (0.0, 1.0)
    lo, hi = max(0.0, min(lo, hi - 0.01)), min(1.0, max(hi, lo + 0.01))  # one point: a colour scale of some width
    for i, (name, rows) in enumerate(layers.items()):
        rows = [r for r in rows if r.accuracy is not None and r.counted and x in r.params and y in r.params]
        fig.add_scatter(x=[r.params[x] for r in rows], y=[r.params[y] for r in rows], mode="markers", name=name,
                        customdata=[[r.number, r.accuracy] for r in rows],
                        marker=dict(symbol=symbols[i % 2], size=12, color=[r.accuracy for r in rows], cmin=lo, cmax=hi,
                                    colorscale="Viridis", showscale=i == 0, line=dict(width=1, color="black"),
                                    colorbar=dict(title="accuracy", tickformat=".0%")),
                        hovertemplate=f"{xlabel} %{{x:.3g}}<br>{ylabel} %{{y:.3g}}<br>accuracy %{{customdata[1]:.2%}}"
                                      f"<br>trial %{{customdata[0]}}<extra>{name}</extra>")
    for j, (name, box) in enumerate(boxes.items()):
        (x0, x1), (y0, y1) = box[x], box[y]
        fig.add_scatter(x=[x0, x1, x1, x0, x0], y=[y0, y0, y1, y1, y0], mode="lines", name=name, hoverinfo="skip",
                        line=dict(color=PALETTE[(j + 1) % len(PALETTE)], dash="dash", width=2))
    fig.update_xaxes(type="log", dtick=1, exponentformat="power")
    fig.update_yaxes(type="log", dtick=1, exponentformat="power")
    fig.update_layout(dragmode="select")
    return _layout(fig, title, xlabel, ylabel, height=460)


# --- a study's live view ---------------------------------------------------------------------------------
def status_line(tuner: Tuner, name: str, spec: StudySpec, rows: Sequence[TrialRow]) -> str:
    done = sum(r.counted and r.state in ("COMPLETE", "PRUNED", "FAIL") for r in rows)
    best = best_row(rows)
    if tuner.running(name):
        state = "running here"
    elif any(r.state == "RUNNING" for r in rows):
        state = "a trial runs in another process"
    elif done >= spec.n_trials:
        state = "done"
    else:
        state = "stopped: press Resume to go on"
    pruned = sum(r.state == "PRUNED" for r in rows)
    text = f"**{plain(name)}**: {done} of {spec.n_trials} trials · {state}"
    text += f" · {pruned} pruned" if pruned else ""
    if best:
        text += f" · best {best.accuracy:.2%} (trial {best.number})"
    if (runner := tuner.runner(name)) and runner.state.error:
        text += f" · error: {plain(runner.state.error)}"
    return text


def table_rows(spec: StudySpec, rows: Sequence[TrialRow]) -> list[dict]:
    out = []
    for r in rows:
        params = {k: (f"{v:.4g}" if isinstance(v, float) else str(v))
                  for k, v in shown_params(spec.space, r.params).items()}
        out.append({"trial": r.number, "state": r.state.lower(), **params,
                    "test accuracy": f"{r.accuracy:.2%}" if r.accuracy is not None else "–",
                    "epochs": r.epochs, "seconds": round(r.seconds, 2) if r.seconds is not None else None,
                    "note": r.note or r.error, "run": r.run_id or ""})
    return out


def stop_resume(tuner: Tuner, names: Sequence[str], key: str, can_resume: bool = True) -> None:
    """Stop while any of these studies runs here; Resume when one has budget left and none runs (off while
    `can_resume` is False: the data is not on disk)."""
    opened = {n: tuner.open(n) for n in names}
    running = [n for n in names if tuner.running(n)]
    left = [n for n, (study, spec) in opened.items() if budget_used(study) < spec.n_trials]
    if running:
        if st.button("Stop", key=K.TUNE_STOP + key, help="The trial that is training ends now and runs again first "
                                                         "when you resume: nothing is lost, the study is in storage."):
            for n in running:
                tuner.stop(n)
            st.rerun(scope="app")
    elif left:
        if st.button("Resume", key=K.TUNE_RESUME + key, help="Go on where the study stopped.", disabled=not can_resume):
            for n in left:
                tuner.start(n)
            st.rerun(scope="app")


def optuna_figures(study, spec: StudySpec, rows: Sequence[TrialRow]) -> dict[str, go.Figure]:
    """Optuna's own charts of a study, those that have something to show yet."""
    import optuna.visualization as vis

    complete = sum(r.state == "COMPLETE" for r in rows)
    figs: dict[str, go.Figure] = {}
    if complete >= 1:
        figs["history"] = vis.plot_optimization_history(study, target_name="test accuracy")
        figs["history"].update_layout(title="Optimization history: each trial and the best so far")
        first = "lr" if any(d.name == "lr" for d in spec.space) else spec.space[0].name
        figs["slice"] = vis.plot_slice(study, params=[first], target_name="test accuracy")
        figs["slice"].update_layout(title=f"Test accuracy vs {first}" + (" (log axis)" if any(
            d.name == first and d.log for d in spec.space) else ""))
    if complete >= 2 and len(spec.space) >= 2:
        figs["parallel"] = vis.plot_parallel_coordinate(study, target_name="test accuracy")
        try:
            figs["importance"] = vis.plot_param_importances(study, target_name="test accuracy")
            figs["importance"].update_layout(title=f"Parameter importances (fANOVA over {complete} finished trials: "
                                                   "few trials, rough ranking)")
        except (ValueError, RuntimeError):
            pass  # too few distinct values yet
    if any(r.epochs for r in rows):
        figs["intermediate"] = vis.plot_intermediate_values(study)
        figs["intermediate"].update_layout(title="Test accuracy after each epoch (what the pruner compares)",
                                           xaxis_title="epoch", yaxis_title="test accuracy")
    for f in figs.values():
        f.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10))
    return figs


def study_view(tuner: Tuner, name: str, key: str) -> None:
    """Status, Stop / Resume, the trials table and Optuna's charts of one study."""
    study, spec = tuner.open(name)
    rows = trial_rows(study, tuner.store)
    st.markdown(status_line(tuner, name, spec, rows))
    stop_resume(tuner, [name], key)
    if rows:
        st.dataframe(table_rows(spec, rows), hide_index=True, width="stretch")
    figs = optuna_figures(study, spec, rows)
    order = [k for k in ("history", "slice", "parallel", "importance", "intermediate") if k in figs]
    for i in range(0, len(order), 2):
        cols = st.columns(2)
        for col, kind in zip(cols, order[i:i + 2]):
            col.plotly_chart(figs[kind], key=f"tune_fig_{key}_{kind}", width="stretch")


# --- random vs grid, repeated --------------------------------------------------------------------------------
_finished: dict[str, GvrResult] = {}  # group -> result: a finished repetition never changes, read it once


def gvr_results(tuner: Tuner) -> tuple[list[GvrResult], list[str]]:
    """Every finished repetition of the random-vs-grid lesson in storage (oldest first), and the names of its
    studies that run in this process now."""
    groups: dict[str, dict[str, str]] = {}
    for name, spec in reversed(tuner.specs()):  # oldest first
        if spec.lesson in ("grid", "random") and spec.group:
            groups.setdefault(spec.group, {})[spec.lesson] = name
    out = []
    for group, names in groups.items():
        if group not in _finished and len(names) == 2 and not any(tuner.running(n) for n in names.values()):
            (grid, spec), (random, _) = tuner.open(names["grid"]), tuner.open(names["random"])
            if result := gvr_result(group, trial_rows(grid), trial_rows(random), spec.n_trials):
                _finished[group] = result
        if group in _finished:
            out.append(_finished[group])
    return out, [n for names in groups.values() for n in names.values() if tuner.running(n)]


GVR_ASKED = ("tuning.random_wins", "tuning.matters")  # the predictions the random-vs-grid lesson asks for


def gvr_reveal(tuner: Tuner, found: dict[str, str], finished: Sequence[GvrResult], who: Viewer) -> None:
    """The learner's predictions about this repetition beside what it measured, once both searches have ended:
    the two searches' best test accuracies, and how far the grid's mean accuracy moves across each parameter."""
    if "grid" not in found:
        return
    grid, spec = tuner.open(found["grid"])
    result = next((r for r in finished if r.group == spec.group), None)
    outcomes = {}
    if result is not None:
        rows = trial_rows(grid)
        lr, eps = spread_along(rows, "lr"), spread_along(rows, "eps")
        outcomes = {"tuning.random_wins": P.tuning_random_wins(result.random_best, result.grid_best),
                    "tuning.matters": P.tuning_matters(lr, eps) if lr is not None and eps is not None else P.Outcome(
                        None, "The grid completed fewer than two values of a parameter: no effect to compare.")}
    reveal(spec.group, outcomes, who)
