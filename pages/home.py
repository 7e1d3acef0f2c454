"""Home: what the dashboard is, a three-step path for a first visit, and every page."""
import ui  # noqa: F401 - first: on a fresh server's first request, switches to app.py's menu before torch loads
import streamlit as st

from core.engine import course
from ui.data import data_check, data_notice
from ui.challenge import challenge_board
from ui.registry import get_store, lab_kind
from ui.session import learner_book, viewer

st.title("Learn deep learning by training real networks on MNIST")
st.write("Train a real PyTorch network on handwritten digits and watch what it learns.")
with st.expander("What runs here, and where the numbers come from"):
    st.write(
        "Every page trains or inspects a real PyTorch multilayer perceptron "
        "(784 → 512 → 256 → 128 → 32 → 10, ReLU, optional BatchNorm), and the Frameworks page its Keras twin. "
        "On the Train, Runs, BatchNorm, Frameworks and Draw pages the numbers come from the runs you start; the "
        "Softmax explorer computes its panels from the values you set (each checked against PyTorch autograd), and "
        "its experiment buttons train small models of their own.")
data_notice(data_check(course.DATASET), "home")
if (who := viewer()).class_mode:  # the teacher's challenge, if one is set, with the class's leaderboard
    challenge_board(get_store(), learner_book(), who.by)

trained = any(r.snapshot.history and lab_kind(r) is None for r in get_store().list())
st.subheader("Start here")
STEPS = (
    ("pages/train.py", "1 · Train a network", ":material/monitoring:",
     "Press **Start** with the default settings and watch the loss fall and the accuracy rise, epoch by epoch. "
     "Then switch BatchNorm on and start again."),
    ("pages/runs.py", "2 · See what it gets wrong", ":material/table_view:",
     "Compare your runs, then evaluate one: the confusion matrix, the accuracy per digit and the test images it "
     "misreads worst."),
    ("pages/draw.py", "3 · Draw a digit", ":material/draw:",
     "Let your network read your handwriting, and see each step that turns a drawing into the 28x28 input it "
     "was trained on."),
)
for col, (page, label, icon, what) in zip(st.columns(3), STEPS):
    with col.container(border=True, height="stretch"):
        st.page_link(page, label=f"**{label}**", icon=icon)
        st.markdown(what)
        if page == "pages/train.py" and trained:
            st.caption(":material/check_circle: you have trained a network")

st.subheader("Then explore")
st.page_link("pages/batchnorm.py", label="**BatchNorm lab**: BN / no-BN twins that differ only in BN, seed noise, activations inside the network, train vs eval mode, learning-rate headroom.", icon=":material/compare:")
st.page_link("pages/tuning.py", label="**Tuning lab**: random vs grid search, the right scale for a learning rate and for Adam's β1, coarse to fine, each an Optuna study you can stop and resume.", icon=":material/tune:")
st.page_link("pages/softmax.py", label="**Softmax explorer**: logits → softmax → cross-entropy → gradient ŷ − y; one-hot vs ordinal labels; sigmoid vs 2-way softmax; the double-softmax bug.", icon=":material/functions:")
st.page_link("pages/frameworks.py", label="**Frameworks**: the course's network in PyTorch and in Keras side by side, every default that differs, twin runs with the defaults matched one by one.", icon=":material/code:")
st.caption("Every page is in the menu at the top: Train, Runs & evaluation and Draw a digit are the three steps "
           "above.")
