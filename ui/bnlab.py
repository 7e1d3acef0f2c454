"""What the BatchNorm lab draws: the twins' comparison, the view inside the network, train vs eval mode and the
learning-rate sweep. Each arm keeps one colour on every chart (ui/figures.py ARM_COLORS: BN blue, no-BN red), and
every trace of an arm carries the arm's name as its legend group (tests/browser/test_pages.py reads them)."""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import streamlit as st

from core import TrainConfig, WeightsError
from core.engine.data import DataCheck
from core.lessons.batchnorm import (LR_SWEEP, ArmSummary, bn_parameters, group_runs, lab_groups, noise_verdict,
                                    read_probe, seed_pairs, standard_normal_percentiles, start_lr_sweep,
                                    summarize_arm, train_vs_eval)
from core.lessons.evaluation import class_shares, one_class_answer
from core.lessons import predictions as P
from core.store.groups import LabKind
from core.store.pace import estimate
from core.store.runs import AdmissionError, RunInfo, RunStore
from ui import keys as K
from ui.data import blocked_help, data_line
from ui.figures import ARM_COLORS, around, arm_band_figure, bar_figure, line_figure, percentile_figure
from ui.predict import attach, predict_box, reveal
from ui.registry import BROKEN, plain
from ui.session import Viewer, viewer
from ui.fragment import fragment

BN, NO_BN = "BN", "no-BN"
# Predict, then reveal: each experiment of the lab asks its own questions, and a prediction locked in for one is
# never attached to another started later
TWINS_ASKED = ("bn.first_to_97", "bn.epochs_apart", "bn.seeds_to_verdict")
MODES_ASKED = ("bn.train_mode_batch2",)
SWEEP_ASKED = ("bn.sweep_best_lr",)


def arm(info: RunInfo) -> str:
    return BN if info.config.batch_norm else NO_BN


def failures(runs: Sequence[RunInfo]) -> None:
    """Runs of a set that failed or diverged, each with its message: an empty chart is never the only sign."""
    for r in runs:
        if r.snapshot.status in BROKEN:
            st.error(f"{plain(r.name)} {r.snapshot.status}: {plain(r.snapshot.error)}")


# --- the twins side by side ---------------------------------------------------------------------------------
def final_cell(s: ArmSummary) -> str:
    """Mean ± standard deviation over seeds; with one seed the spread is unknown, not zero."""
    if s.final_mean is None:
        return "–"
    if len(s.final_acc) < 2:
        return f"{s.final_mean:.2%} (one seed: spread unknown)"
    return f"{s.final_mean:.2%} ± {s.final_sd:.2%} (sd over {len(s.final_acc)} seeds)"


def summary_table(summaries: dict[str, ArmSummary]) -> list[dict]:
    """One row per measure, one column per arm: two columns of values fit any width, where a column per measure
    ran off the page's right edge."""
    rows: dict[str, dict] = {}

    def put(measure: str, arm_name: str, value: str) -> None:
        rows.setdefault(measure, {"": measure})[arm_name] = value

    for a, s in summaries.items():
        put("runs", a, str(s.runs))
        put("final test accuracy", a, final_cell(s))
        put("highest test accuracy (epoch picked on the test set)", a,
            f"{s.best_mean:.2%}" if s.best_mean is not None else "–")
        put("seconds per epoch", a, f"{s.seconds_per_epoch:.2f}" if s.seconds_per_epoch else "–")
        n_runs = len(s.final_acc)
        for t, (ep, sec, n) in s.reach.items():
            put(f"epochs to {t:.0%}", a, f"{ep:.1f} ({n} of {n_runs} runs)" if n else f"not reached (0 of {n_runs})")
            put(f"seconds to {t:.0%}", a, f"{sec:.1f} (mean of the {n} that got there)" if n else "–")
    return list(rows.values())


def twins_predict_box(who: Viewer) -> None:
    """Before "Train twins": the optional predictions about the next twin set."""
    predict_box("bn", TWINS_ASKED, who, key="bn_twins")


def twins_started(who: Viewer, group: str) -> None:
    attach("bn", who, group, TWINS_ASKED)


