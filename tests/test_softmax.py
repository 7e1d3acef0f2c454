"""Every number the softmax explorer teaches, checked against torch autograd."""
import math

import numpy as np
import pytest
import torch

from core.lessons.softmax import (COMPARED_CONFIDENCES, COMPARED_WRONG, adam_step_scale, autograd_bce,
                                  autograd_softmax_ce, binary_comparison, compared_forms, confidence_sweep, double_softmax_ceiling,
                                  double_softmax_floor, double_softmax_harm, double_softmax_warning, forms_at,
                                  logits_for_probs, margin_for_confidence, ordinal_vs_onehot_losses, sigmoid, softmax,
                                  softmax_cross_entropy)
from core.lessons.softmax_experiments import confusion_counts, error_summary, regression_labels


@pytest.mark.parametrize("seed", range(25))
def test_gradient_matches_autograd_random(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 11))
    z = rng.normal(0, 10 ** rng.uniform(-1, 2), n)
    target, temp = int(rng.integers(n)), float(rng.uniform(0.1, 5))
    r = softmax_cross_entropy(z, target, temp)
    loss, grad = autograd_softmax_ce(z, target, temp)
    assert r.loss == pytest.approx(loss, abs=1e-10, rel=1e-10)
    np.testing.assert_allclose(r.grad, grad, atol=1e-12)
    np.testing.assert_allclose(r.probs.sum(), 1.0)
    assert np.count_nonzero(r.terms) <= 1 and r.terms[target] == pytest.approx(r.loss)


@pytest.mark.parametrize("z", [[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0], [1000.0, 1000.0], [0.0, 1000.0, -1000.0]])
def test_extreme_logits_are_finite(z):
    for target in range(len(z)):
        r = softmax_cross_entropy(np.array(z), target)
        assert np.isfinite(r.probs).all() and np.isfinite(r.grad).all() and math.isfinite(r.loss)
        loss, grad = autograd_softmax_ce(np.array(z), target)
        assert r.loss == pytest.approx(loss) and np.allclose(r.grad, grad)


def test_worked_example_exact():
    z = logits_for_probs([0.1, 0.2, 0.7])
    r = softmax_cross_entropy(z, 2)
    np.testing.assert_allclose(r.probs, [0.1, 0.2, 0.7], atol=1e-12)
    assert r.loss == pytest.approx(-math.log(0.7)) and round(r.loss, 3) == 0.357
    np.testing.assert_allclose(r.grad, [0.1, 0.2, -0.3], atol=1e-12)


def test_two_way_softmax_equals_sigmoid_of_difference():
    rng = np.random.default_rng(0)
    for z0, z1 in rng.normal(0, 20, (50, 2)):
        assert softmax(np.array([z0, z1]))[0] == pytest.approx(sigmoid(z0 - z1), abs=1e-12)
        assert torch.sigmoid(torch.tensor(z0 - z1, dtype=torch.float64)).item() == pytest.approx(sigmoid(z0 - z1))


def test_binary_worked_example():
    b = binary_comparison(0.4)
    assert b.softmax_loss == pytest.approx(-math.log(0.4)) and b.bce_loss == pytest.approx(-math.log(0.4))
    np.testing.assert_allclose(b.softmax_grad, [-0.6, 0.6], atol=1e-12)  # equal size, opposite sign
    assert b.bce_grad == pytest.approx(-0.6) and b.sigmoid_prob == pytest.approx(0.4)
    loss, grad = autograd_bce(b.sigmoid_logit, 1.0)
    assert loss == pytest.approx(b.bce_loss) and grad == pytest.approx(b.bce_grad)
    _, sgrad = autograd_softmax_ce(b.logits, 0)
    np.testing.assert_allclose(sgrad, b.softmax_grad, atol=1e-12)


