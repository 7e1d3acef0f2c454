"""BatchNorm lab: twin runs that differ only in BN, side by side, and what BN does inside the network."""
import streamlit as st

from core import TrainConfig, WeightsError
from core.lessons.batchnorm import (LR_SWEEP, bn_parameters, group_runs, noise_verdict, seconds_per_step, start_lr_sweep,
                        start_twins, summarize_arm, train_vs_eval)
from core.engine.data import dataset_spec, num_batches
from ui import keys as K
from ui.figures import arm_band_figure, bar_figure, line_figure, percentile_figure
from ui.registry import get_store

st.title("BatchNorm lab")
st.markdown("The course says *BN trains faster and reaches higher accuracy*. Test it: each pair of runs differs only "
            "in BatchNorm — same seed, so the same initial weights of every Linear layer and the same minibatch order.")
store = get_store()

with st.container(border=True):
    c1, c2, c3, c4 = st.columns(4)
    epochs = c1.number_input("Epochs", 1, 30, 5, key=K.BN_EPOCHS)
    k = c2.number_input("Seeds per arm", 1, 5, 2, key=K.BN_SEEDS, help="Seeds 0..k-1; the page shows mean and band.")
    lr = c3.select_slider("Learning rate", [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], 1e-3, key=K.BN_LR, format_func=lambda v: f"{v:g}")
    mb = c4.number_input("Batches per epoch (0 = all)", 0, 938, 0, key=K.BN_MAX_BATCHES)
    base = TrainConfig(epochs=int(epochs), lr=float(lr), max_batches=int(mb) or None)
    steps = base.epochs * num_batches(dataset_spec(base.dataset).train_size, base.batch_size, base.max_batches) * 2 * int(k)
    st.caption(f"{2 * int(k)} runs, one after another: about {steps * seconds_per_step(store) / 60:.1f} min on this machine.")
    if st.button("Train twins", key=K.BN_START, type="primary"):
        st.session_state[K.BN_GROUP] = start_twins(store, base, list(range(int(k))))

groups = sorted({r.group for r in store.list() if r.group and r.group.startswith("twins-")}, reverse=True)
if not groups:
    st.info("No twin runs yet: press **Train twins**. Fewer batches per epoch make a quick first try.")
    st.stop()
if st.session_state.get(K.BN_GROUP) not in groups:
    st.session_state[K.BN_GROUP] = groups[0]

def group_label(g: str) -> str:
    runs = group_runs(store, g)
    return f"{g}: {len(runs) // 2} seed(s) per arm, {runs[0].config.epochs} epochs, lr {runs[0].config.lr:g}"


group = st.selectbox("Twin set", groups, key=K.BN_GROUP, format_func=group_label)
live_now = any(r.live for r in group_runs(store, group))


@st.fragment(run_every=1.0 if live_now else None)
def comparison() -> None:
    runs = group_runs(store, group)
    arms = {"BN": [r.snapshot for r in runs if r.config.batch_norm], "no-BN": [r.snapshot for r in runs if not r.config.batch_norm]}
    done = sum(not r.live for r in runs)
    if any(r.live for r in runs):
        st.progress(done / len(runs), text=f"{done} of {len(runs)} runs done")
        if st.button("Stop this twin set", key=K.BN_STOP):
            for r in runs:
                store.stop(r.id)
    c1, c2 = st.columns(2)
    c1.plotly_chart(arm_band_figure(arms, "loss"), key="bn_loss", width="stretch")
    c2.plotly_chart(arm_band_figure(arms, "test_acc"), key="bn_acc", width="stretch")
    summaries = {arm: summarize_arm(snaps) for arm, snaps in arms.items()}
    rows = []
    for arm, s in summaries.items():
        row = {"arm": arm, "runs": s.runs,
               "final test acc": f"{s.final_mean:.2%} ± {s.final_sd:.2%}" if s.final_mean is not None else "–",
               "best test acc": f"{max(s.best_acc):.2%}" if s.best_acc else "–",
               "s / epoch": f"{s.seconds_per_epoch:.2f}" if s.seconds_per_epoch else "–"}
        for t, (ep, sec, n) in s.reach.items():
            row[f"to {t:.0%}: epochs"] = f"{ep:.1f} ({n}/{len(s.final_acc)})" if ep else "not reached"
            row[f"to {t:.0%}: seconds"] = f"{sec:.1f}" if sec else "–"
        rows.append(row)
    st.dataframe(rows, hide_index=True)
    st.markdown(noise_verdict(summaries["BN"], summaries["no-BN"]))
    if live_now and not any(r.live for r in group_runs(store, group)):
        st.rerun(scope="app")