def twins_outcomes(summaries: dict[str, ArmSummary], pairs: Sequence) -> dict[str, P.Outcome]:
    """What the twin set measured, from the lab's own summaries: reach of 97% per arm, paired differences by seed."""
    bn, plain_arm = summaries[BN].reach[0.97], summaries[NO_BN].reach[0.97]
    return {"bn.first_to_97": P.bn_first_to_97(bn, plain_arm), "bn.epochs_apart": P.bn_epochs_apart(bn, plain_arm),
            "bn.seeds_to_verdict": P.bn_seeds_to_verdict([p.diff for p in pairs])}


def twins_view(store: RunStore, group: str) -> None:
    """Loss and accuracy bands of both arms, the summary and the verdict on seed noise; live while the set trains."""
    live_now = any(r.live for r in group_runs(store, group))

    @fragment(run_every=1.0 if live_now else None)
    def comparison() -> None:
        runs = group_runs(store, group)
        arms = {BN: [r.snapshot for r in runs if arm(r) == BN], NO_BN: [r.snapshot for r in runs if arm(r) == NO_BN]}
        done = sum(not r.live for r in runs)
        if any(r.live for r in runs):
            st.progress(done / len(runs), text=f"{done} of {len(runs)} runs done")
            if st.button("Stop this twin set", key=K.BN_STOP):
                for r in runs:
                    store.stop(r.id)
        failures(runs)
        c1, c2 = st.columns(2)
        c1.plotly_chart(arm_band_figure(arms, "loss"), key="bn_loss", width="stretch")
        c2.plotly_chart(arm_band_figure(arms, "test_acc", epochs=runs[0].config.epochs), key="bn_acc",
                        width="stretch")
        summaries = {a: summarize_arm(snaps) for a, snaps in arms.items()}
        st.table(summary_table(summaries), hide_index=True)
        st.caption("Final: the last epoch. *Highest*: each run's best epoch, mean over seeds; the epoch is chosen by "
                   "looking at the test set, so it overstates what a model picked without the test set would score.")
        pairs = seed_pairs(runs)
        st.markdown(noise_verdict(pairs))
        # recorded once the whole set has ended: a measurement taken halfway would be kept as the outcome
        reveal(group, {} if any(r.live for r in runs) else twins_outcomes(summaries, pairs), viewer())
        if live_now and not any(r.live for r in group_runs(store, group)):
            st.rerun(scope="app")

    comparison()


# --- inside the network ---------------------------------------------------------------------------------------
def percentile_view(probes: dict, layer: int, units: int, hidden: Sequence[int]) -> int:
    """The percentile panels for one unit or the pooled layer; returns the unit chosen."""
    pooled = "all units of the layer pooled"
    views = (["one unit (as in Ioffe & Szegedy, figure 1)"] if units else []) + [pooled]
    c1, c2 = st.columns([3, 1])
    view = c1.radio("Percentiles of", views, horizontal=True, key=K.BN_PCT_VIEW)
    unit = c2.selectbox("Unit (one-unit view, mean and variance)", list(range(units)), key=K.BN_UNIT,
                        format_func=lambda u: f"unit {u}") if units else 0
    panels = {}
    for label, p in probes.items():
        samples = p.layer(layer)
        name = f"{label}: Linear output" + (" (before BN)" if p.batch_norm else "")
        panels[name] = (label, p.steps, [s.pre if view == pooled else s.pre_units[unit] for s in samples])
        if p.batch_norm:
            panels["BN: after BN"] = (label, p.steps, [s.post if view == pooled else s.post_units[unit] for s in samples])
    what = f"all {hidden[layer]} units pooled" if view == pooled else f"unit {unit}, over each batch"
    st.plotly_chart(percentile_figure(panels, f"Layer {layer + 1}, {what}: median (line) and 15th-85th percentiles "
                                              "(band)"), key="bn_percentiles", width="stretch")
    if view == pooled:
        lo, _, hi = standard_normal_percentiles()
        st.caption(f"Pooled over every unit: BN standardises each unit on its own batch, so pooled percentiles after "
                   f"BN sit near those of a standard normal ({lo:+.2f} … {hi:+.2f}) largely by construction, until γ "
                   "and β move away from 1 and 0. Ioffe & Szegedy follow one unit: choose *one unit* to see that view.")
    if BN in probes:
        last = probes[BN].records[-1]
        s = last.layers[layer]
        pre, post = (s.pre, s.post) if view == pooled else (s.pre_units[unit], s.post_units[unit])
        st.markdown(f"At step {last.step} the middle 70% of layer {layer + 1}'s pre-activations "
                    f"({what}) span {pre[0]:+.2f} … {pre[2]:+.2f} before BN and {post[0]:+.2f} … {post[2]:+.2f} after it.")
    return unit


