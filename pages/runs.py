"""Runs page: every run on disk, and three parts opened one at a time (only the open one runs and is drawn):
overlaid curves, the evaluation of a finished run, and managing runs (rename / delete / download; damaged and
failed runs, each with its reason, deletable)."""
import ui  # noqa: F401 - first: on a fresh server's first request, switches to app.py's menu before torch loads
import streamlit as st

from core import WeightsError
from core.engine.config import config_columns
from core.engine.data import DataUnavailableError
from core.lessons.evaluation import EvalReport, evaluate_model
from core.store.runs import RunDeleteError
from ui import keys as K
from ui.curves import loss_options
from ui.data import data_check, data_notice
from ui.drawings import COLUMN as DRAWINGS_COLUMN, cell, drawing_accuracies, waiting, waiting_notice
from ui.evaluation import cleanup, evaluation_view
from ui.figures import accuracy_figure, loss_figure
from ui.registry import BROKEN, default_run, fresh_label, get_store, lab_kind, ordered_runs, plain, run_labels
from ui.session import owner_name, shown_runs, viewer, visible_runs
from ui.fragment import fragment


store, who = get_store(), viewer()
st.title("Runs & evaluation")
runs = visible_runs(store.list(), who, st, "runs")  # class mode: a learner's own, others' under a switch
damaged = store.damaged()


if result := st.session_state.pop(K.RUNS_CLEANUP_RESULT, None):
    ok, msg = result
    st.success(msg) if ok else st.error(plain(msg))
data = data_check()
if not runs:
    if who.by is None:
        cleanup(store, runs, damaged)
    data_notice(data, "runs")
    st.info("No runs yet. Start one on the Train page.")
    st.page_link("pages/train.py", label="Go to Train", icon=":material/monitoring:")
    st.stop()

BEST_COLUMN = "highest test acc (epoch picked on the test set)"
BEST_HELP = ("The best of the run's per-epoch test accuracies. Choosing the epoch by its test accuracy makes this an "
             "optimistic number: the final test acc, or a held-out dev set to choose on, is the honest one.")
# What a learner compares first, then the name with room to be read whole, then every other setting.
FIRST = ["name", *(["learner"] if who.class_mode else []), "status", "final test acc", DRAWINGS_COLUMN, "BN", "Learning rate", "epochs", "seconds", BEST_COLUMN,
         "lab"]
TABLE_COLUMNS = {"name": st.column_config.TextColumn("name", width="large"),
                 DRAWINGS_COLUMN: st.column_config.TextColumn(DRAWINGS_COLUMN,  # as wide as its header
                                                              help="accuracy on the Draw page's drawing-like test set"),
                 "epochs": st.column_config.TextColumn("epochs", help="completed / planned"),
                 "lab": st.column_config.TextColumn("lab", help="which lab started it; empty: a run of yours"),
                 "message": st.column_config.TextColumn("message", width="medium"),
                 BEST_COLUMN: st.column_config.TextColumn(BEST_COLUMN, help=BEST_HELP)}


@fragment(run_every=2.0 if any(r.live for r in runs) else None)
def runs_table() -> None:
    rows = []
    on_drawings = drawing_accuracies(store, store.list())  # measured once per run, then read from its folder
    for r in ordered_runs(shown_runs(store.list(), who, "runs")):
        s = r.snapshot
        rows.append({"name": r.name, **({"learner": owner_name(r)} if who.class_mode else {}), "status": s.status,
                     "final test acc": f"{s.final.test_acc:.2%}" if s.final else "–",
                     DRAWINGS_COLUMN: cell(store, r, on_drawings.get(r.id), 2),
                     "seconds": round(s.elapsed, 1), "epochs": f"{s.epoch}/{r.config.epochs}",
                     BEST_COLUMN: f"{s.best_test_acc:.2%}" if s.history else "–",
                     "lab": lab_kind(r) or "", **config_columns(r.config), "message": s.error or "",
                     "problems reading it": len(r.problems), "id": r.id})
    rest = [c for c in rows[0] if c not in FIRST and c != "Epochs"]  # "Epochs" (planned) is in "epochs"
    st.dataframe(rows, hide_index=True, width="stretch", column_config=TABLE_COLUMNS, column_order=FIRST + rest)


if waiting(store, runs):
    waiting_notice(store)
runs_table()
if odd := sum(1 for r in runs if r.problems):
    st.caption(f"{odd} run{'s were' if odd > 1 else ' was'} read with problems in {'their' if odd > 1 else 'its'} "
               "files (column 'problems reading it'); pick one under *Manage runs* to see what and how it was read.")
labels = run_labels(runs)
lab = [r for r in runs if lab_kind(r)]
with_lab = st.toggle(f"List the labs' runs in the pickers below ({len(lab)})", key=K.RUNS_LAB_RUNS, disabled=not lab,
                     help="BatchNorm twins and sweeps, tuning trials, framework twins: off, the pickers list your own "
                          "runs (and any run already chosen)")
shown = ordered_runs(runs, lab=with_lab) or ordered_runs(runs)
shown = sorted(shown, key=lambda r: not who.owns(r))  # class mode: the learner's own first, then the class's
ids = [r.id for r in shown]
ok = [r.id for r in shown if r.snapshot.status not in BROKEN]
if failed := sum(r.snapshot.status == "failed" for r in runs) + len(damaged):
    st.caption(f":material/report: {failed} failed or damaged run{'s' if failed > 1 else ''}: under *Manage runs*, "
               "why, and a button that deletes them.")
