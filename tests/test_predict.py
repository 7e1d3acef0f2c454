"""What the Draw page says about the model's confidence: torn between two digits, spread out, or sure;
and the non-digit shapes that show confidence cannot tell a digit from anything else."""
import numpy as np
import pytest

from core.drawing.predict import Prediction, classify_non_digits, non_digit_canvases, predict_digit
from core.drawing.preprocess import preprocess
from tests.test_draw_page import draw  # noqa: F401 - the Draw page fixture
from ui import keys as K


def pred(probs):
    p = np.asarray(probs, dtype=np.float64)
    p = p / p.sum()
    return Prediction(p, p.copy(), int(p.argmax()), float(p.max()))  # logits are not read here


def test_sure_prediction_says_nothing():
    assert pred([0.9] + [0.1 / 9] * 9).uncertainty() is None


def test_torn_between_two_digits():
    p = pred([0.02, 0.0, 0.0, 0.0, 0.50, 0.0, 0.0, 0.0, 0.0, 0.40])  # a 4-or-9
    assert p.top_two_share == pytest.approx(0.9 / 0.92)
    assert p.uncertainty() == "Unsure between 4 and 9 (54% vs 43%)."


def test_spread_over_several_digits():
    p = pred([0.3, 0.25, 0.2, 0.1, 0.05, 0.04, 0.03, 0.01, 0.01, 0.01])
    assert p.top_two_share < 0.8
    assert p.uncertainty() == "Unsure: no digit gets more than 30%; the likeliest are 0 (30%), 1 (25%) and 2 (20%)."


def test_non_digit_shapes_are_classified_anyway(store):
    from core import TrainConfig
    run = store.start(TrainConfig(batch_norm=True, epochs=1, max_batches=300))
    store.trainer(run.id).join(120)
    model = store.load_model(run.id)
    readings = classify_non_digits(model)
    assert [r.name for r in readings] == list(non_digit_canvases())
    for r, rgba in zip(readings, non_digit_canvases().values()):
        direct = predict_digit(model, preprocess(rgba).model_input())
        assert r.prediction.top == direct.top and r.prediction.confidence == pytest.approx(direct.confidence)
        assert r.prediction.probs.sum() == pytest.approx(1, abs=1e-5)  # shared out among the digits, always
    by_name = {r.name: r for r in readings}
    assert by_name["a horizontal bar"].pre.not_a_digit is None  # the ink checks cannot catch every non-digit
    assert "block" in by_name["a filled square"].pre.not_a_digit


def test_draw_page_states_the_limit_and_classifies_shapes(draw):
    from core import TrainConfig
    from ui.registry import get_store
    at, state = draw
    store = get_store()
    run = store.start(TrainConfig(batch_norm=True, epochs=1, max_batches=300))
    store.trainer(run.id).join(120)
    at.switch_page("pages/draw.py").run()
    assert "Softmax confidence cannot tell a non-digit from a digit" in " ".join(m.value for m in at.markdown)
    at.button(key=K.DRAW_NON_DIGITS).click().run()
    assert not at.exception
    model = store.load_model(run.id)
    shown = " ".join(m.value for m in at.markdown)
    for name, rgba in non_digit_canvases().items():
        p = predict_digit(model, preprocess(rgba).model_input())
        assert f"Model: **{p.top}** with {p.confidence:.1%} confidence" in shown, name  # computed live
    captions = " ".join(c.value for c in at.caption)
    assert "lets it through" in captions and "solid block" in captions
    sure = sum(not predict_digit(model, preprocess(rgba).model_input()).low_confidence
               and not preprocess(rgba).not_a_digit for rgba in non_digit_canvases().values())
    assert f"**{sure} of these {len(non_digit_canvases())} shapes would be shown as a confident answer**" in shown


def test_confident_shapes_counts_each_side_of_the_unsure_line():
    """Issue: the page said every non-digit 'still gets a confident answer', but on a trained BN model an X got
    59.9% and a triangle 52.6%, under the page's own 'unsure' line. The summary sorts each shape by what the page
    would do with it. Catches a summary that calls every shape confident, or counts the ink-stopped ones as shown."""
    from types import SimpleNamespace
    from core.drawing.predict import UNSURE, confident_shapes
    def reading(name, conf, stopped=None):
        rest = (1 - conf) / 9
        return SimpleNamespace(name=name, pre=SimpleNamespace(not_a_digit=stopped),
                               prediction=pred([conf] + [rest] * 9))
    text = confident_shapes([reading("a bar", 0.927), reading("an X", 0.599), reading("a triangle", 0.526),
                             reading("a plus", UNSURE), reading("a square", 0.99, "the ink is a solid block")])
    assert text.startswith("**2 of these 5 shapes would be shown as a confident answer** (at least 60% on one digit")
    assert ": a bar, a plus" in text and "2 would be shown with the page's 'unsure' warning: an X, a triangle" in text
    assert "1 the ink checks stop: a square" in text


def test_non_digit_shapes_include_the_audited_ones():
    """The button shows the shapes the audit measured on both sides of the line (bar, plus, asterisk, X,
    triangle) and one the ink checks stop."""
    names = list(non_digit_canvases())
    assert names == ["a horizontal bar", "a plus sign", "an X", "an asterisk", "a triangle", "a filled square"]
    for name, rgba in non_digit_canvases().items():
        assert rgba.shape == (280, 280, 4) and rgba[..., 3].any() and not rgba[..., :3].any(), name  # ink in alpha