def bn_statistics_view(p, layer: int, unit: int) -> None:
    """Batch statistics against BN's running averages, one unit (both lines the BN arm's: solid the batch, dashed
    the running average)."""
    samples = p.layer(layer)
    if not samples[0].running_mean:
        return
    u = unit if unit < len(samples[0].running_mean) else 0
    c1, c2 = st.columns(2)
    style = dict(colors={}, dashes={}, groups={})

    def series(batch: str, running: str, b: list, r: list) -> dict:
        for name, dash in ((batch, "solid"), (running, "dash")):
            style["colors"][name], style["dashes"][name], style["groups"][name] = ARM_COLORS[BN], dash, BN
        return {batch: b, running: r}

    c1.plotly_chart(line_figure(p.steps, series("batch mean", "running_mean", [s.batch_mean[u] for s in samples],
                                                [s.running_mean[u] for s in samples]),
                                f"BN layer {layer + 1}, unit {u}: mean", "step", "mean", **style),
                    key="bn_stats_mean", width="stretch")
    if samples[0].batch_var:
        c2.plotly_chart(line_figure(p.steps, series("batch variance, unbiased (÷ (B − 1))", "running_var",
                                                    [s.batch_var[u] for s in samples],
                                                    [s.running_var[u] for s in samples]),
                                    f"BN layer {layer + 1}, unit {u}: variance", "step", "variance", **style),
                        key="bn_stats_var", width="stretch")
        st.caption("Like with like: PyTorch updates running_var with the *unbiased* batch variance (divided by B − 1), "
                   "while it normalises the batch with the biased one (divided by B). Both curves here are what the "
                   f"running average is built from and what it holds; each step running ← (1 − m)·running + m·batch "
                   f"with this model's momentum m = {p.momentum:g}. The running curve trails the batch curve because it "
                   "averages the recent batches.")
    else:
        c2.caption("This run's probe was recorded by an older version that stored the biased batch variance, which is "
                   "not comparable with running_var: train a new twin set to see the variance.")


def gamma_beta_view(store: RunStore, bn_run: RunInfo, layer: int) -> None:
    """The learned γ and β of the first 32 features, on axes that span their values (γ starts at 1, β at 0)."""
    if not store.get(bn_run.id).snapshot.history:
        st.caption("Learned γ and β appear when this BN run has completed its first epoch (its weights are saved at "
                   "the end of each epoch).")
        return
    try:
        params = bn_parameters(store.load_model(bn_run.id))[layer]
    except WeightsError as e:
        st.warning(str(e))
        return
    c1, c2 = st.columns(2)
    for col, name, start in ((c1, "gamma", 1.0), (c2, "beta", 0.0)):
        values = params[name][:32]
        symbol = "γ" if name == "gamma" else "β"
        fig = bar_figure([str(i) for i in range(len(values))], values, f"Learned {symbol}, first {len(values)} "
                         f"features of layer {layer + 1}", colors=[ARM_COLORS[BN]] * len(values), fmt=".3f",
                         yrange=around(values, include=start), text=False, hline=(start, f"start: {start:g}"))
        col.plotly_chart(fig.update_traces(legendgroup=BN).update_xaxes(title="feature"), key=f"bn_{name}",
                         width="stretch")


