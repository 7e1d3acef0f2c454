"""Runs page: every run on disk, overlays, rename / delete / download, evaluation of a finished run."""
import streamlit as st

from core import WeightsError
from core.engine.config import config_columns
from core.engine.data import DataUnavailableError
from core.lessons.evaluation import EvalReport, evaluate_model
from ui import keys as K
from ui.figures import accuracy_figure, bar_figure, confusion_figure, loss_figure
from ui.registry import get_store, run_label


store = get_store()
st.title("Runs & evaluation")
runs = store.list()
if not runs:
    st.info("No runs yet. Start one on the Train page.")
    st.page_link("pages/train.py", label="Go to Train", icon=":material/monitoring:")
    st.stop()


@st.fragment(run_every=2.0 if any(r.live for r in runs) else None)
def runs_table() -> None:
    rows = []
    for r in store.list():
        s = r.snapshot
        rows.append({"name": r.name, "status": s.status,
                     "final test acc": f"{s.final.test_acc:.2%}" if s.final else "–",
                     "best test acc": f"{s.best_test_acc:.2%}" if s.history else "–",
                     "seconds": round(s.elapsed, 1), "epochs done": f"{s.epoch}/{r.config.epochs}",
                     **config_columns(r.config), "id": r.id})
    st.dataframe(rows, hide_index=True, width="stretch")


runs_table()
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
        store.delete(run_id)
        st.session_state.pop(K.RUNS_CONFIRM_DELETE, None)
        st.rerun()

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

st.metric("Test accuracy", f"{report.accuracy:.2%}", help="Eval mode: BatchNorm uses its running statistics.")
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
