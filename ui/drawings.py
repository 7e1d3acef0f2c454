"""Each run's accuracy on the drawing-like test set, as the Runs and Draw pages show it.

The set is built once per server process, in a background thread (seconds); until it is there, pages show
what is already known (numbers kept in the run folders) and "measuring…" for the rest, and look again once a
second. Measuring a run on the built set takes a fraction of a second and happens in the script thread.
The set is drawn from MNIST's test digits: while they are not on disk nothing is built (nor downloaded behind
the learner's back: the page's data notice says how to get them) and what is not known shows as "–".
"""
from __future__ import annotations

import streamlit as st

import core.shutdown as shutdown
from core.drawing import drawing_set as D
from core.engine.data import DataCheck, check_dataset, dataset_spec
from core.store.runs import AdmissionError, RunInfo, RunStore
from ui import keys as K
from ui.data import blocked_help
from ui.estimate import duration_caption, progress_words
from ui.registry import plain
from ui.fragment import fragment

COLUMN = "on drawings"  # the runs table's column, next to the MNIST test accuracy
MEASURING = "measuring…"


def drawings_count() -> int:
    return D.SIZE or dataset_spec("mnist").test_size  # one drawing per MNIST test digit


def _data_ok(store: RunStore) -> bool:
    return check_dataset("mnist", store.data_dir).ok  # a few stat calls and headers: cheap for every view


def _ready(store: RunStore) -> bool:
    try:
        return D.ready_or_building(store.data_dir, n=D.SIZE)
    except D.DrawingSetError as e:
        st.warning(f"Cannot measure the models on drawings: {e}")
        return False


def drawing_accuracies(store: RunStore, runs: list[RunInfo]) -> dict[str, float | None]:
    """run id -> accuracy on the drawings; None where it is not known (yet): not measurable, or waiting for
    the set. Runs still to be measured are measured here once the set is built."""
    todo = [r for r in runs if D.needs_measuring(store, r)]
    if todo and _data_ok(store) and _ready(store):
        with st.spinner(f"Measuring {len(todo)} model(s) on {drawings_count():,} drawings…"):
            for r in todo:
                if shutdown.closing():  # the server is exiting and waits for this thread: stop here
                    break
                D.run_accuracy(store, r.id)
    return {r.id: D.stored_accuracy(store, r.id) if D.measurable(r) else None for r in runs}


def waiting(store: RunStore, runs: list[RunInfo]) -> bool:
    """Whether some of these runs wait for the drawing set, which is not built yet (once it is, the next
    drawing_accuracies call measures them)."""
    return any(D.needs_measuring(store, r) for r in runs) and _data_ok(store) and not _ready(store)


def waiting_notice(store: RunStore) -> None:
    """A line that says the set is being built, and reruns the page once it is there."""
    @fragment(run_every=1.0)
    def poll() -> None:
        if _ready(store):
            st.rerun(scope="app")
        st.caption(f"Drawing {drawings_count():,} MNIST test digits as mouse strokes on the canvas, to measure the "
                   "models on them (once per server start)…")
    poll()


def cell(store: RunStore, info: RunInfo, acc: float | None, digits: int = 1) -> str:
    if acc is not None:
        return f"{acc:.{digits}%}"
    return MEASURING if D.needs_measuring(store, info) and _data_ok(store) else "–"


def quick_train(store: RunStore, data: DataCheck, label: str, primary: bool, owner: str = "") -> None:
    """The Draw page's quick-train button (off while the data is missing), or the progress of the quick run once it
    trains (`owner`'s own, in class mode); the page reloads when it ends."""
    quick = D.QUICK_MODEL
    live = store.find_live(quick, owner)
    if live is None and st.button(label, key=K.DRAW_QUICK_TRAIN, type="primary" if primary else "secondary",
                                  disabled=not data.ok, help=blocked_help(data) or
                                  f"{quick.label()}: BatchNorm and the robust preset (Train page: "
                                  "'Robust to drawings'), which augments every training batch"):
        try:
            live = store.start(quick, name="quick model for drawings (draw page)", owner=owner)
        except AdmissionError as e:
            st.error(plain(str(e)), icon=":material/block:")
    if live is None:
        duration_caption([quick], data)
        return

    @fragment(run_every=0.5)
    def quick_progress() -> None:
        snap = store.get(live.id).snapshot
        st.progress(snap.run_progress, text=progress_words(snap, quick))
        if snap.status == "failed":
            st.error(snap.error)
        elif not snap.live:
            st.rerun(scope="app")
    quick_progress()
