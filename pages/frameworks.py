"""Frameworks: the course's network in PyTorch and in Keras, the defaults that differ, and twin runs."""
import streamlit as st

from core.engine import course
from core import TrainConfig
from core.engine.config import KERAS_MATCHABLE, keras_matched
from core.engine.data import dataset_spec, num_batches
from core.lessons.predictions import frameworks_gap
from core.lessons.frameworks import (compare_twins, defaults_table, keras_course_listing, keras_defaults_value,
                                     keras_listing, loss_agreement, pytorch_course_listing, pytorch_listing,
                                     read_live_defaults, replay, replay_seconds, start_framework_twins, step_seconds,
                                     twin_configs, twin_runs, yardstick_rows, yardstick_words)
from core.store.groups import LabKind
from ui import keys as K
from ui.data import blocked_help, data_check, data_line, data_notice
from ui.estimate import duration_caption
from ui.figures import accuracy_figure, loss_figure
from ui.links import Param, apply_link, choice, flag, flag_text, link_box, whole
from ui.predict import attach, predict_box, reveal
from ui.registry import BROKEN, get_store, plain
from ui.session import viewer
from ui.fragment import fragment

SWITCH_LABELS = {"init": "initial weights", "bn_momentum": "BatchNorm momentum", "bn_eps": "BatchNorm ε",
                 "adam_eps": "Adam ε (value and place)", "logits": "where softmax lives"}


@st.cache_data(show_spinner="Loading Keras and building its model…")
def keras_course() -> str:
    return keras_course_listing()


@st.cache_data(show_spinner="Loading Keras and reading its defaults…")
def live_rows():
    return [row.__dict__ for row in defaults_table(read_live_defaults())]


st.title("Frameworks: the same network in PyTorch and Keras")
st.markdown("The course gives its MNIST network twice. Below, each as the course writes it, generated from the model "
            "and optimizer a run here builds (BatchNorm on), so it cannot drift from what trains. The Keras model "
            "trains with Keras' own `fit` on the JAX backend, in the same run store as every PyTorch run.")
store, who = get_store(), viewer()
data = data_check(course.DATASET)  # the twin runs train on MNIST; the listings and the defaults table need no data
LINK = [Param("epochs", K.FW_EPOCHS, whole(1, 10)), Param("max_batches", K.FW_MAX_BATCHES, whole(0, 938)),
        Param("seed", K.FW_SEED, whole(0, 1000)), Param("batch_norm", K.FW_BN, flag, flag_text),
        Param("match", K.FW_MATCH, flag, flag_text),
        Param("switch_back", K.FW_SWITCH_BACK, lambda t: None if t == "none" else choice(KERAS_MATCHABLE)(t),
              lambda v: "none" if v is None else v)]
apply_link("frameworks", LINK)
data_line(data, "*Train both*", "under *Train both* below")

left, right = st.columns(2)
left.code(pytorch_course_listing(), language="python", wrap_lines=True)
left.caption("The course's own listing ends with `nn.Softmax(dim=1)` and feeds that to `nn.CrossEntropyLoss`: softmax "
             "twice (Softmax explorer, *Double softmax*). Here the model returns logits.")
right.code(keras_course(), language="python", wrap_lines=True)
with st.expander("The modules themselves: the code this dashboard runs, read from its files"):
    for listing in (pytorch_listing(), keras_listing()):
        st.markdown(f"**{listing.title}**")
        st.code(listing.code, language="python", line_numbers=True, wrap_lines=True)
        for line, note in listing.notes:
            st.markdown(f"- line {line}: {note}")

st.header("Defaults that differ")
st.caption("Each value below is read from a freshly built PyTorch or Keras object, not typed in. "
           "“switch” names the setting that gives the Keras run PyTorch's value.")
st.table([{"default": r["name"], "PyTorch": r["pytorch"], "Keras": r["keras"], "what it means": r["note"],
           "switch": r["switch"]} for r in live_rows()])

