"""Preprocessing of canvas drawings on synthetic strokes."""
import numpy as np
import pytest
from PIL import Image, ImageDraw

from core.drawing.preprocess import CENTRE, center_of_mass, preprocess


def canvas(strokes, width=18, size=280, opaque=False):
    """RGBA canvas like streamlit-drawable-canvas returns: transparent, black ink in the alpha channel."""
    img = Image.new("RGBA", (size, size), (255, 255, 255, 255) if opaque else (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    for pts in strokes:
        d.line(pts, fill=(0, 0, 0, 255), width=width, joint="curve")
    return np.asarray(img)


SEVEN = [[(80, 60), (200, 60), (120, 230)]]
SEVEN_SMALL_CORNER = [[(10, 10), (50, 10), (24, 66)]]


@pytest.mark.parametrize("width", [6, 12, 18, 30, 40])
def test_centre_of_mass_at_centre(width):
    p = preprocess(canvas(SEVEN, width))
    assert not p.blank and p.centered.shape == (28, 28) and p.centered.dtype == np.uint8
    r, c = center_of_mass(p.centered)
    assert abs(r - CENTRE) <= 0.5 and abs(c - CENTRE) <= 0.5
    assert max(p.scaled.shape) == 20


def test_size_and_position_invariance():
    big = preprocess(canvas(SEVEN, 18)).centered.astype(float)
    small = preprocess(canvas(SEVEN_SMALL_CORNER, 5)).centered.astype(float)
    assert np.corrcoef(big.ravel(), small.ravel())[0, 1] > 0.8


def test_blank_canvas():
    p = preprocess(np.zeros((280, 280, 4), np.uint8))
    assert p.blank and p.ink_fraction == 0


def test_all_ink_canvas():
    full = np.zeros((280, 280, 4), np.uint8)
    full[..., 3] = 255
    p = preprocess(full)
    assert not p.blank and p.ink_fraction == 1.0 and max(p.scaled.shape) == 20
    assert np.isfinite(p.model_input()).all()
    assert "solid block" in p.not_a_digit  # the steps run, but the page gives no answer (tests/test_canvas_cases.py)


def test_opaque_background_reads_ink_from_rgb():
    a, b = preprocess(canvas(SEVEN, opaque=True)), preprocess(canvas(SEVEN))
    assert np.abs(a.centered.astype(int) - b.centered.astype(int)).max() <= 2


def test_model_input_normalised_like_training():
    p = preprocess(canvas(SEVEN))
    x = p.model_input()
    assert x.shape == (784,) and x.min() >= -1 and x.max() <= 1
    assert x[0] == -1.0  # background is -1 as in Normalize(0.5, 0.5)


def test_bad_shape_is_clear():
    with pytest.raises(ValueError, match="image"):
        preprocess(np.zeros((28, 28)))


def test_centre_is_where_mnist_puts_it(data_dir):
    """The preprocessing moves the centre of mass to where MNIST's own digits have it, computed from the data."""
    import torch

    from core.engine.data import load_dataset

    x = load_dataset("mnist", data_dir).train_x.double()  # (60000, 28, 28)
    idx = torch.arange(28, dtype=torch.float64)
    mass = x.sum((1, 2))
    rows = (x.sum(2) * idx).sum(1) / mass
    cols = (x.sum(1) * idx).sum(1) / mass
    assert abs(rows.mean().item() - CENTRE) < 0.05 and abs(cols.mean().item() - CENTRE) < 0.05
    assert ((rows - CENTRE).abs() <= 0.5).float().mean() > 0.99  # not 13.5, the middle of the field
