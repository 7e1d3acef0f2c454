"""Every number the softmax explorer teaches, checked against torch autograd."""
import math

import numpy as np
import pytest
import torch

from core.lessons.softmax import (autograd_bce, autograd_softmax_ce, binary_comparison, confidence_sweep, double_softmax_floor,
                          logits_for_probs, ordinal_vs_onehot_losses, sigmoid, softmax, softmax_cross_entropy)


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