st.header("Train both")
data_notice(data, "fw")
# Settings left, the twin set's curves right: after Train both the curves move in view, as on the Train page.
setup, results = st.columns([2, 3], gap="medium")
with setup.container(border=True):
    c1, c2 = st.columns(2)
    epochs = c1.number_input("Epochs", 1, 10, 2, key=K.FW_EPOCHS)
    mb = c2.number_input("Batches per epoch (0 = all)", 0, 938, 200, key=K.FW_MAX_BATCHES)
    c1, c2 = st.columns(2, vertical_alignment="bottom")
    seed = c1.number_input("Seed", 0, 1000, 0, key=K.FW_SEED)
    bn = c2.toggle("BatchNorm", True, key=K.FW_BN)
    match = st.toggle("Match the defaults", key=K.FW_MATCH,
                      help="Keras gets PyTorch's initial weights, BN momentum and ε, Adam ε (value and place), and "
                           "logits into a from_logits loss")
    back = None
    if match:
        back = st.radio("Then switch one back to Keras' own", [None, *KERAS_MATCHABLE], horizontal=True,
                        key=K.FW_SWITCH_BACK, format_func=lambda v: "none" if v is None else SWITCH_LABELS[v])
    kd = keras_defaults_value(match, back)
    base = TrainConfig(batch_norm=bn, epochs=int(epochs), max_batches=int(mb) or None, seed=int(seed))
    steps = base.epochs * num_batches(dataset_spec(base.dataset).train_size, base.batch_size, base.max_batches)
    taken = [m for m in KERAS_MATCHABLE if m in keras_matched(kd)]
    st.caption(f"Two runs, one after the other, {steps} steps each, the same minibatches. The Keras run takes "
               + (f"PyTorch's {', '.join(SWITCH_LABELS[m] for m in taken)}" if taken else "only Keras' own defaults")
               + f" (keras_defaults = {kd}). Its first epoch includes compiling the training step.")
    duration_caption(twin_configs(base, kd), data, "Both: ")
    predict_box("frameworks", ["frameworks.gap"], who)
    if st.button("Train both", key=K.FW_START, type="primary", disabled=not data.ok, help=blocked_help(data)):
        st.session_state[K.FW_GROUP] = start_framework_twins(store, base, kd, owner=who.owner)
        attach("frameworks", who, st.session_state[K.FW_GROUP])
    link_box(LINK)

twin_sets: dict[str, float] = {}  # group -> when its newest run started
for r in store.list():
    if LabKind.FRAMEWORKS.owns(r.group):
        twin_sets[r.group] = max(twin_sets.get(r.group, 0.0), r.created)
groups = sorted(twin_sets, key=twin_sets.get, reverse=True)  # the newest set first
if not groups:
    results.info("No twin runs yet: press **Train both**. The loss and accuracy curves of both runs appear here "
                 "and move while they train; a few batches per epoch make a quick first try.")
    st.stop()
if st.session_state.get(K.FW_GROUP) not in groups:
    st.session_state[K.FW_GROUP] = groups[0]


def group_label(g: str) -> str:
    runs = twin_runs(store, g)
    k = runs.get("keras") or next(iter(runs.values()))
    return (f"Keras defaults: {k.config.keras_defaults} · {'BN' if k.config.batch_norm else 'no BN'} · "
            f"seed {k.config.seed} · {k.config.epochs} epochs ({g.split('-', 1)[-1]})")


group = results.selectbox("Twin set", groups, key=K.FW_GROUP, format_func=group_label)
live_now = any(r.live for r in twin_runs(store, group).values())


