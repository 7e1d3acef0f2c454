"""Softmax explorer: logits -> softmax -> cross-entropy -> gradient, every number checked against autograd."""
import numpy as np
import streamlit as st

from core import TrainConfig
from core.engine.data import DataUnavailableError
from core.lessons.softmax_experiments import regression_vs_softmax
from core.lessons.softmax import (COMPARED_CONFIDENCES, WORKED_CLASSES, WORKED_PROBS, autograd_bce, autograd_softmax_ce,
                                  binary_comparison, confidence_sweep, double_softmax_floor, forms_at, logits_for_probs,
                                  ordinal_vs_onehot_losses, softmax_cross_entropy)
from ui import keys as K
from ui.figures import accuracy_figure, bar_figure, confusion_figure, line_figure, loss_figure
from ui.data import blocked_help, data_check, data_line, data_notice
from ui.registry import BROKEN, get_store, ordered_runs, plain, unique_name

st.title("Softmax, one-hot labels and cross-entropy")
data = data_check("mnist")  # the two experiments train on MNIST; the rest computes from the sliders
data_line(data, "The two experiments (tabs *Labels* and *Double softmax*)", "in those tabs")
UP, DOWN = "#2ca02c", "#d62728"  # gradient < 0: gradient descent pushes the logit up; > 0: down


def sign_colors(g: np.ndarray) -> list[str]:
    return [UP if v < 0 else DOWN for v in g]


def check_line(ok: bool, what: str, max_diff: float) -> None:
    if ok:
        st.success(f"{what} (largest difference {max_diff:.1e})", icon=":material/check_circle:")
    else:
        st.error(f"Mismatch: {what} fails (largest difference {max_diff:.1e})", icon=":material/error:")


multi, binary, labels, double = st.tabs(["Multi-class", "Binary: sigmoid vs 2-way softmax", "Labels: ordinal vs one-hot",
                                         "Double softmax"])

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
    c2.plotly_chart(bar_figure(names, r.grad, "Gradient dL/dz = (ŷ − y)/T  (green: pushed up, red: pushed down)",
                               colors=sign_colors(r.grad)), key="sm_grad", width="stretch")
    st.dataframe({"class": names, "logit z": np.round(z, 4), "ŷ": np.round(r.probs, 4), "y (one-hot)": r.target.astype(int),
                  "−y·log ŷ": np.round(r.terms, 4), "dL/dz": np.round(r.grad, 4)}, hide_index=True)
    st.markdown(f"**Loss** = −log ŷ[{names[target]}] = −log {r.probs[target]:.4f} = **{r.loss:.4f}**. "
                "Only the true class's term is non-zero, yet every logit gets a gradient: the true class is pushed up, "
                "all others down.")
    a_loss, a_grad = autograd_softmax_ce(z, target, temp)
    diff = max(abs(a_loss - r.loss), float(np.abs(a_grad - r.grad).max()))
    check_line(diff < 1e-9, "Analytic loss and gradient equal torch autograd for these settings", diff)

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
    st.markdown("**Live experiment on MNIST** (a few seconds on a laptop CPU): the same MLP trained on 12,000 images for "
                "3 epochs, once with one output regressed on the digit's value (rounded to predict), once with a "
                "10-way softmax. Tested on all 10,000 test images.")
    data_notice(data, "sm_labels")
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
        c2.dataframe([{"true digit": d, "errors": int(res.regression_confusion[d].sum() - res.regression_confusion[d, d]),
                       "read most often as": ", ".join(f"{p} ({n})" for p, n in top)}
                      for d, top in enumerate(reg.top_wrong)], hide_index=True, key="sm_regression_errors")

