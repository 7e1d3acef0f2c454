"""What the charts compute from a run's numbers before drawing them."""
from __future__ import annotations

from typing import Sequence


def ema(values: Sequence[float], weight: float) -> list[float]:
    """Exponential moving average, debiased as TensorBoard's smoothing is: s_t = w·s_(t-1) + (1 − w)·x_t from
    s_0 = 0, shown as s_t / (1 − w^t) so that the first points are not pulled towards 0. weight w in [0, 1):
    0 returns the values, larger is smoother."""
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    out, s, bias = [], 0.0, 1.0
    for x in values:
        s = weight * s + (1 - weight) * x
        bias *= weight
        out.append(s / (1 - bias))
    return out
