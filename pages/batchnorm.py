"""BatchNorm lab: twin runs that differ only in BN, side by side, and what BN does inside the network. The lab's
parts are tabs, and only the open one runs and is drawn (ui/bnlab.py draws them)."""
import ui  # noqa: F401 - first: on a fresh server's first request, switches to app.py's menu before torch loads
import streamlit as st

from dataclasses import replace

from core import TrainConfig
from core.engine import course
from core.engine.data import DATASETS, dataset_spec
from core.lessons.batchnorm import DEFAULT_SEEDS, MAX_SEEDS, MIN_SEEDS_FOR_VERDICT, group_runs, lab_groups, start_twins
from core.store.groups import LabKind
from core.store.pace import estimate
from core.store.runs import AdmissionError
from ui import keys as K
from ui.bnlab import any_bn_run, inside_view, modes_view, sweep_view, twins_view
from ui.bnlab import twins_predict_box, twins_started
from ui.data import blocked_help, data_check, data_notice
from ui.bn_paper import paper_mode_section
from ui.links import Param, apply_link, choice, link_box, number, part_param, show_number, whole
from ui.registry import get_store, plain
from ui.session import viewer

st.title("BatchNorm lab")
st.markdown("The course says *BN trains faster and reaches higher accuracy*. Test it: each pair of runs differs only "
            "in BatchNorm — same seed, so the same initial weights of every Linear layer and the same minibatch order.")
store, who = get_store(), viewer()
LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
LINK = [Param("dataset", K.BN_DATASET, choice(list(DATASETS))), Param("epochs", K.BN_EPOCHS, whole(1, 30)),
        Param("seeds", K.BN_SEEDS, whole(1, MAX_SEEDS)), Param("lr", K.BN_LR, number(LRS[0], LRS[-1], LRS), show_number),
        Param("max_batches", K.BN_MAX_BATCHES, whole(0, 938)), part_param("part", K.BN_TAB, K.BN_PARTS)]
apply_link("bn", LINK)

with st.container(border=True):
    c0, c1, c2, c3, c4 = st.columns([1.1, 0.9, 1, 1.2, 1.5])  # at 800 px each label still on one line
    dataset = c0.selectbox("Dataset", list(DATASETS), index=list(DATASETS).index(course.DATASET), key=K.BN_DATASET,
                           format_func=lambda name: dataset_spec(name).label.split(" (")[0],  # "MNIST"
                           help="What the twins, the sweep and the train-vs-eval comparison train on and classify")
    epochs = c1.number_input("Epochs", 1, 30, 5, key=K.BN_EPOCHS)
    k = c2.number_input("Seeds per arm", 1, MAX_SEEDS, DEFAULT_SEEDS, key=K.BN_SEEDS,
                        help=f"Seeds 0..k-1; the page shows mean and band. Telling BN's effect from seed-to-seed "
                             f"noise takes at least {MIN_SEEDS_FOR_VERDICT} seeds per arm.")
    lr = c3.select_slider("Learning rate", LRS, 1e-3, key=K.BN_LR, format_func=lambda v: f"{v:g}")
    mb = c4.number_input("Batches per epoch (0 = all)", 0, 938, 0, key=K.BN_MAX_BATCHES)
    data = data_check(dataset)  # the lab trains and classifies the chosen dataset
    data_notice(data, "bn")
    base = TrainConfig(dataset=dataset, epochs=int(epochs), lr=float(lr), max_batches=int(mb) or None)
    twins = [replace(base, batch_norm=bn, seed=seed) for seed in range(int(k)) for bn in (True, False)]
    guess = estimate(store.list(), twins, prefer=lambda r: LabKind.TWINS.owns(r.group))  # twins carry a probe
    note = "" if int(k) >= MIN_SEEDS_FOR_VERDICT else (
        f" With {int(k)} seed(s) per arm the page shows the differences but gives no verdict on noise "
        f"(that takes {MIN_SEEDS_FOR_VERDICT}).")
    st.caption(f"{len(twins)} runs, one after another: {guess.describe()} on this machine ({guess.basis})." + note)
    twins_predict_box(who)
    if st.button("Train twins", key=K.BN_START, type="primary", disabled=not data.ok, help=blocked_help(data)):
        try:
            st.session_state[K.BN_GROUP] = start_twins(store, base, list(range(int(k))), owner=who.owner)
            twins_started(who, st.session_state[K.BN_GROUP])
        except AdmissionError as e:
            st.error(plain(str(e)), icon=":material/block:")
    link_box(LINK)

groups = lab_groups(store, LabKind.TWINS)
runs = []
if groups:
    if st.session_state.get(K.BN_GROUP) not in groups:
        st.session_state[K.BN_GROUP] = groups[0]

    def group_label(g: str) -> str:
        rs = group_runs(store, g)
        c = rs[0].config
        on = "" if c.dataset == course.DATASET else f", {dataset_spec(c.dataset).label}"
        return f"{g}: {len(rs) // 2} seed(s) per arm, {c.epochs} epochs, lr {c.lr:g}{on}"

    group = st.selectbox("Twin set", groups, key=K.BN_GROUP, format_func=group_label)
    runs = group_runs(store, group)
twins_tab, inside_tab, modes_tab, sweep_tab, paper_tab = st.tabs(K.BN_PARTS, key=K.BN_TAB, on_change="rerun")
if twins_tab.open:
    with twins_tab:
        if runs:
            twins_view(store, group)
        else:
            st.info("No twin runs yet: press **Train twins**. Fewer batches per epoch make a quick first try.")
if inside_tab.open:
    with inside_tab:
        if runs:
            inside_view(store, runs)
        else:
            st.info("What BN does inside the network shows here once a twin set has taken its first steps.")
if modes_tab.open:
    with modes_tab:
        modes_view(store, data, next((r for r in runs if r.config.batch_norm and r.snapshot.history), None)
                   or any_bn_run(store, dataset))
if sweep_tab.open:
    with sweep_tab:
        sweep_view(store, data, who.owner, dataset)
if paper_tab.open:
    with paper_tab:
        paper_mode_section(store, data if dataset == course.DATASET else data_check(course.DATASET))  # MNIST's
