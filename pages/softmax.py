"""Softmax explorer: logits -> softmax -> cross-entropy -> gradient, every number checked against autograd."""
import numpy as np
import streamlit as st

from core.engine import course
from core.engine.data import DataUnavailableError
from core.lessons.softmax import (WORKED_CLASSES, WORKED_PROBS, autograd_bce, autograd_softmax_ce, binary_comparison,
                                  compared_forms, confidence_sweep, double_softmax_harm, logits_for_probs,
                                  ordinal_vs_onehot_losses, softmax_cross_entropy)
from core.lessons.softmax_experiments import (double_softmax_configs, form_name, label_experiment_configs, newest_pair,
                                              regression_error_rows, regression_vs_softmax)
from ui import keys as K
from ui.data import blocked_help, data_check, data_line, data_notice
from ui.estimate import duration_caption
from ui.figures import bar_figure, confusion_figure, line_figure
from ui.registry import BROKEN, get_store, ordered_runs, unique_name
from ui.predict import instant, prediction_mode
from ui.session import viewer
from ui.softmax import LINK, case_id, check_line, double_runs, sign_colors
from ui.links import apply_link, link_box
from core.lessons.predictions import softmax_double_floor, softmax_grad_true

st.title("Softmax, one-hot labels and cross-entropy")
who = viewer()
apply_link("softmax", LINK)
top = st.columns([1, 1, 2])
predicting = prediction_mode("softmax", top[0])
link_box(LINK, top[1])
data = data_check(course.DATASET)  # the two experiments train on MNIST; the rest computes from the sliders
data_line(data, "The two experiments (tabs *Labels* and *Double softmax*)", "in those tabs")

multi, binary, labels, double = st.tabs(K.SM_PARTS, key=K.SM_TAB, on_change="rerun")

if multi.open:  # only the open tab runs and is drawn
    with multi:
        st.markdown("Move the logits **z**; softmax turns them into probabilities **ŷ**; cross-entropy compares ŷ with the "
                    "one-hot target **y**. The gradient of the loss w.r.t. each logit is **ŷ − y** (divided by the "
                    "temperature T).")
        if st.button("Preset: the course's worked example (true class rabbit, ŷ = [0.1, 0.2, 0.7])", key=K.SM_PRESET):
            st.session_state[K.SM_N] = 3
            st.session_state[K.SM_NAMES] = ", ".join(WORKED_CLASSES)
            st.session_state[K.SM_TEMP] = 1.0
            for i, z in enumerate(logits_for_probs(WORKED_PROBS)):  # computed, not typed in
                st.session_state[f"{K.SM_LOGIT}{i}"] = float(z)
            st.session_state[K.SM_TRUE] = "rabbit"
        for key, default in ((K.SM_N, 3), (K.SM_NAMES, "cat, dog, rabbit"), (K.SM_TEMP, 1.0)):
            st.session_state.setdefault(key, default)  # defaults live in session state, so the preset can set them
        c1, c2, c3 = st.columns([1, 2, 1])
        n = c1.number_input("Classes", 2, 10, key=K.SM_N)
        names_text = c2.text_input("Class names", key=K.SM_NAMES)
        temp = c3.number_input("Temperature T", 0.05, 20.0, step=0.05, key=K.SM_TEMP)
        given = [s.strip() for s in names_text.split(",") if s.strip()]
        names = (given + [f"class {i}" for i in range(len(given), n)])[:n]
        if len(set(names)) < n:
            st.warning("Class names repeat; numbering them instead.")
            names = [f"{i}: {s}" for i, s in enumerate(names)]
        if st.session_state.get(K.SM_TRUE) not in names:
            st.session_state[K.SM_TRUE] = names[min(2, n - 1)]
        true_name = st.radio("True class", names, horizontal=True, key=K.SM_TRUE)
        target = names.index(true_name)
        cols = st.columns(n)
        for i in range(n):
            st.session_state.setdefault(f"{K.SM_LOGIT}{i}", 0.0)
        z = np.array([cols[i].slider(f"z[{names[i]}]", -10.0, 10.0, step=0.01, key=f"{K.SM_LOGIT}{i}") for i in range(n)])
        r = softmax_cross_entropy(z, target, temp)
        c1, c2 = st.columns(2)
        c1.plotly_chart(bar_figure(names, r.probs, "Softmax probabilities ŷ", yrange=(0, 1.1)), key="sm_probs", width="stretch")
        # prediction mode: the gradient waits for the learner's prediction
        shown = instant("softmax", "softmax.grad_true", case_id(z, target, temp), softmax_grad_true(r.probs[target], temp), who, c2)
        if shown:
            c2.plotly_chart(bar_figure(names, r.grad, "Gradient dL/dz = (ŷ − y)/T  (green: pushed up, red: pushed down)",
                                       colors=sign_colors(r.grad)), key="sm_grad", width="stretch")
        st.table({"class": names, "logit z": np.round(z, 4), "ŷ": np.round(r.probs, 4), "y (one-hot)": r.target.astype(int),
                      "−y·log ŷ": np.round(r.terms, 4), **({"dL/dz": np.round(r.grad, 4)} if shown else {})}, hide_index=True)
        st.markdown(f"**Loss** = −log ŷ[{names[target]}] = −log {r.probs[target]:.4f} = **{r.loss:.4f}**. "
                    "Only the true class's term is non-zero, yet every logit gets a gradient: the true class is pushed up, "
                    "all others down.")
        a_loss, a_grad = autograd_softmax_ce(z, target, temp)
        diff = max(abs(a_loss - r.loss), float(np.abs(a_grad - r.grad).max()))
        check_line(diff < 1e-9, "Analytic loss and gradient equal torch autograd for these settings", diff)