def inside_view(store: RunStore, runs: Sequence[RunInfo]) -> None:
    """Probes of the twin set's first seed: percentiles, gradient norms, BN's statistics, γ and β."""
    first_seed = min(r.config.seed for r in runs)
    inside_runs = {arm(r): r for r in runs if r.config.seed == first_seed}
    inside_live = any(r.live for r in inside_runs.values())
    hidden = runs[0].config.hidden

    @fragment(run_every=2.0 if inside_live else None)
    def view() -> None:
        if inside_live and not any(store.get(r.id).live for r in inside_runs.values()):
            st.rerun(scope="app")  # the first seed's twins ended: redraw once, without polling
        probes = {label: p for label, r in inside_runs.items() if (p := read_probe(store.probes(r.id)))}
        broken = {label: s.status for label, r in inside_runs.items() if (s := store.get(r.id).snapshot).status in BROKEN}
        if not probes and broken:  # e.g. the data went missing: say so instead of waiting for ever
            st.warning(f"Nothing to show inside: seed {first_seed}'s " + " and ".join(
                f"{label} run {status}" for label, status in broken.items()) + " before its first step (why: on the "
                "Twins tab).")
            return
        if not probes:
            st.info(f"The inside view appears as soon as seed {first_seed}'s first run has taken its first training "
                    "step (the probe samples step 1 and every 25th step); it fills in while the twins train.")
            return
        n_layers = len(next(iter(probes.values())).records[0].layers)
        layer = st.radio("Hidden layer", list(range(n_layers)), horizontal=True, key=K.BN_LAYER,
                         format_func=lambda i: f"{i + 1} ({hidden[i]} units)")
        unit = percentile_view(probes, layer, min(p.units for p in probes.values()), hidden)
        grads = {label: [s.grad_norm for s in p.layer(layer)] for label, p in probes.items()}
        steps = next(iter(probes.values())).steps
        m = min(len(v) for v in grads.values())
        st.plotly_chart(line_figure(steps[:m], {k: v[:m] for k, v in grads.items()}, f"‖∂L/∂W‖, layer {layer + 1}",
                                    "step", "norm", colors=ARM_COLORS, groups={BN: BN, NO_BN: NO_BN}),
                        key="bn_grads", width="stretch")
        if BN in probes:
            bn_statistics_view(probes[BN], layer, unit)
            gamma_beta_view(store, inside_runs[BN], layer)

    view()


# --- train mode vs eval mode ----------------------------------------------------------------------------------
def any_bn_run(store: RunStore, dataset: str) -> RunInfo | None:
    return next((r for r in store.list() if r.config.batch_norm and r.config.dataset == dataset and r.snapshot.history
                 and not r.live), None)


def modes_view(store: RunStore, data: DataCheck, bn_run: RunInfo | None) -> None:
    """Train mode vs eval mode, with a BN run that completed an epoch (a twin, else any of the store's)."""
    st.markdown("In train mode BN normalises with the statistics of the current batch; in eval mode with the running "
                "averages it learned. A single drawn digit is a batch of one: its own mean is itself, so train mode "
                "would erase it — that is why the Draw page classifies in eval mode.")
    if bn_run is None:
        st.info("Needs a BN run that completed an epoch.")
        return
    data_line(data, "the comparison")
    who, subject = viewer(), f"bn-modes:{bn_run.id}"
    predict_box("bn", MODES_ASKED, who, key="bn_modes")
    if st.button("Classify 512 test images both ways", key=K.BN_MODES, disabled=not data.ok, help=blocked_help(data)):
        attach("bn", who, subject, MODES_ASKED)
        with st.spinner("Classifying…"):
            st.session_state[K.BN_MODES_RESULT] = (bn_run.id, train_vs_eval(store.load_model(bn_run.id), bn_run.config.dataset,
                                                                            store.data_dir))
    saved = st.session_state.get(K.BN_MODES_RESULT)
    if saved and saved[0] == bn_run.id:
        res = saved[1]
        st.table([{"batch size": m.batch_size, "eval mode (running stats)": f"{m.eval_acc:.2%}",
                   "train mode (batch stats)": f"{m.train_acc:.2%}" if m.train_acc is not None else "cannot run (below)"}
                  for m in res], hide_index=True)
        for m in res:
            if m.lesson:
                st.info(plain(m.lesson), icon=":material/school:")
        ok = [m for m in res if m.train_acc is not None]
        st.markdown(f"Eval mode gives {res[0].eval_acc:.2%} at every batch size. Train mode gives "
                    + ", ".join(f"{m.train_acc:.2%} at batch {m.batch_size}" for m in ok)
                    + (f"; at batch size {res[0].batch_size} it cannot run at all." if res[0].train_acc is None else "."))
        reveal(subject, {"bn.train_mode_batch2": P.bn_train_mode_batch2(res)}, who)


