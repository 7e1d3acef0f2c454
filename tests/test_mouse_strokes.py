"""The Draw page's preprocessing on digits drawn as a mouse draws them: does the 28x28 input stay MNIST-like?

Stroke width = ink area / centre-line length (the centre line of ink >= 64), measured the same way on MNIST's
training digits and on the preprocessed drawings. MNIST's typical range is its central 90% (5th-95th
percentile), computed from the data here.
"""
import math

import numpy as np
import pytest

from core.drawing.preprocess import CENTRE, center_of_mass, preprocess
from core.engine.data import load_dataset
from core.engine.strokes import thin
from tests.test_preprocess import canvas


def arc(cx, cy, r, a0, a1, n=24):
    return [(cx + r * math.cos(math.radians(a0 + (a1 - a0) * i / n)), cy + r * math.sin(math.radians(a0 + (a1 - a0) * i / n)))
            for i in range(n + 1)]


# Strokes on the 280 x 280 canvas, about 200 px tall, as people draw these digits.
CASES = {
    "1": [[(140, 40), (140, 240)]],
    "1 with flag and base serif": [[(112, 72), (140, 40), (140, 240)], [(108, 240), (172, 240)]],
    "7": [[(80, 40), (200, 40), (120, 240)]],
    "7 with crossbar": [[(80, 40), (200, 40), (120, 240)], [(112, 140), (188, 140)]],
    "4 open": [[(130, 40), (80, 160), (200, 160)], [(170, 90), (170, 240)]],
    "4 closed": [[(170, 40), (80, 160), (200, 160)], [(170, 40), (170, 240)]],
    "9 straight tail": [arc(140, 95, 55, 0, 360), [(195, 95), (195, 240)]],
    "9 curved tail": [arc(140, 95, 55, 0, 360), [(195, 95), (190, 170), (165, 225), (120, 240)]],
}
DEFAULT, THINNEST, THICKEST = 18, 6, 40  # the Draw page's stroke-width slider: default and ends


def stroke_width(img: np.ndarray) -> np.ndarray:
    """(N, 28, 28) or (28, 28) uint8 -> ink area / centre-line length in pixels."""
    img = img.reshape(-1, 28, 28)
    return img.sum((1, 2)) / 255 / np.maximum(thin(img >= 64).sum((1, 2)), 1)


@pytest.fixture(scope="module")
def mnist_range(data_dir):
    w = stroke_width(load_dataset("mnist", data_dir).train_x.numpy())
    return np.percentile(w, 5), np.percentile(w, 95)


def test_mnist_stroke_width(mnist_range):
    lo, hi = mnist_range
    assert 1.5 < lo < 2.0 and 4.2 < hi < 5.0  # about 1.7 to 4.7 px: what the thresholds below mean


@pytest.mark.parametrize("case", CASES)
def test_default_stroke_gives_an_mnist_like_input(case, mnist_range):
    p = preprocess(canvas(CASES[case], DEFAULT))
    lo, hi = mnist_range
    assert lo <= stroke_width(p.centered)[0] <= hi
    r, c = center_of_mass(p.centered)
    assert abs(r - CENTRE) <= 0.5 and abs(c - CENTRE) <= 0.5 and max(p.scaled.shape) == 20
    assert p.centered.max() == 255  # strokes as dark as MNIST's


@pytest.mark.parametrize("case", CASES)
@pytest.mark.xfail(strict=True, reason="core/drawing/preprocess.py keeps the drawn stroke width: the slider's 6 px on "
                   "a 200 px digit becomes 0.6-1.0 px after scaling, below MNIST's 5th percentile (~1.7 px); "
                   "redrawing thin strokes wider did not raise accuracy on drawings (benchmarks/README.md)")
def test_thinnest_stroke_gives_an_mnist_like_input(case, mnist_range):
    lo, hi = mnist_range
    assert lo <= stroke_width(preprocess(canvas(CASES[case], THINNEST)).centered)[0] <= hi


@pytest.mark.parametrize("case", CASES)
@pytest.mark.xfail(strict=False, reason="core/drawing/preprocess.py keeps the drawn stroke width: the slider's 40 px "
                   "gives 3.3-5.1 px after scaling, a few cases above MNIST's 95th percentile (~4.7 px)")
def test_thickest_stroke_gives_an_mnist_like_input(case, mnist_range):
    lo, hi = mnist_range
    assert lo <= stroke_width(preprocess(canvas(CASES[case], THICKEST)).centered)[0] <= hi