def yardstick(torch_run):
    """The same PyTorch run in float64, on request: what float32 rounding alone does, beside the Keras gap."""
    saved = st.session_state.setdefault(K.FW_YARDSTICKS, {})
    if torch_run.id in saved or torch_run.live or torch_run.snapshot.status != "finished":
        return saved.get(torch_run.id)
    snap = torch_run.snapshot
    secs = replay_seconds(sum(h.seconds for h in snap.history), snap.step)
    st.caption(f"How far apart should the curves be? Replaying the PyTorch run in float64 (same initial weights, same "
               f"minibatches) shows what float32 rounding alone does: about {secs:.0f} s here ({snap.step} steps at "
               f"{step_seconds()['float64'] * 1000:.1f} ms, a float64 step timed here, and the run's evaluations).")
    if st.button("Measure the float64 yardstick", key=K.FW_YARDSTICK, disabled=not data.ok, help=blocked_help(data)):
        with st.spinner("Replaying the PyTorch run in float64…"):
            saved[torch_run.id] = replay(torch_run.config, store.data_dir)
    return saved.get(torch_run.id)


@fragment(run_every=1.0 if live_now else None)
def comparison() -> None:
    runs = twin_runs(store, group)
    if any(r.live for r in runs.values()):
        done = sum(not r.live for r in runs.values())
        st.progress(done / 2, text=f"{done} of 2 runs done · "
                    + " · ".join(f"{fw}: {r.snapshot.status}" for fw, r in runs.items()))
        if st.button("Stop both", key=K.FW_STOP):
            for r in runs.values():
                store.stop(r.id)
    for r in runs.values():
        if r.snapshot.status in BROKEN:
            st.error(f"{plain(r.name)}: {r.snapshot.status}. {plain(r.snapshot.error)}")
    pairs = [(("PyTorch" if fw == "pytorch" else f"Keras ({r.config.keras_defaults} defaults)"), r.snapshot)
             for fw, r in runs.items()]
    # The axes span the whole planned runs from the start: both twins share epochs and minibatches.
    epochs = max(r.config.epochs for r in runs.values())
    steps = max(r.config.epochs * num_batches(dataset_spec(r.config.dataset).train_size, r.config.batch_size,
                                              r.config.max_batches) for r in runs.values())
    # One above the other: side by side, half a column cuts their titles and legends at 1400 px.
    st.plotly_chart(loss_figure(pairs, total_steps=steps).update_layout(height=300), key="fw_loss", width="stretch")
    st.plotly_chart(accuracy_figure(pairs, epochs=epochs).update_layout(height=300), key="fw_acc", width="stretch")
    if "pytorch" in runs and "keras" in runs:
        cmp = compare_twins(runs["pytorch"].snapshot, runs["keras"].snapshot)
        rows = []
        for fw in ("pytorch", "keras"):
            secs = cmp.seconds_per_epoch[fw]
            acc = cmp.final_acc[fw]
            rows.append({"framework": "PyTorch" if fw == "pytorch" else "Keras", "final test acc": f"{acc:.2%}" if acc is not None else "–",
                         "epochs done": len(secs), "s, epoch 1": f"{secs[0]:.2f}" if secs else "–",
                         "s / later epoch": f"{sum(secs[1:]) / len(secs[1:]):.2f}" if len(secs) > 1 else "–"})
        st.dataframe(rows, hide_index=True)
        if cmp.agreement is not None:
            a = cmp.agreement
            st.markdown(f"Over the {a.points} logged points (10-step means) both runs have, the training losses "
                        + (f"agree within 0.1% up to step {a.agree_until} and then part: " if a.parted_at else
                           "agree within 0.1% at every one: ")
                        + f"they differ by at most {a.max_rel:.2%} of PyTorch's ({a.max_rel_smoothed:.2%} on a "
                        "50-step moving mean).")
            if (replica := yardstick(runs["pytorch"])) is not None:
                snap = runs["pytorch"].snapshot
                st.dataframe(yardstick_rows(cmp, snap, replica), hide_index=True)
                st.markdown(yardstick_words(a, loss_agreement(snap.step_losses, replica.step_losses)))
        if not any(r.live for r in runs.values()):
            reveal(group, {"frameworks.gap": frameworks_gap(cmp.final_acc["pytorch"], cmp.final_acc["keras"])}, who)
    if live_now and not any(r.live for r in twin_runs(store, group).values()):
        st.rerun(scope="app")


with results:
    comparison()
