"""Tuning lab: the course's tuning lessons as studies the learner runs. Every trial is a run of the run store.
Each lesson is a tab, and only the open one runs and is drawn (ui/tuning_lessons.py draws them)."""
import ui  # noqa: F401 - first: on a fresh server's first request, switches to app.py's menu before torch loads
import streamlit as st

from core.engine import course
from core.engine.config import TrainConfig
from core.engine.data import DataUnavailableError
from core.lessons import tuning as T
from core.tuning.storage import describe
from ui import keys as K
from ui.data import blocked_help, data_check, data_notice
from ui.registry import get_store, plain
from ui.tuning import get_pace, get_tuner, storage_notice
from ui.links import Param, apply_link, link_box, part_param, whole
from ui.session import viewer
from ui.tuning_lessons import LESSONS, Lab

st.title("Hyperparameter tuning lab")
st.markdown("Each lesson below is an experiment: press its button and a study starts on "
            "[Optuna](https://optuna.org). Every trial is an ordinary run — it appears on the Runs page — and a "
            "study lives in storage, so it can be stopped and resumed, even after a restart.")
store, tuner = get_store(), get_tuner()
LINK = [Param("epochs", K.TUNE_EPOCHS, whole(1, 10)), Param("max_batches", K.TUNE_BATCHES, whole(0, 938)),
        part_param("lesson", K.TUNE_TAB, K.TUNE_PARTS)]
apply_link("tuning", LINK)
if not storage_notice(tuner):
    st.stop()
data = data_check(course.DATASET)
pace = None  # this machine's pace, measured on MNIST: none while it is not on disk (nothing can train then)
if data_notice(data, K.TUNE):
    try:
        pace = get_pace(store.data_dir)
    except DataUnavailableError as e:
        st.error(plain(str(e)))

with st.container(border=True):
    c1, c2, c3 = st.columns([1.1, 1.5, 3.4])  # "Batches per epoch (0 = all)" on one line at 1400 px
    epochs = int(c1.number_input("Epochs per trial", 1, 10, 3, key=K.TUNE_EPOCHS))
    max_batches = int(c2.number_input("Batches per epoch (0 = all)", 0, 938, 100, key=K.TUNE_BATCHES)) or None
    words = T.budget_words(T.coarse(epochs, max_batches, 1))
    c3.markdown(f"**The budget:** each trial sees **{words['passes']:.2f}** passes over the {words['train_size']:,} "
                "training images, so a study ranks settings by what they learn in that short budget.")
    with c3.expander("What that means for the results"):
        st.markdown(f"A trial trains {epochs} epoch(s) of {words['batches']} batches and reports its test accuracy "
                    f"after each: {words['images']:,} images at batch size 64 (a run on the Train page makes "
                    f"{TrainConfig().epochs} passes by default). Settings that learn fast early win, and the winner "
                    "deserves a full run before you trust it. Trials are ranked by test accuracy, so the best one's "
                    "test accuracy is an optimistic estimate: a held-out dev set would keep the test set for the "
                    "final number.")
        if pace is not None:
            st.caption(f"Measured on this machine: a training step at batch 64 takes "
                       f"{(pace.step_fixed + 64 * pace.per_sample) * 1000:.1f} ms, an evaluation of the 10,000 test "
                       f"images {pace.eval_seconds:.2f} s. Studies are stored in the {describe(tuner.storage_url)}.")
    link_box(LINK, c3)

lab = Lab(tuner, store, pace, epochs, max_batches, blocked_help(data), owner=viewer().owner)
for tab, lesson in zip(st.tabs(K.TUNE_PARTS, key=K.TUNE_TAB, on_change="rerun"), LESSONS):
    if tab.open:
        with tab:
            lesson(lab)