if binary.open:  # only the open tab runs and is drawn
    with binary:
        st.markdown("The course's example: the true class is **cat**. A two-way softmax has two outputs; "
                    "a sigmoid has one (P(not cat) = 1 − P(cat)).")
        p = st.slider("P(cat) predicted", 0.01, 0.99, 0.4, 0.01, key=K.SM_P_CAT)
        b = binary_comparison(p)
        c1, c2 = st.columns(2)
        with c1:
            st.markdown("**Two-way softmax + cross-entropy**")
            st.plotly_chart(bar_figure(["z[cat]", "z[not cat]"], b.softmax_grad, "dL/dz", colors=sign_colors(b.softmax_grad)),
                            key="sm_bin_softmax", width="stretch")
            st.markdown(f"Loss −log {b.softmax_probs[0]:.2f} = {b.softmax_loss:.4f}. Gradients "
                        f"{b.softmax_grad[0]:+.4f} and {b.softmax_grad[1]:+.4f}: equal in size, opposite in sign — "
                        "the same lesson learned twice.")
        with c2:
            st.markdown("**One sigmoid output + binary cross-entropy**")
            st.plotly_chart(bar_figure(["s = z[cat] − z[not cat]"], [b.bce_grad], "dL/ds", colors=sign_colors(np.array([b.bce_grad]))),
                            key="sm_bin_sigmoid", width="stretch")
            st.markdown(f"σ({b.sigmoid_logit:.4f}) = {b.sigmoid_prob:.4f} = softmax([z0, z1])[0] = {b.softmax_probs[0]:.4f}. "
                        f"Loss {b.bce_loss:.4f}, one gradient {b.bce_grad:+.4f}: the same information with half the "
                        "output units (and half the output layer's weights).")
        a_loss, a_grad = autograd_bce(b.sigmoid_logit, 1.0)
        s_loss, s_grad = autograd_softmax_ce(b.logits, 0)
        diff = max(abs(a_loss - b.bce_loss), abs(a_grad - b.bce_grad), abs(s_loss - b.softmax_loss),
                   float(np.abs(s_grad - b.softmax_grad).max()), abs(b.sigmoid_prob - b.softmax_probs[0]))
        check_line(diff < 1e-9, "Both losses and gradients equal torch autograd, and σ(z0 − z1) = softmax(z)[0]", diff)

if labels.open:  # only the open tab runs and is drawn
    with labels:
        st.markdown("Truth: **rabbit**. With ordinal labels (cat = 0, dog = 1, rabbit = 2) and squared error, predicting "
                    "*dog* costs less than predicting *cat*, as if a dog were 'closer' to a rabbit. One-hot labels with "
                    "cross-entropy charge both mistakes the same.")
        conf = st.slider("Confidence of the (one-hot) prediction", 0.4, 0.99, 0.9, 0.01, key=K.SM_LABEL_CONF)
        ordinal, ce = ordinal_vs_onehot_losses(3, 2, conf)
        c1, c2 = st.columns(2)
        c1.plotly_chart(bar_figure(["predict cat", "predict dog", "predict rabbit"], ordinal, "Ordinal labels: (k − 2)²"),
                        key="sm_ordinal", width="stretch")
        c2.plotly_chart(bar_figure(["predict cat", "predict dog", "predict rabbit"], ce,
                                   f"One-hot: −log ŷ[rabbit], {conf:.0%} on the predicted class"), key="sm_onehot", width="stretch")
        st.markdown("**Live experiment on MNIST**: the same MLP trained on 12,000 images for 3 epochs, once with one output "
                    "regressed on the digit's value (rounded to predict), once with a 10-way softmax. Tested on all 10,000 "
                    "test images.")
        data_notice(data, "sm_labels")
        duration_caption(label_experiment_configs(), data, "Two models, one after the other: ")
        if st.button("Run the experiment", key=K.SM_RUN_EXPERIMENT, disabled=not data.ok, help=blocked_help(data)):
            try:
                with st.spinner("Training both models…"):
                    st.session_state[K.SM_EXPERIMENT] = regression_vs_softmax(get_store().data_dir)
            except DataUnavailableError as e:
                st.error(str(e))
        if res := st.session_state.get(K.SM_EXPERIMENT):
            c1, c2 = st.columns(2)
            c1.metric("Regression on the digit value", f"{res.regression_acc:.2%}", help=f"{res.regression_seconds:.1f} s")
            c2.metric("10-way softmax + cross-entropy", f"{res.softmax_acc:.2%}", help=f"{res.softmax_seconds:.1f} s",
                      delta=f"{(res.softmax_acc - res.regression_acc) * 100:+.1f} points")
            reg, soft = res.regression_errors, res.softmax_errors
            st.markdown(f"Of the regression model's **{reg.errors:,}** errors, **{reg.off_by_one_share:.0%}** are off by "
                        f"one (read as the neighbouring digit, {reg.off_by_one:,}); of the softmax model's {soft.errors:,} "
                        f"errors, {soft.off_by_one_share:.0%}. A regression output puts the digits on a line, so its "
                        "mistakes land next door on that line; one-hot labels have no neighbours.")
            c1, c2 = st.columns([3, 2])
            c1.plotly_chart(confusion_figure(res.regression_confusion, [str(d) for d in range(10)], normalized=False)
                            .update_layout(title="Regression model: confusion matrix (counts)"),
                            key="sm_regression_confusion", width="stretch")
            c2.dataframe(regression_error_rows(res), hide_index=True, key="sm_regression_errors")

