"""Class page (the teacher's; listed only with TEACHER_KEY in the URL): every learner, their runs and the queue, pause
all, stop or delete any run, and a challenge with its live leaderboard."""
import streamlit as st

from core.engine.config import memory_estimate
from core.engine.data import DATASETS
from core.lessons.challenge import Challenge, load_challenge, save_challenge
from core.store.runs import RunDeleteError
from core.store.waiting import queue_waits
from ui import keys as K
from ui.challenge import challenge_board
from ui.predict import class_predictions
from ui.registry import get_store, plain
from ui.session import learner_book, viewer
from ui.fragment import fragment

store, book = get_store(), learner_book()
if not viewer().teacher:  # reached by a direct URL without the teacher's key
    st.error("The Class page is the teacher's: open it with the teacher's key in the URL.")
    st.stop()
st.title("Class")


def gb(n: float) -> str:
    return f"{n / 2**30:.1f} GB"


@fragment(run_every=2.0)
def overview() -> None:
    runs, limits = store.list(), store.limits
    live = [r for r in runs if r.live]
    training = [r for r in live if r.snapshot.status in ("running", "paused")]
    memory = sum(memory_estimate(r.config).total for r in training)
    c = st.columns(4)
    c[0].metric("Learners", len(book.all()))
    c[1].metric("Training now", f"{sum(r.snapshot.status == 'running' for r in live)} of {limits.slots} slots")
    c[2].metric("Waiting", len(store.queue()))
    c[3].metric("Training memory", f"{gb(memory)} of {gb(limits.memory_total)}")
    for note in (*limits.notes, book.problem):
        if note:
            st.warning(plain(note))
    waits = queue_waits(store)
    rows = []
    for learner in book.all():
        mine = [r for r in runs if r.owner == learner.id]
        done = [r.snapshot.final.test_acc for r in mine if r.snapshot.final and r.snapshot.status == "finished"]
        rows.append({"learner": learner.name, "runs": len(mine),
                     "training": sum(r.snapshot.status in ("running", "paused") for r in mine),
                     "waiting": ", ".join(f"#{waits[r.id].position}" for r in mine if r.id in waits) or "–",
                     "finished": len(done), "best test acc": f"{max(done):.2%}" if done else "–"})
    st.dataframe(rows, hide_index=True, width="stretch")


overview()

left, right = st.columns([1, 1], gap="large")
with left:
    st.subheader("Runs")
    if st.button("Pause all", icon=":material/pause_circle:", key=K.CLASS_PAUSE_ALL,
                 help="Pause every run that trains now (each learner can resume their own)"):
        st.toast(f"{store.pause_all()} run(s) asked to pause")
    runs = store.list()
    if not runs:
        st.info("No runs yet.")
    else:
        labels = {r.id: f"{book.name_of(r.owner)} · {r.name} · {r.snapshot.status}" for r in runs}
        run_id = st.selectbox("Run", list(labels), format_func=labels.get, key=K.CLASS_RUN)
        info = store.get(run_id)
        b = st.columns(2)
        if b[0].button("Stop", icon=":material/stop:", key=K.CLASS_STOP, disabled=not info.live):
            store.stop(run_id)
            st.rerun()
        if b[1].button("Delete", icon=":material/delete:", key=K.CLASS_DELETE, disabled=info.live):
            st.session_state[K.CLASS_CONFIRM_DELETE] = run_id
        if st.session_state.get(K.CLASS_CONFIRM_DELETE) == run_id:
            st.warning(f"Delete {plain(info.name)} of {plain(book.name_of(info.owner))}? Its files are removed.")
            if st.button("Delete it", type="primary", key=K.CLASS_CONFIRM_DELETE + "_yes"):
                try:
                    store.delete(run_id)
                except (RuntimeError, RunDeleteError) as e:
                    st.error(plain(str(e)))
                st.session_state.pop(K.CLASS_CONFIRM_DELETE, None)
                st.rerun()
    if lost := store.interrupted_queued():
        st.warning(f"{len(lost)} run(s) were waiting for a slot when the server stopped.")
        if st.button("Queue them again", key=K.CLASS_REQUEUE):
            for r in lost:
                store.requeue(r.id)
            st.rerun()

with right:
    st.subheader("Challenge")
    challenge, problem = load_challenge(store.root)
    if problem:
        st.warning(plain(problem))
    with st.form("class_challenge_form"):
        title = st.text_input("Title", challenge.title if challenge else "Best accuracy in 2 epochs", key=K.CLASS_TITLE)
        goal = st.radio("Goal", ["accuracy", "speed"], key=K.CLASS_GOAL, horizontal=True,
                        format_func={"accuracy": "highest test accuracy", "speed": "fastest to a target"}.get)
        target = st.number_input("Target test accuracy (%) for a speed challenge", 50.0, 100.0, 97.0, 0.5,
                                 key=K.CLASS_TARGET)
        c = st.columns(3)
        epochs = c[0].number_input("Max epochs (0: any)", 0, 200, 2, key=K.CLASS_MAX_EPOCHS)
        params = c[1].number_input("Max parameters (0: any)", 0, 10**9, 100_000, 10_000, key=K.CLASS_MAX_PARAMS)
        batch = c[2].number_input("Max batch size (0: any)", 0, 60_000, 0, key=K.CLASS_MAX_BATCH)
        bn = st.radio("BatchNorm", ["either", "on", "off"], key=K.CLASS_BN, horizontal=True)
        if st.form_submit_button("Set the challenge", type="primary"):
            try:
                save_challenge(store.root, Challenge(
                    title.strip(), goal, target / 100 if goal == "speed" else None, epochs or None, params or None,
                    next(iter(DATASETS)), {"either": None, "on": True, "off": False}[bn], batch or None))
                st.rerun()
            except ValueError as e:
                st.error(plain(str(e)))
    if challenge and st.button("End the challenge", key=K.CLASS_CLEAR):
        save_challenge(store.root, None)
        st.rerun()


challenge_board(store, book)


@fragment(run_every=5.0)
def predictions() -> None:
    st.subheader("Predictions")
    class_predictions()


predictions()