# --- the learning-rate sweep ----------------------------------------------------------------------------------
def collapsed_note(data: DataCheck, store: RunStore, done: list[tuple[str, float, float]]) -> None:
    """An arm whose accuracy is exactly one class's share of the test set answers that class for everything."""
    if not data.ok:
        return
    shares, n = class_shares(data.spec.name, store.data_dir), data.spec.test_size
    hits = [(k, lr, a, c) for k, lr, a in done if (c := one_class_answer(a, shares, n)) is not None]
    for k, lr, a, c in hits:
        name = data.spec.class_names[c]
        many = f"{name}s" if name.isdigit() else f"class {name}"
        st.info(f"**{k} at lr {lr:g}: {a:.2%}** is exactly the share of {many} among the {n:,} test images "
                f"({round(shares[c] * n):,} of them): what a network scores when it answers {name} for every image. "
                f"At this learning rate the {k} network collapsed and learned nothing about the images (guessing "
                f"at random would score about {1 / len(shares):.0%}).", icon=":material/info:")


def sweep_view(store: RunStore, data: DataCheck, owner: str, dataset: str) -> None:
    """The learning-rate sweep on `dataset`: its own runs, independent of the twins; `owner` starts it (class
    mode)."""
    sweep_cfg = TrainConfig(dataset=dataset, epochs=1, max_batches=150)
    sweep_guess = estimate(store.list(), [replace(sweep_cfg, batch_norm=bn, lr=lr) for lr in LR_SWEEP for bn in (True, False)],
                           prefer=lambda r: LabKind.LR_SWEEP.owns(r.group))
    st.markdown(f"BN is said to tolerate larger learning rates. This trains both arms at lr = {', '.join(f'{v:g}' for v in LR_SWEEP)} "
                f"for {sweep_cfg.max_batches} batches each ({len(LR_SWEEP) * 2} runs): **{sweep_guess.describe()}** on this "
                f"machine ({sweep_guess.basis}).")
    data_line(data, "the sweep")
    who = viewer()
    predict_box("bn", SWEEP_ASKED, who, key="bn_sweep")
    if st.button("Run the sweep", key=K.BN_SWEEP_START, disabled=not data.ok, help=blocked_help(data)):
        try:
            st.session_state[K.BN_SWEEP_GROUP] = start_lr_sweep(store, sweep_cfg, owner=owner)
            attach("bn", who, st.session_state[K.BN_SWEEP_GROUP], SWEEP_ASKED)
        except AdmissionError as e:
            st.error(plain(str(e)), icon=":material/block:")
    sweeps = lab_groups(store, LabKind.LR_SWEEP)
    if not sweeps:
        return
    sweep = st.session_state.get(K.BN_SWEEP_GROUP) if st.session_state.get(K.BN_SWEEP_GROUP) in sweeps else sweeps[0]
    sweep_live = any(r.live for r in group_runs(store, sweep))

    @fragment(run_every=1.0 if sweep_live else None)
    def view() -> None:
        runs = group_runs(store, sweep)
        series = {}
        for name in (BN, NO_BN):
            runs_of_arm = sorted((r for r in runs if arm(r) == name), key=lambda r: r.config.lr)
            series[name] = [r.snapshot.final.test_acc if r.snapshot.final else None for r in runs_of_arm]
        lrs = sorted({r.config.lr for r in runs})
        failures(runs)
        st.plotly_chart(line_figure(lrs, series, f"Test accuracy after {runs[0].config.max_batches} batches vs learning rate",
                                    "learning rate", "test accuracy", log_x=True, percent=True, colors=ARM_COLORS,
                                    groups={BN: BN, NO_BN: NO_BN}), key="bn_sweep", width="stretch")
        done = [(k, lr, a) for k, v in series.items() for lr, a in zip(lrs, v) if a is not None]
        if done:
            st.markdown("; ".join(f"{k} at lr {lr:g}: {a:.2%}" for k, lr, a in done) + ".")
            collapsed_note(data, store, done)
        plain_final = {r.config.lr: r.snapshot.final.test_acc for r in runs if arm(r) == NO_BN and r.snapshot.final}
        reveal(sweep, {} if any(r.live for r in runs) else {"bn.sweep_best_lr": P.bn_sweep_best_lr(plain_final)}, who)
        if sweep_live and not any(r.live for r in group_runs(store, sweep)):
            st.rerun(scope="app")

    view()