def test_ordinal_labels_call_dog_closer():
    ordinal, ce = ordinal_vs_onehot_losses(3, 2, 0.9)
    assert list(ordinal) == [4.0, 1.0, 0.0]
    assert ce[0] == ce[1] > ce[2] == pytest.approx(-math.log(0.9))
    # the one-hot loss agrees with torch's cross-entropy on the same probabilities
    p = torch.tensor([[0.9, 0.05, 0.05]], dtype=torch.float64)
    assert torch.nn.functional.nll_loss(p.log(), torch.tensor([2])).item() == pytest.approx(ce[0])


def test_double_softmax_floor():
    floor = double_softmax_floor(10)
    assert floor == pytest.approx(1.4611, abs=1e-4)
    perfect = torch.eye(10, dtype=torch.float64)[:1]  # the best a softmax output can do
    assert torch.nn.functional.cross_entropy(perfect, torch.tensor([0])).item() == pytest.approx(floor)
    sw = confidence_sweep(10, np.array([0.0, 5.0, 20.0, 40.0]))
    assert (sw["double_loss"] >= floor - 1e-9).all() and sw["double_loss"][-1] == pytest.approx(floor, abs=1e-6)
    assert sw["loss"][-1] < 1e-6  # the correct form goes to zero
    # confident prediction: the double-softmax gradient has faded far below the correct one at the same margin
    assert sw["double_grad"][1] < sw["grad"][1] and sw["double_grad"][-1] < 1e-8


def _independent_forms(p_true: float, n: int = 10, wrong: bool = False):
    """Both forms from scratch: logits = log of the probability vector (softmax ignores the shift); the true
    class is 0, and with `wrong` the share p_true sits on class 1 instead."""
    probs = torch.full((n,), (1 - p_true) / (n - 1), dtype=torch.float64)
    probs[1 if wrong else 0] = p_true
    out = []
    for double in (False, True):
        z = probs.log().requires_grad_(True)
        inp = torch.softmax(z, 0) if double else z
        loss = -torch.log_softmax(inp, 0)[0]
        loss.backward()
        out.append((loss.item(), z.grad.norm().item()))
    return out


@pytest.mark.parametrize("p", COMPARED_CONFIDENCES)
def test_forms_at_equal_autograd(p):
    f = forms_at(p)
    (loss, grad), (dloss, dgrad) = _independent_forms(p)
    assert (f.loss, f.grad, f.double_loss, f.double_grad) == pytest.approx((loss, grad, dloss, dgrad), rel=1e-10)
    assert f.double_loss >= double_softmax_floor(10)


def test_gradient_ratios_at_the_stated_probabilities():
    """What the page says instead of 'the gradient fades as the prediction gets confident': small from the
    start (10x at 0.10), only 1.2x apart when confident, while the double-softmax loss stays above the floor."""
    start, mid, confident = forms_at(0.10), forms_at(0.69), forms_at(0.98)
    assert (round(start.grad, 3), round(start.double_grad, 3), round(start.ratio, 6)) == (0.949, 0.095, 10.0)
    assert (round(mid.grad, 2), round(mid.double_grad, 2)) == (0.33, 0.21)
    assert round(confident.ratio, 1) == 1.2 and confident.loss < 0.03 and confident.double_loss > double_softmax_floor(10)
    assert start.ratio > mid.ratio > confident.ratio  # the gap is widest at the start, not when confident
    assert math.log(1 + 9 / math.e) == pytest.approx(double_softmax_floor(10))


@pytest.mark.parametrize("p", COMPARED_WRONG)
def test_wrong_digit_rows_equal_autograd(p):
    """The table's wrong-digit rows, against both forms built from the probability vector. Catches rows computed
    with the share on the true class (the old table) or with the target moved along with the share."""
    f = forms_at(p, wrong=True)
    (loss, grad), (dloss, dgrad) = _independent_forms(p, wrong=True)
    assert (f.loss, f.grad, f.double_loss, f.double_grad) == pytest.approx((loss, grad, dloss, dgrad), rel=1e-10)
    assert f.p_true == pytest.approx((1 - p) / 9) and f.loss == pytest.approx(-math.log((1 - p) / 9))
    assert double_softmax_floor(10) < f.double_loss < double_softmax_ceiling(10)


