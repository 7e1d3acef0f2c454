"""Train page: the settings on the left, the selected run's live curves on the right (in view without scrolling
at 1400x900), Start / Pause / Resume / Stop."""
import ui  # noqa: F401 - first: on a fresh server's first request, switches to app.py's menu before torch loads
import streamlit as st

from core.engine import course
from core import DuplicateRunError, TrainConfig
from core.store.runs import AdmissionError
from core.engine.cpu import apply_thread_policy
from core.engine.snapshot import RunSnapshot
from core.lessons.softmax import double_softmax_warning
from core.store.pace import steps_per_epoch
from ui import keys as K
from ui.config_form import config_form
from ui.curves import accuracy_note, loss_options
from ui.data import blocked_help, data_check, data_notice
from ui.estimate import duration_caption
from ui.figures import accuracy_figure, loss_figure
from core.store.waiting import queue_waits
from ui.links import apply_link, config_params, link_box
from ui.registry import default_run, fresh_label, get_store, lab_kind, ordered_runs, plain, run_labels, unique_name
from ui.session import viewer, visible_runs
from ui.fragment import fragment

MAIN_SETTINGS = ("dataset", "batch_norm", "lr", "batch_size", "epochs", "max_batches")  # the rest: "More settings"
METRIC_WIDTH = 150  # px: "Last test accuracy" and "98.23%" whole

store, who = get_store(), viewer()
st.title("Train a network")
LINK = config_params(K.TRAIN)  # every run setting round-trips through the page's URL
apply_link("train", LINK)
notice = st.container()  # the data check's message, once the chosen dataset is known
left, right = st.columns([1, 2.2], gap="medium")


def read_config() -> TrainConfig | None:
    """Widgets (generated from TrainConfig) -> TrainConfig; shows the problem and returns None when a value is invalid."""
    config = config_form(K.TRAIN, columns=1, main=MAIN_SETTINGS)
    if st.session_state.get(K.TRAIN_DOUBLE_SOFTMAX):
        st.caption(":material/warning: " + double_softmax_warning())  # computed numbers
    return config


def start(config: TrainConfig, allow_duplicate: bool = False) -> None:
    try:
        info = store.start(config, name=unique_name(store.list(), config.label()), allow_duplicate=allow_duplicate,
                           owner=who.owner)
    except DuplicateRunError as e:
        st.session_state[K.TRAIN_PENDING_DUPLICATE] = (str(e), config)
        return
    except AdmissionError as e:
        st.session_state[K.TRAIN_REFUSED] = str(e)
        return
    st.session_state.pop(K.TRAIN_PENDING_DUPLICATE, None)
    st.session_state[K.TRAIN_RUN_ID] = info.id


with left:
    config = read_config()
    data = data_check(config.dataset if config else course.DATASET)
    with notice:
        data_notice(data, K.TRAIN)
    st.session_state.pop(K.TRAIN_REFUSED, None)
    if st.button("Start", icon=":material/play_arrow:", key=K.TRAIN_START, type="primary",  # in view at 1400x900
                 disabled=config is None or not data.ok, help=blocked_help(data)):
        start(config)
    if config is not None:
        duration_caption([config], data)
        if config.precision_choice is not None:
            st.caption(f"Arithmetic: {config.precision_choice.describe()}.")
    if refused := st.session_state.get(K.TRAIN_REFUSED):
        st.error(plain(refused), icon=":material/block:")
    link_box(LINK)
    pending = st.session_state.get(K.TRAIN_PENDING_DUPLICATE)
    if pending and (pending[1] != config or store.find_live(pending[1], who.owner) is None):
        st.session_state.pop(K.TRAIN_PENDING_DUPLICATE)  # the settings changed, or the identical run ended
        pending = None
    if pending:
        st.warning(f"{plain(pending[0])} Start a second copy anyway?")
        if st.button("Start a duplicate", key=K.TRAIN_CONFIRM_DUPLICATE, disabled=not data.ok):
            start(config, allow_duplicate=True)
            st.rerun()  # the warning goes, the new run shows

runs = store.list()
if not runs:
    right.info("No runs yet: choose settings and press **Start**. The loss curve appears here within seconds and "
               "moves while the network trains.")
    st.stop()


def pick_run() -> str:
    """The run picker: the learner's own runs first; the labs' runs only on request (or when one is shown)."""
    lab = [r for r in runs if lab_kind(r)]
    c1, c2 = st.columns([2.3, 1], vertical_alignment="bottom")  # "Lab runs (12)" whole from 800 px up
    with_lab = c2.toggle(f"Lab runs ({len(lab)})", key=K.TRAIN_LAB_RUNS, disabled=not lab,
                         help="Also list the runs the BatchNorm lab and the other labs started")
    visible = visible_runs(runs, who, c2, "train")
    if not visible:
        st.info("No runs of yours yet: choose settings and press **Start**.")
        st.stop()
    shown = ordered_runs(visible, lab=with_lab)
    chosen = st.session_state.get(K.TRAIN_RUN_ID)
    if chosen not in {r.id for r in visible}:
        chosen = (default_run(shown) or default_run(visible)).id
        st.session_state[K.TRAIN_RUN_ID] = chosen
    ids = [r.id for r in shown]
    if chosen not in ids:
        ids.insert(0, chosen)
    labels = run_labels(runs)
    fresh_label(K.TRAIN_RUN_ID)  # "· running" becomes "· finished" in the box itself when the run ends
    return c1.selectbox("Run shown", ids, key=K.TRAIN_RUN_ID, format_func=labels.get)


