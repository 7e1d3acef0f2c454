"""What the charts compute and how the figure builders colour them, without a browser (the browser tests check the
drawn pixels and colours: tests/browser)."""
import re

import numpy as np
import plotly.colors as pc
import pytest

from core.engine.snapshot import EpochMetrics, RunSnapshot
from core.lessons.curves import ema


def test_ema_matches_a_hand_computation():
    """s_t = w·s_(t-1) + (1 − w)·x_t from 0, divided by 1 − w^t. By hand for [1, 2, 3] at w = 0.5: s = 0.5, 1.25,
    2.125 and 1 − w^t = 0.5, 0.75, 0.875, so 1, 5/3, 17/7. Catches a missing debias (0.5, 1.25, ...: the curve
    would start at half the first loss) and a swapped weight (w·x + (1 − w)·s)."""
    assert ema([1, 2, 3], 0.5) == pytest.approx([1.0, 5 / 3, 17 / 7])
    assert ema([4.0, 4.0, 4.0], 0.9) == pytest.approx([4.0, 4.0, 4.0])  # a constant stays itself from the first point
    assert ema([1, 5, 2], 0.0) == [1, 5, 2]
    with pytest.raises(ValueError):
        ema([1.0], 1.0)


def test_colour_scales_never_carry_streamlits_placeholder_colours():
    """Streamlit swaps the strings #000001-#000010 in a figure for its theme's palette; Inferno starts at #000004.
    Every stop of the scales the dashboard draws is the same colour as plotly's, written as rgb(): catches a scale
    passed by name (its black zero drawn pink) and a conversion that shifts colours."""
    from ui.figures import colorscale

    for name in ("Inferno", "Blues", "Viridis", "Magma"):
        ours, theirs = colorscale(name), pc.get_colorscale(name)
        assert [p for p, _ in ours] == [p for p, _ in theirs]
        for (_, c), (_, t) in zip(ours, theirs):
            assert c.startswith("rgb(") and not re.search(r"#0000(0\d|10)", c)
            assert pc.unlabel_rgb(c) == (pc.hex_to_rgb(t) if t.startswith("#") else pc.unlabel_rgb(t))


def test_saliency_figure_uses_the_safe_scale():
    """The Draw page's saliency map: zero is Inferno's black, written so the theme cannot swap it."""
    from ui.tiles import saliency_figure

    fig = saliency_figure(np.zeros((28, 28)), np.random.default_rng(0).random((28, 28)))
    first = fig.data[0].colorscale[0]
    assert first[0] == 0 and pc.unlabel_rgb(first[1]) == (0, 0, 4)


def test_confusion_errors_get_their_own_scale():
    """'errors': the off-diagonal cells are coloured on a scale from 0 to the largest error (36 here), the diagonal
    is a separate grey layer with its counts as text. Catches a scale that still spans the diagonal's 980 (every
    error near white) and a diagonal left out of the picture."""
    from ui.figures import confusion_figure

    counts = np.diag([980] * 10) + 0
    counts[9, 8], counts[3, 8] = 36, 24
    fig = confusion_figure(counts, [str(d) for d in range(10)], normalized=False, scale="errors")
    cells, diagonal = fig.data[0], fig.data[1]
    assert len(cells.x) == 90 and fig.data[0].marker.cmax == 36 and max(cells.marker.color) == 36
    assert list(diagonal.text) == ["980"] * 10 and diagonal.marker.color == "#dcdcdc"
    picked = dict(zip(zip(cells.y, cells.x), cells.text))
    assert picked[("9", "8")] == "36" and picked[("3", "8")] == "24"
    linear = confusion_figure(counts, [str(d) for d in range(10)], normalized=False, scale="linear")
    assert len(linear.data[0].x) == 100 and linear.data[0].marker.cmax == 980
    log = confusion_figure(counts, [str(d) for d in range(10)], normalized=False, scale="log")
    assert log.data[0].marker.cmax == pytest.approx(np.log10(981))
    assert list(log.data[0].marker.colorbar.ticktext) == ["0", "1", "10", "100"]  # ticks at counts that occur


