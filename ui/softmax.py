"""What the Softmax explorer draws beside its figures: gradient colours and the autograd check line."""
from __future__ import annotations

import numpy as np
import streamlit as st
from ui.fragment import fragment

UP, DOWN = "#2ca02c", "#d62728"  # gradient < 0: gradient descent pushes the logit up; > 0: down


def sign_colors(g: np.ndarray) -> list[str]:
    return [UP if v < 0 else DOWN for v in g]


def check_line(ok: bool, what: str, max_diff: float) -> None:
    """A green line when the page's analytic numbers equal autograd's, a red one when they do not."""
    if ok:
        st.success(f"{what} (largest difference {max_diff:.1e})", icon=":material/check_circle:")
    else:
        st.error(f"Mismatch: {what} fails (largest difference {max_diff:.1e})", icon=":material/error:")


def case_id(z, target: int, temp: float) -> str:
    """What a gradient prediction is about: the sliders' case (a new case asks again)."""
    return f"softmax:{target}:{temp:g}:" + ",".join(f"{v:.2f}" for v in z)


def _link_params():
    from ui import keys as K
    from ui.links import Param, number, show_number, whole

    def names(text: str) -> str:
        if len(text) > 300 or not text.isprintable():
            raise ValueError("class names: one line of text")
        return text
    return [Param("classes", K.SM_N, whole(2, 10)), Param("names", K.SM_NAMES, names),
            Param("true", K.SM_TRUE, names),  # a name the classes do not have falls back to the default class
            Param("temperature", K.SM_TEMP, number(0.05, 20.0), show_number),
            *[Param(f"z{i}", f"{K.SM_LOGIT}{i}", number(-10.0, 10.0), show_number) for i in range(10)],
            Param("p_cat", K.SM_P_CAT, number(0.01, 0.99), show_number),
            Param("confidence", K.SM_LABEL_CONF, number(0.4, 0.99), show_number)]


LINK = _link_params()


def double_runs(store, ids: list[str]) -> None:
    """The correct and double-softmax runs' curves, live while they train, each run's end in a line."""
    from core.lessons.softmax_experiments import form_name
    from ui.figures import accuracy_figure, loss_figure
    from ui.registry import BROKEN, plain

    if not ids:
        return
    live_now = any(store.get(i).live for i in ids)

    @fragment(run_every=1.0 if live_now else None)
    def curves() -> None:
        pairs = [(form_name(store.get(i).config), store.get(i).snapshot) for i in ids]
        c1, c2 = st.columns(2)
        c1.plotly_chart(loss_figure(pairs), key="sm_double_runs_loss", width="stretch")
        c2.plotly_chart(accuracy_figure(pairs), key="sm_double_runs_acc", width="stretch")
        for label, s in pairs:
            if s.status in BROKEN:
                st.error(f"The {label} run {s.status}: {plain(s.error)}")
            if s.final:
                st.caption(f"{label}: final training loss {s.final.train_loss:.3f}, test accuracy {s.final.test_acc:.2%} "
                           f"after {s.epoch} epoch(s) ({s.status})")
        if live_now and not any(store.get(i).live for i in ids):
            st.rerun(scope="app")

    curves()