def test_the_harm_is_on_confidently_wrong_outputs():
    """The numbers the page and the Train page now state (issue: at 98% on a wrong digit the correct gradient
    norm is 1.399 and the double-softmax one 0.0056, 248x smaller; the loss capped at log(e + 9) = 2.461). By hand:
    y_hat - y has 0.98 on the wrong digit, 0.02/9 - 1 on the true one and 0.02/9 on the eight others. Catches a
    page that keeps 'small from the start' as the harm (10x at 0.10, which Adam divides out: the step for gradients
    10x smaller is within 0.1% of the full one) or a ratio taken the wrong way round."""
    h = double_softmax_harm()
    q = 0.02 / 9
    by_hand = math.sqrt(0.98 ** 2 + (q - 1) ** 2 + 8 * q ** 2)
    assert h.wrong.grad == pytest.approx(by_hand, rel=1e-12) and round(h.wrong.grad, 3) == 1.399
    assert round(h.wrong.double_grad, 4) == 0.0056 and round(h.wrong.ratio) == 248
    assert h.ceiling == pytest.approx(math.log(math.e + 9)) and round(h.ceiling, 3) == 2.461
    sure_wrong = torch.eye(10, dtype=torch.float64)[1:2]  # a softmax output all on digit 1, the truth is 0
    assert torch.nn.functional.cross_entropy(sure_wrong, torch.tensor([0])).item() == pytest.approx(h.ceiling)
    assert h.wrong.ratio > 20 * h.start.ratio  # the wrong outputs lose far more than the uniform start's 10x
    assert h.correct_weight == pytest.approx(by_hand / math.sqrt(0.9))  # ‖y_hat - y‖ at ten equal outputs: √0.9
    assert h.double_weight == pytest.approx(h.correct_weight / (h.wrong.ratio / h.start.ratio))
    assert 0.999 < h.adam_scale <= 1.0
    text = double_softmax_warning()
    assert "248× less" in text and "between 1.461 and 2.461" in text and "small from the start" not in text


def test_adam_step_scale_sees_epsilon():
    """adam_step_scale really runs Adam: gradients far below its ε (1e-8) are NOT divided out (a stub that returns
    1.0 fails here)."""
    assert adam_step_scale(1e-6) < 0.5 < adam_step_scale(0.1)


def test_table_rows_in_order():
    rows = compared_forms()
    assert [f.p for f in rows] == list(COMPARED_CONFIDENCES) + list(COMPARED_WRONG)
    assert [f.wrong for f in rows] == [False] * len(COMPARED_CONFIDENCES) + [True] * len(COMPARED_WRONG)
    assert rows[-1].case == "98% on a wrong digit"


def test_margin_for_confidence():
    for p in (0.05, 0.1, 0.5, 0.999):
        assert softmax(np.r_[margin_for_confidence(p), np.zeros(9)])[0] == pytest.approx(p)
    with pytest.raises(ValueError, match="p_true"):
        margin_for_confidence(1.0)


def test_error_summary_counts_off_by_one():
    c = np.zeros((10, 10), int)
    np.fill_diagonal(c, 100)
    c[4, 5], c[4, 6], c[9, 8], c[9, 7], c[3, 8] = 7, 5, 6, 2, 1
    s = error_summary(c)
    assert (s.errors, s.off_by_one) == (21, 13) and s.off_by_one_share == pytest.approx(13 / 21)
    assert s.top_wrong[4] == ((5, 7), (6, 5)) and s.top_wrong[9] == ((8, 6), (7, 2)) and s.top_wrong[0] == ()


def test_confusion_counts_and_regression_labels():
    true = torch.tensor([0, 1, 2, 9, 9])
    pred = regression_labels(torch.tensor([[0.4], [1.6], [-3.0], [8.6], [12.0]]))
    assert pred.tolist() == [0, 2, 0, 9, 9]
    c = confusion_counts(true, pred)
    assert c.sum() == 5 and c[1, 2] == 1 and c[2, 0] == 1 and c[9, 9] == 2