def test_evaluation_keeps_each_pairs_worst_mistakes(store):
    """The gallery's filter: for every (true, predicted) pair, that pair's misclassified images, highest loss first,
    as many as the confusion matrix counts (up to the cap). Catches pairs filled from the overall top 48 only."""
    from core import TrainConfig
    from core.lessons.evaluation import evaluate_model

    run = store.start(TrainConfig(epochs=1, max_batches=20))
    from tests.waiting import wait_ended
    wait_ended(store)
    rep = evaluate_model(store.load_model(run.id), "mnist", store.data_dir, max_per_pair=5)
    assert rep.by_pair and all(t != p for t, p in rep.by_pair)
    for (t, p), ms in rep.by_pair.items():
        assert len(ms) == min(5, rep.confusion[t, p]), (t, p)
        assert all(m.true == t and m.predicted == p for m in ms)
        assert [m.loss for m in ms] == sorted((m.loss for m in ms), reverse=True)
    assert sum(min(5, rep.confusion[t, p]) for t in range(10) for p in range(10) if t != p) == \
        sum(len(v) for v in rep.by_pair.values())


def test_loss_figure_log_scale_and_smoothing():
    """A log axis labelled as such; with smoothing the raw steps stay (faint) under the EMA of the same steps."""
    from ui.figures import loss_figure

    snap = RunSnapshot(status="finished", step_losses=((10, 2.3), (20, 1.0), (30, 0.5)), steps_per_epoch=30,
                       history=(EpochMetrics(1, 1.2, 0.7, 0.6, 0.8, 1.0),))
    fig = loss_figure([("run", snap)], log_y=True, smoothing=0.6)
    assert fig.layout.yaxis.type == "log" and "log scale" in fig.layout.yaxis.title.text
    raw, smooth = fig.data[0], fig.data[1]
    assert list(raw.y) == [2.3, 1.0, 0.5] and list(smooth.y) == pytest.approx(ema([2.3, 1.0, 0.5], 0.6))


def test_batchnorm_arms_keep_their_colour():
    """The lab's builders colour by arm, not by position: no-BN alone is still red; in the percentile panels BN's
    before- and after-BN panels are both blue."""
    from ui.figures import ARM_COLORS, arm_band_figure, percentile_figure

    snap = RunSnapshot(status="finished", step_losses=((10, 2.0), (20, 1.0)), steps_per_epoch=20,
                       history=(EpochMetrics(1, 1.2, 0.7, 0.6, 0.8, 1.0),))
    fig = arm_band_figure({"no-BN": [snap]}, "loss")
    assert fig.data[0].line.color == ARM_COLORS["no-BN"]
    q = [[-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]]
    panels = {"no-BN: Linear output": ("no-BN", [1, 2], q), "BN: Linear output (before BN)": ("BN", [1, 2], q),
              "BN: after BN": ("BN", [1, 2], q)}
    fig = percentile_figure(panels, "t")
    medians = [t for t in fig.data if t.line.width == 2]
    assert [t.line.color for t in medians] == [ARM_COLORS["no-BN"], ARM_COLORS["BN"], ARM_COLORS["BN"]]


def test_summary_table_has_one_column_per_arm():
    """Measures as rows and the two arms as columns: a table two values wide fits any window."""
    from core.lessons.batchnorm import summarize_arm
    from ui.bnlab import summary_table

    snap = RunSnapshot(status="finished", epochs=1, history=(EpochMetrics(1, 0.3, 0.9, 0.2, 0.975, 2.0),))
    rows = summary_table({"BN": summarize_arm([snap]), "no-BN": summarize_arm([snap])})
    assert all(set(r) == {"", "BN", "no-BN"} for r in rows)
    final = next(r for r in rows if r[""] == "final test accuracy")
    assert final["BN"] == "97.50% (one seed: spread unknown)"


def test_around_shows_the_spread_not_zero():
    """γ near 1 with a spread of 0.04: the axis spans about 0.98-1.04 (and 1, where γ starts), not 0-1.04."""
    from ui.figures import around

    lo, hi = around([0.99, 1.02, 1.03], include=1.0)
    assert 0.98 < lo < 0.99 and 1.03 < hi < 1.04
