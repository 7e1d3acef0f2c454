"""What the Softmax explorer draws beside its figures: gradient colours and the autograd check line."""
from __future__ import annotations

import numpy as np
import streamlit as st

UP, DOWN = "#2ca02c", "#d62728"  # gradient < 0: gradient descent pushes the logit up; > 0: down


def sign_colors(g: np.ndarray) -> list[str]:
    return [UP if v < 0 else DOWN for v in g]


def check_line(ok: bool, what: str, max_diff: float) -> None:
    """A green line when the page's analytic numbers equal autograd's, a red one when they do not."""
    if ok:
        st.success(f"{what} (largest difference {max_diff:.1e})", icon=":material/check_circle:")
    else:
        st.error(f"Mismatch: {what} fails (largest difference {max_diff:.1e})", icon=":material/error:")