comparison()
runs = group_runs(store, group)
bn_run = next((r for r in runs if r.config.batch_norm and r.snapshot.history), None)
plain_run = next((r for r in runs if not r.config.batch_norm and r.snapshot.history and r.config.seed == (bn_run.config.seed if bn_run else 0)), None)

st.header("Inside the network")
probes = {label: store.probes(r.id) for label, r in (("BN", bn_run), ("no-BN", plain_run)) if r is not None}
probes = {k: v for k, v in probes.items() if v and v["records"]}
if not probes:
    st.info("The inside view appears once the first seed's runs have trained a few steps.")
else:
    n_layers = len(next(iter(probes.values()))["records"][0]["pre"])
    layer = st.radio("Hidden layer", list(range(n_layers)), horizontal=True, key=K.BN_LAYER,
                     format_func=lambda i: f"{i + 1} ({runs[0].config.hidden[i]} units)")
    panels = {}
    for label, p in probes.items():
        steps = [r["step"] for r in p["records"]]
        panels[f"{label}: Linear output" + (" (before BN)" if label == "BN" else "")] = (steps, [r["pre"][layer] for r in p["records"]])
        if p["batch_norm"]:
            panels["BN: after BN"] = (steps, [r["post"][layer] for r in p["records"]])
    st.plotly_chart(percentile_figure(panels, f"Pre-activation percentiles (15th / 50th / 85th), layer {layer + 1}"),
                    key="bn_percentiles", width="stretch")
    grads = {f"{label}": [r["grad"][layer] for r in p["records"]] for label, p in probes.items()}
    steps = [r["step"] for r in next(iter(probes.values()))["records"]]
    m = min(len(v) for v in grads.values())
    c1, c2 = st.columns(2)
    c1.plotly_chart(line_figure(steps[:m], {k: v[:m] for k, v in grads.items()}, f"‖∂L/∂W‖, layer {layer + 1}", "step", "norm"),
                    key="bn_grads", width="stretch")
    if "BN" in probes:
        recs = probes["BN"]["records"]
        c2.plotly_chart(line_figure([r["step"] for r in recs], {
            "batch mean": [r["bn"][layer][0] for r in recs], "running mean": [r["bn"][layer][2] for r in recs],
            "batch variance": [r["bn"][layer][1] for r in recs], "running variance": [r["bn"][layer][3] for r in recs]},
            f"BN layer {layer + 1}, feature 0: batch statistics vs running averages", "step", "value"),
            key="bn_stats", width="stretch")
        last = probes["BN"]["records"][-1]
        pre, post = last["pre"][layer], last["post"][layer]
        st.markdown(f"At step {last['step']} the middle 70% of layer {layer + 1}'s pre-activations span "
                    f"{pre[0]:+.2f} … {pre[2]:+.2f} before BN and {post[0]:+.2f} … {post[2]:+.2f} after it.")
        try:
            params = bn_parameters(store.load_model(bn_run.id))[layer]
            c1, c2 = st.columns(2)
            c1.plotly_chart(bar_figure([str(i) for i in range(min(32, len(params["gamma"])))], params["gamma"][:32],
                                       "Learned γ (first 32 features)"), key="bn_gamma", width="stretch")
            c2.plotly_chart(bar_figure([str(i) for i in range(min(32, len(params["beta"])))], params["beta"][:32],
                                       "Learned β (first 32 features)"), key="bn_beta", width="stretch")
        except WeightsError as e:
            st.warning(str(e))

