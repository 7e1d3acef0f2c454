"""The BatchNorm lab's paper mode, drawn: Ioffe & Szegedy (2015), figure 1, from a pair of runs on this machine.
The computation is core/lessons/bn_paper.py; the panels are ui/paper_figures.py; the page calls `paper_mode_section`."""
from __future__ import annotations

import streamlit as st

from core.lessons.batchnorm import group_runs, lab_groups
from core.lessons.bn_paper import (FIXED_IMAGES, LR_CHOICES, MEDIAN_SHIFT, MUCH_MORE_STABLE, NETWORKS, PAPER_BATCH,
                                   PAPER_LR, PAPER_STD, PAPER_STEPS, RECORDS, SPREAD_FACTOR, STEP_CHOICES,
                                   accuracy_curve, numbers_rows, pair_configs, paper_verdicts, read_pair,
                                   start_paper_pair, total_steps, typical_unit)
from core.store.runs import AdmissionError
from core.store.groups import LabKind
from ui import keys as K
from ui.data import blocked_help, data_line
from ui.estimate import duration_caption
from ui.paper_figures import ARM_COLOURS, accuracy_panel, percentile_panel, shared_range
from ui.registry import BROKEN, plain
from ui.fragment import fragment

NETWORK_LABELS = {"paper": "the paper's network (sigmoid, SGD)",
                  "course": "the course's network, for contrast (ReLU, Adam)"}

WHAT_IT_SAYS = (
    "Section 4.1 of the paper trains, on MNIST, 3 fully connected hidden layers of 100 **sigmoid** units with weights "
    "initialised to small random Gaussian values, then a 10-way layer with softmax and cross-entropy, for **50,000 "
    "steps of 60 examples**, once as it is and once with BN after each hidden layer. Figure 1 (a) shows test accuracy "
    "against steps; (b) and (c) follow one typical unit of the last hidden layer: the 15th, 50th and 85th percentiles "
    "of its sigmoid's *input* over training. The paper reads them as: BN trains faster and reaches the higher "
    "accuracy; without BN the input distribution changes a lot, in mean and in variance; with BN it is much more "
    "stable. One click below trains that pair here (same seed: the same initial weights and the same minibatches) "
    "and checks each claim against the numbers it measured.")

_CHOICE_ROWS = (  # (what, the paper, here)
    ("optimizer", "not stated for this experiment",
     "plain SGD, w ← w − lr·∂L/∂w (no momentum, no decay): the simplest reading"),
    ("learning rate", "not stated",
     f"lr = {PAPER_LR:g}: among 0.1, 0.5, 1 and 2, the one at which the network *without* BN learned fastest over "
     "its first 10,000 steps on this machine (benchmarks/README.md, *paper mode*). Only the baseline was consulted, "
     "so the choice cannot favour BN"),
    ('"small random Gaussian"', "σ not stated",
     f"N(0, {PAPER_STD:g}²) for every weight, output layer included; biases 0"),
    ("input", "28×28 **binary** images",
     "grey pixels scaled to [−1, 1], as everywhere in this dashboard: not binarised"),
    ("BN", "after each hidden layer, before the sigmoid; ε and the averaging of the population statistics not stated",
     "Linear → BN → sigmoid with PyTorch's ε = 1e-5 and running-average momentum 0.1; the Linear keeps its bias "
     "(BN's mean subtraction cancels it)"),
    ("whose percentiles", '"one typical" unit; over which inputs not stated',
     f"over a fixed batch of the first {FIXED_IMAGES:,} test images, {RECORDS} times per run; the typical unit is the "
     "one whose median moved by the layer's median amount without BN (any unit can be chosen)"),
    ("BN network measured", "the training network (`N_BN^tr`: batch statistics)",
     "the same: every BN layer normalises the fixed batch with its own statistics (the table adds the median's move "
     "in eval mode, with the running averages)"),
    ("runs", "one per network", "one pair, one seed: nothing here measures seed-to-seed noise (the twins above do)"),
)
CHOICES = ("**What the paper leaves open, and what this page chose**\n\n| | the paper | here |\n|---|---|---|\n"
           + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in _CHOICE_ROWS))


def _verdict_line(v, live: bool) -> str:
    mark = {True: ":green-badge[held]", False: ":red-badge[not held]", None: ":gray-badge[not measured yet]"}[v.held]
    units = f" It holds for {v.units[0]} of the layer's {v.units[1]} units." if v.units else ""
    so_far = " (so far)" if live and v.held is not None else ""
    return f"({v.panel}) **{v.claim}** {mark}{so_far}. Rule: {v.rule}. Measured: {v.measured}.{units}"


def _controls(store, data) -> None:
    c1, c2, c3 = st.columns([2, 2, 1])
    network = c1.radio("Network", NETWORKS, format_func=NETWORK_LABELS.get, key=K.BN_PAPER_NETWORK)
    steps = c2.select_slider("Training steps (each run)", STEP_CHOICES, value=PAPER_STEPS, key=K.BN_PAPER_STEPS,
                             format_func=lambda n: f"{n:,}" + (" (the paper's)" if n == PAPER_STEPS else ""))
    lr = c3.select_slider("SGD learning rate", LR_CHOICES, value=PAPER_LR, key=K.BN_PAPER_LR,
                          format_func=lambda v: f"{v:g}") if network == "paper" else None
    if network == "course":
        st.caption(f"For contrast, the same measurement on the course's network: 512-256-128-32 ReLU units, PyTorch's "
                   f"initial weights, Adam at 0.001, at the paper's batch of {PAPER_BATCH} (the course trains batches "
                   "of 64) and step count; panels (b, c) then follow the input of a ReLU, and the verdicts use the "
                   "same rules.")
    configs = pair_configs(network, steps, lr)
    # Pairs of the same length first: the probe records a fixed number of times, so its share of an epoch
    # depends on the run's length.
    duration_caption(configs, data, f"2 runs of {steps:,} steps of {PAPER_BATCH} images, one after the other: ",
                     prefer=lambda r: LabKind.PAPER.owns(r.group) and total_steps(r.config) == steps)
    data_line(data, "the paper mode")
    if st.button("Train the pair", key=K.BN_PAPER_START, type="primary", disabled=not data.ok, help=blocked_help(data)):
        try:
            st.session_state[K.BN_PAPER_GROUP] = start_paper_pair(store, network, steps, lr)
        except AdmissionError as e:  # the server's training slots or memory cannot take it now
            st.error(plain(str(e)))


