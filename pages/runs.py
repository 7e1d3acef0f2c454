"""Runs page: every run on disk, overlays, rename / delete / download, evaluation of a finished run; damaged
and failed runs, each with its reason, deletable."""
import numpy as np
import streamlit as st

from core import WeightsError
from core.engine.config import config_columns
from core.engine.data import DataUnavailableError
from core.lessons.evaluation import EvalReport, evaluate_model
from core.store.runs import RunDeleteError
from ui import keys as K
from ui.data import data_check, data_notice
from ui.drawings import COLUMN as DRAWINGS_COLUMN, cell, drawing_accuracies, waiting, waiting_notice
from ui.figures import accuracy_figure, bar_figure, confusion_figure, loss_figure
from ui.registry import BROKEN, default_run, get_store, lab_kind, ordered_runs, plain, run_labels


store = get_store()
st.title("Runs & evaluation")
runs = store.list()
damaged = store.damaged()


def cleanup() -> None:
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


if result := st.session_state.pop(K.RUNS_CLEANUP_RESULT, None):
    ok, msg = result
    st.success(msg) if ok else st.error(plain(msg))
data = data_check()
if not runs:
    cleanup()
    data_notice(data, "runs")
    st.info("No runs yet. Start one on the Train page.")
    st.page_link("pages/train.py", label="Go to Train", icon=":material/monitoring:")
    st.stop()

BEST_COLUMN = "highest test acc (epoch picked on the test set)"
BEST_HELP = ("The best of the run's per-epoch test accuracies. Choosing the epoch by its test accuracy makes this an "
             "optimistic number: the final test acc, or a held-out dev set to choose on, is the honest one.")
# The columns a learner compares come first, the name is kept narrow: accuracy and seconds are in view at 1400 px.
TABLE_COLUMNS = {"name": st.column_config.TextColumn("name", width="medium"),
                 "status": st.column_config.TextColumn("status", width="small"),
                 DRAWINGS_COLUMN: st.column_config.TextColumn(DRAWINGS_COLUMN,  # as wide as its header
                                                              help="accuracy on the Draw page's drawing-like test set"),
                 "lab": st.column_config.TextColumn("lab", width="small",
                                                    help="which lab started it; empty: a run of yours"),
                 "message": st.column_config.TextColumn("message", width="medium"),
                 BEST_COLUMN: st.column_config.TextColumn(BEST_COLUMN, help=BEST_HELP)}


@st.fragment(run_every=2.0 if any(r.live for r in runs) else None)
def runs_table() -> None:
    rows = []
    on_drawings = drawing_accuracies(store, store.list())  # measured once per run, then read from its folder
    for r in ordered_runs(store.list()):
        s = r.snapshot
        rows.append({"name": r.name, "status": s.status,
                     "final test acc": f"{s.final.test_acc:.2%}" if s.final else "–",
                     DRAWINGS_COLUMN: cell(store, r, on_drawings.get(r.id), 2),
                     "seconds": round(s.elapsed, 1), "epochs done": f"{s.epoch}/{r.config.epochs}",
                     BEST_COLUMN: f"{s.best_test_acc:.2%}" if s.history else "–",
                     "lab": lab_kind(r) or "", **config_columns(r.config), "message": s.error or "",
                     "problems reading it": len(r.problems), "id": r.id})
    st.dataframe(rows, hide_index=True, width="stretch", column_config=TABLE_COLUMNS)


if waiting(store, runs):
    waiting_notice(store)
runs_table()
if odd := sum(1 for r in runs if r.problems):
    st.caption(f"{odd} run{'s were' if odd > 1 else ' was'} read with problems in {'their' if odd > 1 else 'its'} "
               "files (column 'problems reading it'); pick one under *Manage a run* to see what and how it was read.")
cleanup()
labels = run_labels(runs)
lab = [r for r in runs if lab_kind(r)]
with_lab = st.toggle(f"List the labs' runs in the pickers below ({len(lab)})", key=K.RUNS_LAB_RUNS, disabled=not lab,
                     help="BatchNorm twins and sweeps, tuning trials, framework twins: off, the pickers list your own "
                          "runs (and any run already chosen)")
shown = ordered_runs(runs, lab=with_lab) or ordered_runs(runs)
ids = [r.id for r in shown]
ok = [r.id for r in shown if r.snapshot.status not in BROKEN]

st.subheader("Overlay runs")
if K.RUNS_OVERLAY not in st.session_state:  # default: the newest two that did not fail or diverge
    st.session_state[K.RUNS_OVERLAY] = (ok or ids)[:2]
chosen_before = [i for i in st.session_state[K.RUNS_OVERLAY] if i in labels]
st.session_state[K.RUNS_OVERLAY] = chosen_before
chosen = st.multiselect("Runs to compare", ids + [i for i in chosen_before if i not in ids], key=K.RUNS_OVERLAY,
                        format_func=labels.get)
