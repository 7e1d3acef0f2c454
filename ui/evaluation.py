"""The Runs page's evaluation of one run: the confusion matrix (errors on a scale of their own, a click on a cell
picks that pair), the accuracy per class, and the misclassified test images of the chosen pair or of all pairs;
and its list of runs to clean up."""
from __future__ import annotations

import numpy as np
import streamlit as st

from core.lessons.evaluation import EvalReport
from core.store.runs import RunDeleteError, RunInfo, RunStore
from ui import keys as K
from ui.figures import CONFUSION_SCALES, bar_figure, confusion_figure, escape_label
from ui.registry import plain

GALLERY_WIDTH = 84  # px per image
CHART = 500  # px: the confusion matrix is square, its cells sized to it


def _picked(names: list[str]) -> None:
    """The confusion chart's selection callback: the clicked cell becomes the gallery's pair; an emptied selection
    (a double click) shows every pair again."""
    points = ((st.session_state.get(K.RUNS_CONFUSION) or {}).get("selection") or {}).get("points") or []
    index = {escape_label(n): i for i, n in enumerate(names)}
    cells = [(index.get(p.get("y")), index.get(p.get("x"))) for p in points]
    cells = [c for c in cells if None not in c]
    st.session_state[K.RUNS_PAIR] = cells[0] if cells else None


def evaluation_view(report: EvalReport, run_id: str, epoch: int) -> None:
    names = list(report.class_names)
    st.metric("Test accuracy", f"{report.accuracy:.2%}",
              help=f"The run's weights, saved at the end of epoch {epoch} (its last completed epoch), in eval mode: "
                   "BatchNorm uses its running statistics.")
    pair = st.session_state.get(K.RUNS_PAIR)
    if st.session_state.get(K.RUNS_PAIR_OF) != run_id:  # another run: its own cells
        st.session_state[K.RUNS_PAIR_OF], pair = run_id, None
        st.session_state[K.RUNS_PAIR] = None
    with st.container(horizontal=True, gap="large"):  # side by side where both fit, else one below the other
        with st.container(width=CHART):
            with st.container(horizontal=True, gap="medium", vertical_alignment="center"):
                scale = st.segmented_control("Colour", list(CONFUSION_SCALES), default="errors", required=True,
                                             format_func=CONFUSION_SCALES.get, key=K.RUNS_EVAL_SCALE)
                normalized = st.toggle("Row-normalised", key=K.RUNS_EVAL_NORMALIZED)
            st.plotly_chart(confusion_figure(report.confusion, names, normalized, scale, selected=pair, size=CHART),
                            key=K.RUNS_CONFUSION, width="content", on_select=lambda: _picked(names),
                            selection_mode="points", config={"displayModeBar": False})
            st.caption(("The diagonal (correct answers, grey) would dwarf every error on one colour scale: the "
                        "errors get a scale of their own. " if scale == "errors" else "")
                       + "Click a cell to see its images below.")
        with st.container(width=CHART):
            floor = max(0.0, float(np.floor(report.per_class_accuracy.min() * 20 - 1) / 20))  # 5% steps below the lowest
            st.plotly_chart(bar_figure(names, report.per_class_accuracy,
                                       "Accuracy per class" + (f" (axis from {floor:.0%})" if floor > 0 else ""),
                                       fmt=".1%", yrange=(floor, 1.02), percent=True, height=360),
                            key="runs_per_class", width="stretch")
    gallery(report, pair)


def gallery(report: EvalReport, pair: tuple[int, int] | None) -> None:
    names = report.class_names
    wrong = int(report.confusion.sum() - report.confusion.trace())
    if pair is not None and pair[0] == pair[1]:
        st.info(f"That cell holds the {int(report.confusion[pair])} correctly read {escape_label(names[pair[0]])}s: "
                "click a cell off the diagonal to see a kind of mistake.")
        pair = None
    if pair is None:
        shown = report.mistakes
        st.markdown(f"**Misclassified test images, highest loss first** ({wrong} in all; the worst {len(shown)} "
                    "shown). Each caption: true class → predicted class, and the loss −log p(true class), by which "
                    "they are sorted: the less probability the model gave the right answer, the higher.")
    else:
        shown = report.by_pair.get(tuple(pair), ())
        n = int(report.confusion[pair])
        c1, c2 = st.columns([4, 1], vertical_alignment="center")
        c1.markdown(f"**True {escape_label(names[pair[0]])}, read as {escape_label(names[pair[1]])}**: {n} of the "
                    f"{wrong} misclassified test images" + (f", the worst {len(shown)} shown" if n > len(shown) else "")
                    + ", highest loss first.")
        if c2.button("Show every pair", key=K.RUNS_PAIR_CLEAR, icon=":material/filter_alt_off:"):
            st.session_state[K.RUNS_PAIR] = None
            st.rerun()
    if shown:  # one element for all images: far cheaper to draw than one per image
        st.image([m.image for m in shown], width=GALLERY_WIDTH, clamp=True,
                 caption=[f"{names[m.true]}→{names[m.predicted]} loss {m.loss:.1f}" for m in shown])
    elif pair is not None:
        st.caption("No test image of this pair was misread.")


def cleanup(store: RunStore, runs: list[RunInfo], damaged: list) -> None:
    """Failed and damaged runs, with their reasons; one button deletes them all."""
    failed = [r for r in runs if r.snapshot.status == "failed"]
    if damaged:
        st.subheader("Damaged runs")
        st.caption("Folders in the runs folder that are named like runs but cannot be read as one.")
        st.dataframe([{"id": d.id, "why it cannot be read": d.reason} for d in damaged], hide_index=True,
                     width="stretch")
    if ignored := store.ignored():
        st.caption(f"Left alone in {plain(str(store.root))} (not runs): {plain(', '.join(ignored)[:300])}")
    if not failed and not damaged:
        return
    what = " and ".join(p for p in (f"{len(failed)} failed" if failed else "",
                                    f"{len(damaged)} damaged" if damaged else "") if p)
    c1, c2 = st.columns([1, 3])
    confirm = c1.checkbox(f"Yes, delete the {what} run{'s' if len(failed) + len(damaged) > 1 else ''}",
                          key=K.RUNS_CONFIRM_DELETE_FAILED)
    if c2.button("Delete failed runs", key=K.RUNS_DELETE_FAILED, icon=":material/delete_sweep:", disabled=not confirm):
        st.session_state.pop(K.RUNS_CONFIRM_DELETE_FAILED, None)
        try:
            st.session_state[K.RUNS_CLEANUP_RESULT] = (True, f"Deleted {len(store.delete_failed())} run(s).")
        except RunDeleteError as e:
            st.session_state[K.RUNS_CLEANUP_RESULT] = (False, str(e))
        st.rerun()
