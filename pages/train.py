"""Train page: hyperparameters, Start / Pause / Resume / Stop, live charts of the selected run."""
import streamlit as st

from core import DuplicateRunError, TrainConfig
from core.engine.cpu import apply_thread_policy
from core.engine.snapshot import RunSnapshot
from core.lessons.softmax import double_softmax_floor, forms_at
from ui import keys as K
from ui.config_form import config_form
from ui.figures import accuracy_figure, loss_figure
from ui.registry import get_store, plain, run_label


store = get_store()
st.title("Train a network")


def read_config() -> TrainConfig | None:
    """Widgets (generated from TrainConfig) -> TrainConfig; shows the problem and returns None when a value is invalid."""
    with st.container(border=True):
        config = config_form(K.TRAIN)
        if st.session_state.get(K.TRAIN_DOUBLE_SOFTMAX):
            start = forms_at(0.10)  # every output equal: where an untrained network starts
            st.caption(":material/warning: Double softmax is wrong on purpose: CrossEntropyLoss already applies "
                       f"(log-)softmax, so softmax runs twice. The loss cannot go below {double_softmax_floor(10):.3f}, "
                       f"and the gradient is small from the start: {start.ratio:.0f}× smaller than the correct one "
                       "while every output is equal (numbers: Softmax explorer, *Double softmax*).")
    return config


def start(config: TrainConfig, allow_duplicate: bool = False) -> None:
    try:
        info = store.start(config, allow_duplicate=allow_duplicate)
    except DuplicateRunError as e:
        st.session_state[K.TRAIN_PENDING_DUPLICATE] = str(e)
        return
    st.session_state.pop(K.TRAIN_PENDING_DUPLICATE, None)
    st.session_state[K.TRAIN_RUN_ID] = info.id


config = read_config()
if st.button("Start", icon=":material/play_arrow:", key=K.TRAIN_START, type="primary", disabled=config is None):
    start(config)
if msg := st.session_state.get(K.TRAIN_PENDING_DUPLICATE):
    st.warning(f"{plain(msg)} Start a second copy anyway?")
    if st.button("Start a duplicate", key=K.TRAIN_CONFIRM_DUPLICATE) and config is not None:
        start(config, allow_duplicate=True)

runs = store.list()
if not runs:
    st.info("No runs yet: choose settings and press Start. (10 epochs take well under a minute on a laptop CPU.)")
    st.stop()

ids = [r.id for r in runs]
if st.session_state.get(K.TRAIN_RUN_ID) not in ids:  # default: the newest live run, else the newest run
    st.session_state[K.TRAIN_RUN_ID] = next((r.id for r in runs if r.live), ids[0])
labels = {r.id: run_label(r) for r in runs}
run_id = st.selectbox("Run shown", ids, key=K.TRAIN_RUN_ID, format_func=labels.get)
was_live = store.get(run_id).live


def fmt_seconds(s: float | None) -> str:
    return "–" if s is None else (f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min")


def show_snapshot(snap: RunSnapshot) -> None:
    if snap.status == "failed":
        st.error(f"This run failed: {plain(snap.error)}")
    elif snap.status == "diverged":
        st.error(f"This run diverged: {plain(snap.error)}")
    elif snap.error:
        st.warning(plain(snap.error))
    if snap.live:
        epoch_text = f"Epoch {min(snap.epoch + 1, snap.epochs)}/{snap.epochs}: step {snap.epoch_step}/{snap.steps_per_epoch}"
    else:  # an ended run has no current step (and one read from disk never had one)
        epoch_text = f"{snap.epoch} of {snap.epochs} epochs completed"
    st.progress(snap.epoch_progress, text=epoch_text)
    st.progress(snap.run_progress, text=f"Whole run: {snap.run_progress:.0%}")
    if snap.cpu_contended:
        st.warning(f"Training is competing for the CPU with other programs: {snap.recent_samples_per_sec:,.0f} "
                   f"samples/s now instead of the {snap.peak_samples_per_sec:,.0f} this run reached before. Closing "
                   "other busy programs (or browser tabs) gives it back.", icon=":material/speed:")
    m = st.columns(5)
    m[0].metric("Status", snap.status)
    m[1].metric("Samples / s", f"{snap.samples_per_sec:,.0f}" if snap.live else "–")
    m[2].metric("Time left", fmt_seconds(snap.seconds_left))
    m[3].metric("Last test accuracy", f"{snap.final.test_acc:.2%}" if snap.final else "–")
    m[4].metric("Last step loss", f"{snap.step_losses[-1][1]:.4f}" if snap.step_losses else "–")
    c1, c2 = st.columns(2)
    c1.plotly_chart(loss_figure([("run", snap)]), key="train_loss_chart", width="stretch")
    c2.plotly_chart(accuracy_figure([("run", snap)]), key="train_acc_chart", width="stretch")
    if snap.history:
        st.dataframe([{"epoch": h.epoch, "train loss": round(h.train_loss, 4), "train acc": f"{h.train_acc:.2%}",
                       "test loss": round(h.test_loss, 4), "test acc": f"{h.test_acc:.2%}", "seconds": round(h.seconds, 2)}
                      for h in snap.history], hide_index=True)


@st.fragment(run_every=1.0 if was_live else None)  # polls only while the run is live
def live_view() -> None:
    info = store.get(run_id)
    snap = info.snapshot
    threads = f" · {snap.threads} thread{'s' if snap.threads != 1 else ''} now" if snap.live and snap.threads else ""
    st.caption(f"{info.config.label()} · hidden {list(info.config.hidden)} · device {snap.device} · "
               f"{apply_thread_policy().describe()}{threads} · run id {info.id}")
    trainer = store.trainer(run_id)
    if trainer is not None and snap.live:
        b = st.columns([1, 1, 1, 5])
        if snap.status == "paused":
            if b[0].button("Resume", icon=":material/play_arrow:", key=K.TRAIN_RESUME):
                store.resume(run_id)
        elif b[0].button("Pause", icon=":material/pause:", key=K.TRAIN_PAUSE):
            store.pause(run_id)
        if b[1].button("Stop", icon=":material/stop:", key=K.TRAIN_STOP):
            store.stop(run_id)
    show_snapshot(store.get(run_id).snapshot)
    if was_live and not store.get(run_id).live:
        st.rerun(scope="app")  # the run ended: redraw the page once, without polling


live_view()