with double:
    floor = double_softmax_floor(10)
    at = {f.p_true: f for f in map(forms_at, COMPARED_CONFIDENCES)}  # autograd, float64
    start, confident = at[0.10], at[0.98]
    st.markdown("The original course code ends the model with `nn.Softmax` and feeds its output to `nn.CrossEntropyLoss`, "
                f"which applies log-softmax again. Even a perfect one-hot output then costs log(1 + 9/e) = **{floor:.3f}**.")
    st.markdown(f"A gradient that shrinks as the prediction gets confident is normal: for the correct form dL/dz = ŷ − y "
                f"goes to 0 too. What is wrong with the double softmax is that its gradient is **small from the start**: "
                f"with every output equal (ŷ[true] = {start.p_true:.2f}, an untrained network) it is {start.ratio:.0f}× "
                f"smaller than the correct one ({start.double_grad:.3f} vs {start.grad:.3f}). By ŷ[true] = "
                f"{confident.p_true:.2f} the two are only {confident.ratio:.1f}× apart ({confident.double_grad:.4f} vs "
                f"{confident.grad:.4f}), but the correct loss has fallen to {confident.loss:.3f} while the double-softmax "
                f"loss is still {confident.double_loss:.3f}: its gradient **vanishes while the loss is stuck at or above "
                f"{floor:.3f}**, so the loss keeps reporting an error that the gradient no longer pushes against.")
    st.dataframe([{"ŷ[true]": f.p_true, "correct ‖dL/dz‖": round(f.grad, 4), "double ‖dL/dz‖": round(f.double_grad, 4),
                   "times smaller": round(f.ratio, 2), "correct loss": round(f.loss, 4), "double loss": round(f.double_loss, 4)}
                  for f in at.values()], hide_index=True, key="sm_double_table")
    st.caption("Logits [m, 0, …, 0] with m chosen so that softmax gives the true class ŷ[true]; losses and gradient "
               "norms by torch autograd in float64.")
    sw = confidence_sweep(10)
    c1, c2 = st.columns(2)
    c1.plotly_chart(line_figure(sw["p_true"], {"correct: CE(z)": sw["loss"], "double: CE(softmax(z))": sw["double_loss"]},
                                "Loss vs confidence", "ŷ[true]", "loss", hline=(floor, f"floor {floor:.3f}")),
                    key="sm_double_loss", width="stretch")
    c2.plotly_chart(line_figure(sw["p_true"], {"correct": sw["grad"], "double": sw["double_grad"]},
                                "Gradient norm ‖dL/dz‖ vs confidence", "ŷ[true]", "‖dL/dz‖"),
                    key="sm_double_grad", width="stretch")
    st.markdown("**Train both forms briefly** (no-BN, 3 epochs of 150 batches; they appear in the run store too):")
    store = get_store()
    data_notice(data, "sm_double")
    if st.button("Train correct and double-softmax models", key=K.SM_TRAIN_BOTH, disabled=not data.ok,
                 help=blocked_help(data)):
        ids = []
        for ds in (False, True):
            cfg = TrainConfig(double_softmax=ds, epochs=3, max_batches=150)
            live = store.find_live(cfg)
            name = unique_name(store.list(), ("double softmax" if ds else "correct") + " (explorer)")
            ids.append(live.id if live else store.start(cfg, name=name).id)
        st.session_state[K.SM_DOUBLE_RUNS] = ids
    ids = st.session_state.get(K.SM_DOUBLE_RUNS) or []
    if not ids:  # or pick earlier runs of the learner's from the store (never a failed or diverged one)
        mine = [r for r in ordered_runs(store.list(), lab=False) if r.snapshot.history
                and r.snapshot.status not in BROKEN]
        correct = [r for r in mine if not r.config.double_softmax]
        doubled = [r for r in mine if r.config.double_softmax]
        if correct and doubled:
            ids = [correct[0].id, doubled[0].id]
            st.caption("Showing the newest finished runs of each form from the run store.")
    ids = [i for i in ids if i in {r.id for r in store.list()}]
    if ids:
        live_now = any(store.get(i).live for i in ids)

        @st.fragment(run_every=1.0 if live_now else None)
        def double_runs() -> None:
            pairs = [(("double softmax" if store.get(i).config.double_softmax else "correct"), store.get(i).snapshot)
                     for i in ids]
            c1, c2 = st.columns(2)
            c1.plotly_chart(loss_figure(pairs), key="sm_double_runs_loss", width="stretch")
            c2.plotly_chart(accuracy_figure(pairs), key="sm_double_runs_acc", width="stretch")
            for label, s in pairs:
                if s.status in ("failed", "diverged"):
                    st.error(f"The {label} run {s.status}: {plain(s.error)}")
                if s.final:
                    st.caption(f"{label}: final training loss {s.final.train_loss:.3f}, test accuracy {s.final.test_acc:.2%} "
                               f"after {s.epoch} epoch(s) ({s.status})")
            if live_now and not any(store.get(i).live for i in ids):
                st.rerun(scope="app")

        double_runs()
