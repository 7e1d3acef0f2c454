"""Predict, then reveal, on a page: an optional "Predict first" step before an experiment's button, and the reveal
beside its results (core/lessons/predictions.py). Predicting nothing leaves the page as it was."""
from __future__ import annotations

from typing import Sequence

import streamlit as st

from core.lessons.predictions import QUESTIONS, Outcome, PredictionBook, calibration, class_rows
from ui import keys as K
from ui.registry import get_store, plain
from ui.session import Viewer


@st.cache_resource
def _book(root: str) -> PredictionBook:
    return PredictionBook(root)


def prediction_book() -> PredictionBook:
    return _book(str(get_store().root))


def predict_box(page: str, questions: Sequence[str], who: Viewer, where=None, key: str | None = None) -> None:
    """An expander with one input per question (nothing chosen by default) and "Lock in"; predictions locked in
    and not yet about an experiment are shown as such (they survive a reload: they are on disk). `key`: this
    experiment's, where a page runs several (default: the page's)."""
    book = prediction_book()
    pending = {p.question: p for p in book.pending(page, who.owner, questions)}
    with (where or st).expander("Predict first (optional)", icon=":material/psychology_alt:", expanded=bool(pending)):
        st.caption("Commit to what you expect before the experiment runs; the page scores it when the results are in.")
        chosen = {}
        for qid in questions:
            q, widget = QUESTIONS[qid], f"{K.PREDICT}_{qid}"
            if qid in pending:
                st.markdown(f"{plain(q.text)} **{plain(q.shown(pending[qid].value))}** · locked in")
            elif q.kind == "choice":
                chosen[qid] = st.radio(q.text, q.choices, index=None, key=widget, horizontal=True)
            else:
                unit = f" ({q.unit}; within ±{q.tolerance:g} counts)" if q.unit else f" (within ±{q.tolerance:g} counts)"
                chosen[qid] = st.number_input(q.text + unit, float(max(q.lo, -1e6)), float(min(q.hi, 1e6)), value=None,
                                              key=widget, format="%g")
        given = {k: v for k, v in chosen.items() if v is not None}
        if not chosen:  # every question answered: nothing left to lock in
            st.caption("The next experiment you start here is scored against these.")
        elif st.button("Lock in", key=f"{K.PREDICT}_{key or page}_lock", disabled=not given,
                       help="Keep these predictions: the next experiment you start here is scored against them"):
            for qid, value in given.items():
                book.predict(qid, value, who.owner)
            st.rerun()


def attach(page: str, who: Viewer, subject: str, questions: Sequence[str] | None = None) -> None:
    """The experiment `subject` (a run group) started: this page's locked-in predictions (only `questions`, where
    the page runs several experiments) are about it now."""
    prediction_book().attach(page, who.owner, subject, questions)


def reveal(subject: str, outcomes: dict[str, Outcome], who: Viewer, where=None) -> None:
    """Each prediction about `subject` beside what was measured, how far off, and why (first outcome recorded)."""
    book = prediction_book()
    mine = book.about(subject, who.owner)
    if not mine:
        return
    box = (where or st).container(border=True)
    box.markdown("**Your predictions**")
    for p in mine:
        outcome = outcomes.get(p.question)
        if outcome is not None and p.outcome is None and outcome.measured is not None:
            p = book.reveal(p, outcome)
        q, shown = p.q, p.outcome or outcome
        if shown is None:
            box.markdown(f"{plain(q.text)} You: **{plain(q.shown(p.value))}** · the results are not in yet")
            continue
        measured = "–" if shown.measured is None else q.shown(shown.measured)
        verdict = p.scored.describe(q) if p.scored else "not scored"
        mark = {True: ":material/check_circle:", False: ":material/cancel:"}.get(p.scored.within if p.scored else None,
                                                                                  ":material/help:")
        box.markdown(f"{mark} {plain(q.text)} You: **{plain(q.shown(p.value))}** · measured: **{plain(measured)}** · "
                     f"{plain(verdict)}")
        box.caption(plain(shown.reason))
    right, scored = calibration(book.of(who.owner))
    if scored:
        box.caption(f"Your predictions so far: {right} of {scored} within range.")


def prediction_mode(page: str, where=None) -> bool:
    """For numbers a page computes at once (no run to wait for): a switch that hides them until predicted. Off by
    default: the page as it always was."""
    return (where or st).toggle("Predict before you see", key=f"{K.PREDICT}_{page}_mode",
                                help="Hide the numbers below until you have committed to a prediction of them")


def instant(page: str, qid: str, subject: str, outcome: Outcome, who: Viewer, where=None) -> bool:
    """Whether the page may show what `outcome` measures: prediction mode is off, or this learner committed to a
    prediction for `subject` (revealed here). Otherwise the question, and False: the page keeps the answer hidden."""
    if not st.session_state.get(f"{K.PREDICT}_{page}_mode"):
        return True
    book = prediction_book()
    if any(p.question == qid for p in book.about(subject, who.owner)):
        reveal(subject, {qid: outcome}, who, where)
        return True
    q = QUESTIONS[qid]
    box = (where or st).container(border=True)
    value = box.number_input(f"{q.text} (within ±{q.tolerance:g} counts)", float(max(q.lo, -1e6)),
                             float(min(q.hi, 1e6)), value=None, key=f"{K.PREDICT}_{qid}_{subject}", format="%g")
    if box.button("Lock in and show", key=f"{K.PREDICT}_{qid}_{subject}_lock", disabled=value is None):
        book.predict(qid, value, who.owner)
        book.attach(page, who.owner, subject, [qid])
        st.rerun()
    box.caption("The answer stays hidden until you commit (or switch *Predict before you see* off).")
    return False


def class_predictions() -> None:
    """The teacher's view (Class page): per question, what the class predicted beside what their experiments
    measured, anonymised: counts and quartiles, never a learner's name, key or experiment."""
    predictions, problems = prediction_book().all()
    for problem in problems[:3]:
        st.warning(plain(problem))
    rows = class_rows(predictions)
    if not rows:
        st.caption("No predictions yet: learners can commit to one before an experiment in the BatchNorm, Tuning, "
                   "Softmax and Frameworks labs, and their answers gather here, without names.")
        return
    st.table(rows, hide_index=True)  # a table wraps its cells: all five columns fit 800 px
    st.caption("Each row counts every prediction of that question; *measured* counts each experiment once, and "
               "*within range* compares each prediction with its own experiment's measurement.")
