"""The controls every loss chart offers (log scale, smoothing) and what a chart of a run's accuracy must say
beside it."""
from __future__ import annotations

import streamlit as st

from core.engine.config import TrainConfig

SMOOTHING = (0.0, 0.6, 0.9)  # exponential moving average weights (core/lessons/curves.py); 0: the raw steps
SMOOTHING_LABELS = {0.0: "raw", 0.6: "smoothed", 0.9: "very smooth"}


def loss_options(prefix: str) -> tuple[bool, float]:
    """A log-scale switch and a smoothing choice in one row; (log scale, smoothing weight). Keys: prefix +
    '_loss_log' and '_loss_smoothing'. A log axis by default: the first steps' loss of 2.3 squashes a linear one."""
    with st.container(horizontal=True, vertical_alignment="center", gap="medium"):
        log_y = st.toggle("Loss on a log scale", value=True, key=f"{prefix}_loss_log",
                          help="The first steps' loss (about 2.3 = ln 10) otherwise flattens everything after them")
        smoothing = st.segmented_control(
            "Loss curve", SMOOTHING, default=0.6, required=True, key=f"{prefix}_loss_smoothing",
            format_func=SMOOTHING_LABELS.get, label_visibility="collapsed",
            help="Exponential moving average of the step losses (weight 0.6 or 0.9, debiased at the start); "
                 "the raw steps stay, faint")
    return log_y, float(smoothing or 0.0)


def accuracy_note(config: TrainConfig) -> str | None:
    """Why train accuracy may sit below test accuracy for this run, or None."""
    if config.robust:
        return ("Train accuracy below test accuracy is expected here: the robust preset augments every training "
                "batch (half of its digits redrawn as strokes, all turned, slanted, stretched and shifted), so the "
                "training images are harder than the test images, which are not augmented.")
    return None
