"""Runs page: every run on disk, overlays, rename / delete / download, evaluation of a finished run; damaged
and failed runs, each with its reason, deletable."""
import streamlit as st

from core import WeightsError
from core.engine.config import config_columns
from core.engine.data import DataUnavailableError
from core.lessons.evaluation import EvalReport, evaluate_model
from core.store.runs import RunDeleteError
from ui import keys as K
from ui.drawings import COLUMN as DRAWINGS_COLUMN, cell, drawing_accuracies, waiting, waiting_notice
from ui.figures import accuracy_figure, bar_figure, confusion_figure, loss_figure
from ui.registry import get_store, plain, run_label


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
if not runs:
    cleanup()
    st.info("No runs yet. Start one on the Train page.")
    st.page_link("pages/train.py", label="Go to Train", icon=":material/monitoring:")
    st.stop()


@st.fragment(run_every=2.0 if any(r.live for r in runs) else None)
def runs_table() -> None:
    rows = []
    on_drawings = drawing_accuracies(store, store.list())  # measured once per run, then read from its folder
    for r in store.list():
        s = r.snapshot
        rows.append({"name": r.name, "status": s.status,
                     "final test acc": f"{s.final.test_acc:.2%}" if s.final else "–",
                     DRAWINGS_COLUMN: cell(store, r, on_drawings.get(r.id), 2),
                     "best test acc": f"{s.best_test_acc:.2%}" if s.history else "–",
                     "seconds": round(s.elapsed, 1), "epochs done": f"{s.epoch}/{r.config.epochs}",
                     **config_columns(r.config), "message": s.error or "",
                     "problems reading it": len(r.problems), "id": r.id})
    st.dataframe(rows, hide_index=True, width="stretch")


if waiting(store, runs):
    waiting_notice(store)
runs_table()
if odd := sum(1 for r in runs if r.problems):
    st.caption(f"{odd} run{'s were' if odd > 1 else ' was'} read with problems in {'their' if odd > 1 else 'its'} "
               "files (column 'problems reading it'); pick one under *Manage a run* to see what and how it was read.")
cleanup()
labels = {r.id: run_label(r) for r in runs}
ids = list(labels)

st.subheader("Overlay runs")
chosen = st.multiselect("Runs to compare", ids, default=ids[: min(2, len(ids))], key=K.RUNS_OVERLAY,
                        format_func=labels.get)
if chosen:
    pairs = [(info.name, info.snapshot) for info in map(store.get, chosen)]
    c1, c2 = st.columns(2)
    c1.plotly_chart(loss_figure(pairs), key="runs_loss_chart", width="stretch")
    c2.plotly_chart(accuracy_figure(pairs), key="runs_acc_chart", width="stretch")

st.subheader("Manage a run")
run_id = st.selectbox("Run", ids, key=K.RUNS_EDIT, format_func=labels.get)
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
done = [r.id for r in runs if r.snapshot.history and not r.live]
if not done:
    st.info("Evaluation needs a run that has completed at least one epoch and is no longer training.")
    st.stop()


@st.cache_data(max_entries=8, show_spinner="Evaluating on 10,000 test images…")
def cached_report(run_id: str, epochs_done: int) -> EvalReport:  # epochs_done: a new epoch invalidates
    info = store.get(run_id)
    return evaluate_model(store.load_model(run_id), info.config.dataset, store.data_dir)


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
c2.plotly_chart(bar_figure(report.class_names, report.per_class_accuracy, "Accuracy per class", fmt=".1%",
                           yrange=(max(0.0, float(report.per_class_accuracy.min()) - 0.05), 1.02)),
                key="runs_per_class", width="stretch")
st.markdown(f"**Misclassified test images, highest loss first** ({int(report.confusion.sum() - report.confusion.trace())} in all; "
            f"the worst {len(report.mistakes)} shown)")
cols = st.columns(8)
for i, m in enumerate(report.mistakes):
    cols[i % 8].image(m.image, width=84, clamp=True,
                      caption=f"true {report.class_names[m.true]} → {report.class_names[m.predicted]} ({m.confidence:.0%})")