def _group_label(store, group: str) -> str:
    runs = group_runs(store, group)
    network = (runs[0].tags or {}).get("paper_mode", "paper")
    return f"{group}: {network} network, {total_steps(runs[0].config):,} steps, lr {runs[0].config.lr:g}"


def paper_mode_section(store, data) -> None:
    st.header("Paper mode: Ioffe & Szegedy (2015), figure 1")
    st.markdown(WHAT_IT_SAYS)
    with st.expander("What the paper leaves open, what this page chose, and what differs"):
        st.markdown(CHOICES)
    _controls(store, data)
    groups = lab_groups(store, LabKind.PAPER)
    if not groups:
        st.info("No paper-mode pair yet: press **Train the pair** (fewer steps make a quick first look).")
        return
    if st.session_state.get(K.BN_PAPER_GROUP) not in groups:
        st.session_state[K.BN_PAPER_GROUP] = groups[0]
    group = st.selectbox("Pair", groups, key=K.BN_PAPER_GROUP, format_func=lambda g: _group_label(store, g))
    live = any(r.live for r in group_runs(store, group))

    @fragment(run_every=2.0 if live else None)
    def pair_view() -> None:
        runs = group_runs(store, group)
        for r in runs:
            if r.snapshot.status in BROKEN:
                st.error(f"{plain(r.name)} {r.snapshot.status}: {plain(r.snapshot.error)}")
        pair = read_pair(store, group)
        if pair.live:
            done = sum(r.snapshot.step for r in runs)
            st.progress(min(1.0, done / (2 * pair.total)), text=f"{done:,} of {2 * pair.total:,} steps")
            if st.button("Stop this pair", key=K.BN_PAPER_STOP):
                for r in runs:
                    store.stop(r.id)
        _draw(pair)
        if live and not pair.live:
            st.rerun(scope="app")  # it ended: redraw once more, without polling

    pair_view()


def _draw(pair) -> None:
    plain_t, bn_t = pair.traces[False], pair.traces[True]
    if plain_t is None and bn_t is None:
        st.info(f"The panels appear with the first run's first record (before its first step, then every "
                f"{max(1, pair.total // RECORDS):,} steps).")
        return
    ref = plain_t or bn_t
    default = typical_unit(plain_t) if plain_t else 0
    unit = st.selectbox("Unit of the last hidden layer", list(range(ref.n_units)), index=default,
                        key=K.BN_PAPER_UNIT, format_func=lambda u: f"unit {u}" + (" (typical)" if u == default else ""))
    act = pair.activation
    series = {bn: ((t.steps, [rec[unit] for rec in t.sigmoid_input()]) if t and unit < t.n_units else ((), ()))
              for bn, t in pair.traces.items()}
    yrange = shared_range(series[False][1], series[True][1])
    c1, c2, c3 = st.columns(3)
    c1.plotly_chart(accuracy_panel({"with BN": accuracy_curve(bn_t, pair.final[True]),
                                    "without BN": accuracy_curve(plain_t, pair.final[False])}, pair.total),
                    key="bn_paper_acc", width="stretch")
    c2.plotly_chart(percentile_panel(*series[False], f"(b) Without BN: {act} input, unit {unit}",
                                     ARM_COLOURS["without BN"], pair.total, yrange),
                    key="bn_paper_plain", width="stretch")
    c3.plotly_chart(percentile_panel(*series[True], f"(c) With BN: {act} input, unit {unit}",
                                     ARM_COLOURS["with BN"], pair.total, yrange), key="bn_paper_bn", width="stretch")
    st.caption("(b, c): the 15th, 50th and 85th percentiles of the unit's input over the fixed batch, on one scale. "
               "With BN each layer normalises the batch with its own statistics, so a unit's mean and spread over the "
               "batch are set by what BN learned (β and γ) and by the shape of the distribution; without BN nothing "
               "holds them.")
    st.markdown("**The paper's claims, checked on this pair**")
    for v in paper_verdicts(pair, unit):
        st.markdown(_verdict_line(v, pair.live))
    st.caption(f"The rules were fixed before measuring: on the sigmoid's input a shift of {MEDIAN_SHIFT:g} moves its "
               f"output by up to {MEDIAN_SHIFT / 4:.3g} (its slope is at most 1/4); a spread change of "
               f"×{SPREAD_FACTOR:g} either way; \"much more stable\" = at most 1/{MUCH_MORE_STABLE:g} of the change "
               "without BN. Accuracy claims compare one run each, so a small gap says little.")
    st.markdown("**Reproduced numbers**")
    st.dataframe(numbers_rows(pair, unit), hide_index=True)
    st.caption("The paper prints no numbers for figure 1; read from its panels: (a) BN's curve is above the "
               "baseline's from early on to the end; (b) the baseline's percentiles move in level and spread over "
               "training; (c) BN's stay close to level. First → last: the records before the first and before the "
               "last step; test accuracy at the last step is the run's own evaluation after it.")
