"""Catalogue of canvas edge cases: every one is blank, a digit, 'does not look like a digit' with a reason,
or a clear ValueError; never a confident answer for a non-digit, never numpy's raw error."""
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from PIL import Image, ImageDraw

from core.drawing.preprocess import preprocess
from tests.test_draw_page import draw  # noqa: F401 - the Draw page fixture
from tests.test_preprocess import SEVEN, SEVEN_SMALL_CORNER, canvas

BLANK, DIGIT, NOT_A_DIGIT, ERROR = "blank", "digit", "not a digit", "error"


def _transparent(size=(280, 280)):
    return np.zeros((*size, 4), np.uint8)


def _with(draw: Callable[[ImageDraw.ImageDraw], None]) -> np.ndarray:
    img = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    draw(ImageDraw.Draw(img))
    return np.asarray(img)


def _pixel():
    a = _transparent()
    a[140, 140, 3] = 255
    return a


def _faint():
    a = _transparent()
    a[..., 3] = 5  # anti-aliasing dust everywhere, below the ink threshold
    return a


def _nan():
    a = _transparent().astype(np.float32)
    a[0, 0, 3] = np.nan
    return a


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], np.ndarray]
    expect: str
    reason: str = ""  # a word the reason (or the error) must contain


CASES = [
    Case("blank transparent canvas", _transparent, BLANK),
    Case("blank opaque white canvas", lambda: np.full((280, 280, 4), 255, np.uint8), BLANK),
    Case("blank RGB canvas (3 channels)", lambda: np.full((280, 280, 3), 255, np.uint8), BLANK),
    Case("faint dust below the ink threshold", _faint, BLANK),
    Case("a single pixel", _pixel, NOT_A_DIGIT, "dot"),
    Case("one click: a round dot", lambda: _with(lambda d: d.ellipse([131, 131, 149, 149], fill=(0, 0, 0, 255))),
         NOT_A_DIGIT, "dot"),
    Case("a 1x1 image with ink", lambda: np.full((1, 1, 4), 255, np.uint8), NOT_A_DIGIT, "too small"),
    Case("a 1x1 blank image", lambda: _transparent((1, 1)), NOT_A_DIGIT, "too small"),
    Case("a 0x0 array", lambda: _transparent((0, 0)), NOT_A_DIGIT, "empty"),
    Case("a 280x0 array", lambda: _transparent((280, 0)), NOT_A_DIGIT, "empty"),
    Case("all-ink canvas", lambda: np.concatenate([np.zeros((280, 280, 3), np.uint8),
                                                   np.full((280, 280, 1), 255, np.uint8)], axis=2), NOT_A_DIGIT, "block"),
    Case("all-ink opaque RGB canvas", lambda: np.zeros((280, 280, 3), np.uint8), NOT_A_DIGIT, "block"),
    Case("a filled square", lambda: _with(lambda d: d.rectangle([80, 80, 200, 200], fill=(0, 0, 0, 255))),
         NOT_A_DIGIT, "block"),
    Case("a seven", lambda: canvas(SEVEN), DIGIT),
    Case("a small thin seven in a corner", lambda: canvas(SEVEN_SMALL_CORNER, 5), DIGIT),
    Case("a one: one thick vertical stroke", lambda: canvas([[(140, 40), (140, 240)]], 40), DIGIT),
    Case("a zero drawn with the widest stroke", lambda: _with(lambda d: d.ellipse([90, 60, 190, 220], outline=(0, 0, 0, 255),
                                                                                  width=40)), DIGIT),
    Case("a 2-D array", lambda: np.zeros((28, 28), np.uint8), ERROR, "image"),
    Case("two channels", lambda: np.zeros((280, 280, 2), np.uint8), ERROR, "image"),
    Case("NaN in a float image", _nan, ERROR, "NaN"),
]


def test_catalogue_size():
    assert len(CASES) >= 16 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_canvas_case(case):
    if case.expect == ERROR:
        with pytest.raises(ValueError, match=case.reason):
            preprocess(case.make())
        return
    p = preprocess(case.make())
    got = BLANK if p.blank else NOT_A_DIGIT if p.not_a_digit else DIGIT
    assert got == case.expect, p.not_a_digit
    if case.expect == NOT_A_DIGIT:
        assert case.reason in p.not_a_digit
    assert p.centered.shape == (28, 28) and np.isfinite(p.model_input()).all()


def test_every_case_on_the_draw_page(draw):
    """The page shows no answer for a non-digit, says so, and never fails; digits get their prediction."""
    from core import TrainConfig
    from ui.registry import get_store

    at, state = draw
    store = get_store()
    run = store.start(TrainConfig(batch_norm=True, epochs=1, max_batches=300))
    store.trainer(run.id).join(120)
    at.switch_page("pages/draw.py").run()
    for case in CASES:
        state["image"] = case.make()
        at.run()
        shown = " ".join(m.value for m in at.markdown)
        warned = " ".join(w.value for w in at.warning)
        assert not at.exception, case.name
        if case.expect == ERROR:
            assert case.reason in " ".join(e.value for e in at.error), case.name
            continue
        if case.expect == NOT_A_DIGIT:
            assert "This does not look like a digit" in warned and case.reason in warned, case.name
            assert "**Prediction:" not in shown, case.name
        elif case.expect == BLANK:
            assert any("Draw a digit" in i.value for i in at.info), case.name
        else:
            assert "**Prediction:" in shown and "does not look like a digit" not in warned, case.name


def test_mnist_digits_pass_the_ink_checks(data_dir):
    """The checks refuse non-digits, not digits: MNIST's own test digits, scaled to the canvas, all pass."""
    from core.engine.data import load_dataset

    for img in load_dataset("mnist", data_dir).test_x[:1000].numpy():
        rgba = np.zeros((280, 280, 4), np.uint8)
        rgba[..., 3] = np.asarray(Image.fromarray(img).resize((280, 280), Image.Resampling.BILINEAR))
        p = preprocess(rgba)
        assert p.not_a_digit is None and not p.blank