if chosen:
    pairs = [(info.name, info.snapshot) for info in map(store.get, chosen)]
    c1, c2 = st.columns(2)
    c1.plotly_chart(loss_figure(pairs), key="runs_loss_chart", width="stretch")
    c2.plotly_chart(accuracy_figure(pairs), key="runs_acc_chart", width="stretch")

st.subheader("Manage a run")
if st.session_state.get(K.RUNS_EDIT) not in labels:
    st.session_state[K.RUNS_EDIT] = default_run(shown).id
edit_ids = ids if st.session_state[K.RUNS_EDIT] in ids else [st.session_state[K.RUNS_EDIT], *ids]
run_id = st.selectbox("Run", edit_ids, key=K.RUNS_EDIT, format_func=labels.get)
info = store.get(run_id)
if info.snapshot.status in ("failed", "diverged"):
    st.error(f"{info.snapshot.status.capitalize()}: {plain(info.snapshot.error)}")
elif info.snapshot.error:
    st.info(plain(info.snapshot.error))
if info.problems:
    st.warning("Read with problems in its files; what could be read is shown:\n"
               + "\n".join(f"- {plain(p)}" for p in info.problems), icon=":material/report:")
c1, c2, c3 = st.columns([2, 1, 1])
new_name = c1.text_input("New name", info.name, key=K.RUNS_NEW_NAME)
if c1.button("Rename", key=K.RUNS_RENAME):
    try:
        store.rename(run_id, new_name)
        st.rerun()
    except ValueError as e:
        st.error(str(e))
c2.download_button("Download (zip)", lambda: store.export_zip(run_id),  # built only when clicked
                   file_name=f"run-{run_id}.zip",
                   mime="application/zip", key="runs_download",
                   help="config.json, metrics.csv and weights.safetensors in one archive")
if info.live:
    c3.caption("Stop this run (on the Train page) before deleting it.")
else:
    confirm = c3.checkbox("Yes, delete it", key=K.RUNS_CONFIRM_DELETE)
    if c3.button("Delete", key=K.RUNS_DELETE, disabled=not confirm):
        st.session_state.pop(K.RUNS_CONFIRM_DELETE, None)
        try:
            store.delete(run_id)
            st.rerun()
        except (RunDeleteError, RuntimeError) as e:
            st.error(plain(str(e)))

st.subheader("Evaluate a run on the test set")
done = [i for i in ids if (r := store.get(i)).snapshot.history and not r.live]
if not done:
    st.info("Evaluation needs a run that has completed at least one epoch and is no longer training"
            + (" (the labs' runs are listed when the switch above is on)." if lab and not with_lab else "."))
    st.stop()
if not data_notice(data, "runs"):
    st.stop()


@st.cache_data(max_entries=8, show_spinner="Evaluating on 10,000 test images…")
def cached_report(run_id: str, epochs_done: int) -> EvalReport:  # epochs_done: a new epoch invalidates
    info = store.get(run_id)
    return evaluate_model(store.load_model(run_id), info.config.dataset, store.data_dir)


if st.session_state.get(K.RUNS_EVAL) not in done:  # never a diverged run by default
    st.session_state[K.RUNS_EVAL] = next((i for i in done if i in ok), done[0])
eval_id = st.selectbox("Finished run", done, key=K.RUNS_EVAL, format_func=labels.get)
try:
    report = cached_report(eval_id, store.get(eval_id).snapshot.epoch)
except (WeightsError, DataUnavailableError) as e:
    st.error(str(e))
    st.stop()

st.metric("Test accuracy", f"{report.accuracy:.2%}",
          help=f"The run's weights, saved at the end of epoch {store.get(eval_id).snapshot.epoch} (its last completed "
               "epoch), in eval mode: BatchNorm uses its running statistics.")
normalized = st.toggle("Row-normalised", key=K.RUNS_EVAL_NORMALIZED)
c1, c2 = st.columns([3, 2])
c1.plotly_chart(confusion_figure(report.confusion, report.class_names, normalized), key="runs_confusion", width="stretch")
floor = max(0.0, float(np.floor(report.per_class_accuracy.min() * 20 - 1) / 20))  # 5% steps below the lowest
c2.plotly_chart(bar_figure(report.class_names, report.per_class_accuracy,
                           "Accuracy per class" + (f" (axis from {floor:.0%})" if floor > 0 else ""), fmt=".1%",
                           yrange=(floor, 1.02), percent=True),
                key="runs_per_class", width="stretch")
st.markdown(f"**Misclassified test images, highest loss first** ({int(report.confusion.sum() - report.confusion.trace())} "
            f"in all; the worst {len(report.mistakes)} shown). Each caption: true class → predicted class, and the "
            "loss −log p(true class), by which they are sorted: the less probability the model gave the right "
            "answer, the higher.")
cols = st.columns(8)
for i, m in enumerate(report.mistakes):
    cols[i % 8].image(m.image, width=96, clamp=True,
                      caption=f"{report.class_names[m.true]}→{report.class_names[m.predicted]} loss {m.loss:.1f}")