compare, evaluate, manage = st.tabs(K.RUNS_PARTS, key=K.RUNS_TAB, on_change="rerun")


def overlay() -> None:
    if K.RUNS_OVERLAY not in st.session_state:  # default: the newest two that did not fail or diverge
        st.session_state[K.RUNS_OVERLAY] = (ok or ids)[:2]
    chosen_before = [i for i in st.session_state[K.RUNS_OVERLAY] if i in labels]
    st.session_state[K.RUNS_OVERLAY] = chosen_before
    chosen = st.multiselect("Runs to compare", ids + [i for i in chosen_before if i not in ids], key=K.RUNS_OVERLAY,
                            format_func=labels.get)
    if chosen:
        pairs = [(info.name, info.snapshot) for info in map(store.get, chosen)]
        log_y, smoothing = loss_options(K.RUNS_LOSS)
        c1, c2 = st.columns(2)
        c1.plotly_chart(loss_figure(pairs, log_y=log_y, smoothing=smoothing), key="runs_loss_chart", width="stretch")
        c2.plotly_chart(accuracy_figure(pairs), key="runs_acc_chart", width="stretch")


def manage_run() -> None:
    if st.session_state.get(K.RUNS_EDIT) not in labels:
        st.session_state[K.RUNS_EDIT] = default_run([r for r in shown if who.owns(r)] or shown).id
    edit_ids = ids if st.session_state[K.RUNS_EDIT] in ids else [st.session_state[K.RUNS_EDIT], *ids]
    fresh_label(K.RUNS_EDIT)
    run_id = st.selectbox("Run", edit_ids, key=K.RUNS_EDIT, format_func=labels.get)
    info = store.get(run_id)
    if info.snapshot.status in ("failed", "diverged"):
        st.error(f"{info.snapshot.status.capitalize()}: {plain(info.snapshot.error)}")
    elif info.snapshot.error:
        st.info(plain(info.snapshot.error))
    if info.problems:
        st.warning("Read with problems in its files; what could be read is shown:\n"
                   + "\n".join(f"- {plain(p)}" for p in info.problems), icon=":material/report:")
    if not who.owns(info):  # the store refuses too (RunPermissionError); the page says it first
        st.info(f"{plain(owner_name(info))}'s run: you can look at it, not rename, download or delete it.",
                icon=":material/lock:")
        return
    c1, c2, c3 = st.columns([2, 1, 1])
    new_name = c1.text_input("New name", info.name, key=K.RUNS_NEW_NAME)
    if c1.button("Rename", key=K.RUNS_RENAME):
        try:
            store.rename(run_id, new_name, by=who.by)
            st.rerun()
        except ValueError as e:
            st.error(str(e))
    c2.download_button("Download (zip)", lambda: store.export_zip(run_id, by=who.by),  # built only when clicked
                       file_name=f"run-{run_id}.zip", mime="application/zip", key="runs_download",
                       help="config.json, metrics.csv and weights.safetensors in one archive")
    if info.live:
        c3.caption("Stop this run (on the Train page) before deleting it.")
    else:
        confirm = c3.checkbox("Yes, delete it", key=K.RUNS_CONFIRM_DELETE)
        if c3.button("Delete", key=K.RUNS_DELETE, disabled=not confirm):
            st.session_state.pop(K.RUNS_CONFIRM_DELETE, None)
            try:
                store.delete(run_id, by=who.by)
                st.rerun()
            except (RunDeleteError, RuntimeError) as e:
                st.error(plain(str(e)))
    if who.by is None:  # failed and damaged runs of everyone: the teacher's (or the one learner's) to clear
        cleanup(store, runs, damaged)


@st.cache_data(max_entries=8, show_spinner="Evaluating on 10,000 test images…")
def cached_report(run_id: str, epochs_done: int) -> EvalReport:  # epochs_done: a new epoch invalidates
    info = store.get(run_id)
    return evaluate_model(store.load_model(run_id), info.config.dataset, store.data_dir)


def evaluation() -> None:
    done = [i for i in ids if (r := store.get(i)).snapshot.history and not r.live]
    if not done:
        st.info("Evaluation needs a run that has completed at least one epoch and is no longer training"
                + (" (the labs' runs are listed when the switch above is on)." if lab and not with_lab else "."))
        return
    if not data_notice(data, "runs"):
        return
    if st.session_state.get(K.RUNS_EVAL) not in done:  # never a diverged run by default
        st.session_state[K.RUNS_EVAL] = next((i for i in done if i in ok), done[0])
    fresh_label(K.RUNS_EVAL)
    eval_id = st.selectbox("Finished run", done, key=K.RUNS_EVAL, format_func=labels.get)
    epoch, message = store.get(eval_id).snapshot.epoch, store.get(eval_id).snapshot.error
    if message:  # e.g. a run stopped during an epoch: which epoch's weights are evaluated
        st.caption(plain(message))
    try:
        report = cached_report(eval_id, epoch)
    except (WeightsError, DataUnavailableError) as e:
        st.error(str(e))
        return
    evaluation_view(report, eval_id, epoch)


for tab, part in ((compare, overlay), (evaluate, evaluation), (manage, manage_run)):
    if tab.open:
        with tab:
            part()