st.header("Train mode vs eval mode")
st.markdown("In train mode BN normalises with the statistics of the current batch; in eval mode with the running "
            "averages it learned. A single drawn digit is a batch of one: its own mean is itself, so train mode "
            "would erase it — that is why the Draw page classifies in eval mode.")
if bn_run is None:
    st.info("Needs a BN run that finished an epoch.")
else:
    if st.button("Classify 512 test images both ways", key=K.BN_MODES):
        with st.spinner("Classifying…"):
            st.session_state[K.BN_MODES_RESULT] = (bn_run.id, train_vs_eval(store.load_model(bn_run.id), "mnist", store.data_dir))
    saved = st.session_state.get(K.BN_MODES_RESULT)
    if saved and saved[0] == bn_run.id:
        res = saved[1]
        st.dataframe([{"batch size": m.batch_size, "eval mode (running stats)": f"{m.eval_acc:.2%}",
                       "train mode (batch stats)": f"{m.train_acc:.2%}" if m.train_acc is not None else f"fails: {m.error}"}
                      for m in res], hide_index=True)
        ok = [m for m in res if m.train_acc is not None]
        st.markdown(f"Eval mode gives {res[0].eval_acc:.2%} at every batch size. Train mode gives "
                    + ", ".join(f"{m.train_acc:.2%} at batch {m.batch_size}" for m in ok)
                    + (f"; at batch size {res[0].batch_size} it cannot run at all." if res[0].train_acc is None else "."))

st.header("Learning-rate headroom")
sweep_cfg = TrainConfig(epochs=1, max_batches=150)
sweep_steps = len(LR_SWEEP) * 2 * sweep_cfg.max_batches
st.markdown(f"BN is said to tolerate larger learning rates. This trains both arms at lr = {', '.join(f'{v:g}' for v in LR_SWEEP)} "
            f"for 150 batches each ({len(LR_SWEEP) * 2} runs): about **{sweep_steps * seconds_per_step(store):.0f} s** on this machine.")
if st.button("Run the sweep", key=K.BN_SWEEP_START):
    st.session_state[K.BN_SWEEP_GROUP] = start_lr_sweep(store, sweep_cfg)
sweeps = sorted({r.group for r in store.list() if r.group and r.group.startswith("lr-sweep-")}, reverse=True)
if sweeps:
    sweep = st.session_state.get(K.BN_SWEEP_GROUP) if st.session_state.get(K.BN_SWEEP_GROUP) in sweeps else sweeps[0]
    sweep_live = any(r.live for r in group_runs(store, sweep))

    @st.fragment(run_every=1.0 if sweep_live else None)
    def sweep_view() -> None:
        runs = group_runs(store, sweep)
        series = {}
        for bn in (True, False):
            arm = sorted((r for r in runs if r.config.batch_norm == bn), key=lambda r: r.config.lr)
            series["BN" if bn else "no-BN"] = [r.snapshot.final.test_acc if r.snapshot.final else None for r in arm]
        lrs = sorted({r.config.lr for r in runs})
        st.plotly_chart(line_figure(lrs, series, "Test accuracy after 150 batches vs learning rate",
                                    "learning rate", "test accuracy", log_x=True), key="bn_sweep", width="stretch")
        done = [(k, lr, a) for k, v in series.items() for lr, a in zip(lrs, v) if a is not None]
        if done:
            st.markdown("; ".join(f"{k} at lr {lr:g}: {a:.2%}" for k, lr, a in done) + ".")
        if sweep_live and not any(r.live for r in group_runs(store, sweep)):
            st.rerun(scope="app")

    sweep_view()