def fmt_seconds(s: float | None) -> str:
    return "–" if s is None else (f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min")


def progress_text(snap: RunSnapshot, planned_steps: int, run_id: str) -> str:
    if snap.status == "queued":
        wait = queue_waits(store).get(run_id)
        return (wait.describe() if wait else "Queued").capitalize()
    if snap.live and snap.step == 0:
        return f"Epoch 1/{snap.epochs}: starting (loading the data, building the network)"
    if snap.live:
        left = f" · about {fmt_seconds(snap.seconds_left)} left" if snap.seconds_left is not None else ""
        return (f"Epoch {min(snap.epoch + 1, snap.epochs)}/{snap.epochs} · step {snap.epoch_step}/{planned_steps} · "
                f"whole run {snap.run_progress:.0%}{left}")
    return f"{snap.epoch} of {snap.epochs} epochs completed"  # the status is the first metric below


with right:
    run_id = pick_run()
was_live = store.get(run_id).live


def show_snapshot(snap: RunSnapshot, planned_steps: int, controls, note: str | None) -> None:
    if snap.status == "failed":
        st.error(f"This run failed: {plain(snap.error)}")
    elif snap.status == "diverged":
        st.error(f"This run diverged: {plain(snap.error)}")
    elif snap.error:
        st.warning(plain(snap.error))
    controls.progress(snap.run_progress if snap.live else snap.epoch / snap.epochs,
                      text=progress_text(snap, planned_steps, run_id))
    log_y, smoothing = loss_options(K.TRAIN)
    c1, c2 = st.columns(2)
    c1.plotly_chart(loss_figure([("run", snap)], total_steps=snap.epochs * planned_steps, log_y=log_y,
                                smoothing=smoothing).update_layout(height=300), key="train_loss_chart", width="stretch")
    c2.plotly_chart(accuracy_figure([("run", snap)], epochs=snap.epochs).update_layout(height=300),
                    key="train_acc_chart", width="stretch")
    if note and snap.history:
        c2.caption(note)
    if snap.cpu_contended:
        st.warning(f"Training is competing for the CPU with other programs: {snap.recent_samples_per_sec:,.0f} "
                   f"samples/s now instead of the {snap.peak_samples_per_sec:,.0f} this run reached before. Closing "
                   "other busy programs (or browser tabs) gives it back.", icon=":material/speed:")
    with st.container(horizontal=True, gap="medium"):  # the metrics wrap onto a second row where they do not fit
        for label, value in (("Samples / s", f"{snap.samples_per_sec:,.0f}" if snap.live else "–"),
                             ("Time left", fmt_seconds(snap.seconds_left)),
                             ("Last test accuracy", f"{snap.final.test_acc:.2%}" if snap.final else "–"),
                             ("Last step loss", f"{snap.step_losses[-1][1]:.4f}" if snap.step_losses else "–")):
            st.metric(label, value, width=METRIC_WIDTH)
    if snap.history:  # a plain table: a few rows, nothing to sort (and the grid widget costs ~0.3 s to draw)
        st.table([{"epoch": h.epoch, "train loss": f"{h.train_loss:.4f}", "train acc": f"{h.train_acc:.2%}",
                   "test loss": f"{h.test_loss:.4f}", "test acc": f"{h.test_acc:.2%}", "seconds": f"{h.seconds:.2f}"}
                  for h in snap.history], hide_index=True)


@fragment(run_every=1.0 if was_live else None)  # polls only while the run is live
def live_view() -> None:
    info = store.get(run_id)
    snap = info.snapshot
    row = st.columns([3.2, 1, 1], vertical_alignment="center")
    if store.trainer(run_id) is not None and snap.live and who.owns(info):
        if snap.status == "paused":
            if row[1].button("Resume", icon=":material/play_arrow:", key=K.TRAIN_RESUME):
                store.resume(run_id, by=who.by)
        elif snap.status != "queued" and row[1].button("Pause", icon=":material/pause:", key=K.TRAIN_PAUSE):
            store.pause(run_id, by=who.by)
        if row[2].button("Stop", icon=":material/stop:", key=K.TRAIN_STOP):
            store.stop(run_id, by=who.by)
    snap = store.get(run_id).snapshot
    planned = snap.steps_per_epoch if snap.step else steps_per_epoch(info.config)  # known before the data loads
    show_snapshot(snap, planned, row[0], accuracy_note(info.config))
    threads = f" · {snap.threads} thread{'s' if snap.threads != 1 else ''} now" if snap.live and snap.threads else ""
    named = "" if info.name == info.config.label() else f"{plain(info.name)} · "
    st.caption(f"**{snap.status}** · {named}{info.config.label()} · hidden {list(info.config.hidden)} · device {snap.device} · "
               f"{apply_thread_policy().describe()}{threads} · run id {info.id}")
    if was_live and not snap.live:
        st.rerun(scope="app")  # the run ended: redraw the page once (picker, duplicate warning), without polling


with right:
    live_view()