def double_tab() -> None:
    harm, at = double_softmax_harm(), compared_forms()  # autograd, float64
    wrong, start = harm.wrong, harm.start
    st.markdown("The course code ends the model with `nn.Softmax` and feeds that to `nn.CrossEntropyLoss`, which applies "
                "log-softmax again: an output that is **confidently wrong gets almost no gradient** — at "
                f"{wrong.p:.0%} on a wrong digit ‖dL/dz‖ is **{wrong.double_grad:.4f}** instead of **{wrong.grad:.3f}** "
                f"({wrong.ratio:.0f}× smaller) — and its loss can never report more than log(e + 9) = "
                f"**{harm.ceiling:.3f}**, nor less than log(1 + 9/e) = **{harm.floor:.3f}**.")
    with st.expander("Why that, and not the small gradient at the start, is the harm"):
        st.markdown(f"With every output equal (an untrained network) the double-softmax gradient is {start.ratio:.0f}× "
                    f"smaller too ({start.double_grad:.4f} vs {start.grad:.4f}), but a smaller gradient everywhere is "
                    "what Adam divides out: fed the same gradients 10× smaller, Adam moves the weights "
                    f"{harm.adam_scale:.4f}× as far (20 steps on random gradients, computed now). What it cannot "
                    "divide out is how the examples pull against each other. In the correct form a confidently wrong "
                    f"output pulls {harm.correct_weight:.2f}× as hard as an untrained one; in the double softmax "
                    f"{harm.double_weight:.3f}×: the examples the network gets most wrong are the ones it learns "
                    "least from, and their loss is capped, so the mean loss hides them too.")
    st.dataframe([{"the output puts": f.case, "ŷ[true]": round(f.p_true, 4), "correct ‖dL/dz‖": round(f.grad, 4),
                   "double ‖dL/dz‖": round(f.double_grad, 4), "times smaller": round(f.ratio, 2),
                   "correct loss": round(f.loss, 4), "double loss": round(f.double_loss, 4)} for f in at],
                 hide_index=True, key="sm_double_table")
    st.caption("Logits 0 except one, m, chosen so that softmax puts the stated share on the true digit or on a wrong "
               "one; losses and gradient norms by torch autograd in float64.")
    sw = confidence_sweep(10)
    c1, c2 = st.columns(2)
    c1.plotly_chart(line_figure(sw["p_true"], {"correct: CE(z)": sw["loss"], "double: CE(softmax(z))": sw["double_loss"]},
                                "Loss vs confidence", "ŷ[true]", "loss", hline=(harm.floor, f"floor {harm.floor:.3f}")),
                    key="sm_double_loss", width="stretch")
    c2.plotly_chart(line_figure(sw["p_true"], {"correct": sw["grad"], "double": sw["double_grad"]},
                                "Gradient norm ‖dL/dz‖ vs confidence", "ŷ[true]", "‖dL/dz‖"),
                    key="sm_double_grad", width="stretch")
    st.markdown("**Train both forms briefly** (no-BN, 3 epochs of 150 batches; they appear in the run store too):")
    store, pair = get_store(), double_softmax_configs()
    data_notice(data, "sm_double")
    duration_caption(pair, data, "Two runs, one after the other: ")
    if st.button("Train correct and double-softmax models", key=K.SM_TRAIN_BOTH, disabled=not data.ok,
                 help=blocked_help(data)):
        st.session_state[K.SM_DOUBLE_RUNS] = [
            (live.id if (live := store.find_live(cfg)) else
             store.start(cfg, name=unique_name(store.list(), form_name(cfg) + " (explorer)"), owner=who.owner).id)
            for cfg in pair]
    ids = st.session_state.get(K.SM_DOUBLE_RUNS) or []
    if not ids and (ids := newest_pair(ordered_runs(store.list(), lab=False), BROKEN)):
        st.caption("Showing the newest finished runs of each form from the run store.")
    double_runs(store, [i for i in ids if i in {r.id for r in store.list()}])

if double.open:  # only the open tab runs and is drawn
    with double:
        if instant("softmax", "softmax.double_floor", "softmax:double-floor:10",
                   softmax_double_floor(double_softmax_harm().floor), who):
            double_tab()
