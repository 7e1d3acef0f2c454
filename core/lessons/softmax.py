"""The softmax explorer's maths: pure functions on float64 numpy arrays, checked against autograd."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

WORKED_PROBS = (0.1, 0.2, 0.7)  # the course's example: true class rabbit
WORKED_CLASSES = ("cat", "dog", "rabbit")


def log_softmax(z: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    s = np.asarray(z, dtype=np.float64) / temperature
    s = s - s.max()  # shift: exp never overflows, even for logits of +-1000
    return s - np.log(np.exp(s).sum())


def softmax(z: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return np.exp(log_softmax(z, temperature))


def one_hot(target: int, n: int) -> np.ndarray:
    y = np.zeros(n)
    y[target] = 1.0
    return y


@dataclass(frozen=True)
class SoftmaxCE:
    probs: np.ndarray  # y_hat
    target: np.ndarray  # one-hot y
    terms: np.ndarray  # -y_i log y_hat_i: only the true class's term is non-zero
    loss: float
    grad: np.ndarray  # dL/dz = (y_hat - y) / T


def softmax_cross_entropy(z: np.ndarray, target: int, temperature: float = 1.0) -> SoftmaxCE:
    if temperature <= 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature: must be a finite number > 0, got {temperature!r}")
    z = np.asarray(z, dtype=np.float64)
    logp = log_softmax(z, temperature)
    y = one_hot(target, len(z))
    terms = -y * logp
    terms[y == 0] = 0.0  # 0 * log(0) is 0 here, not NaN
    p = np.exp(logp)
    return SoftmaxCE(p, y, terms, float(terms.sum()), (p - y) / temperature)


def autograd_softmax_ce(z: np.ndarray, target: int, temperature: float = 1.0) -> tuple[float, np.ndarray]:
    """The same loss and gradient from torch autograd (float64), for the explorer's check line."""
    zt = torch.tensor(np.asarray(z, dtype=np.float64), requires_grad=True)
    loss = torch.nn.functional.cross_entropy((zt / temperature)[None], torch.tensor([target]))
    loss.backward()
    return loss.item(), zt.grad.numpy().copy()


def logits_for_probs(p: np.ndarray) -> np.ndarray:
    """Logits whose softmax is exactly p: log p, centred (softmax ignores a common shift)."""
    z = np.log(np.asarray(p, dtype=np.float64))
    return z - z.mean()


# --- binary: one sigmoid vs a two-way softmax ------------------------------------------
def sigmoid(s: float) -> float:
    return float(0.5 * (1 + np.tanh(0.5 * s)))  # stable for large |s|


@dataclass(frozen=True)
class BinaryComparison:
    p_true: float
    logits: np.ndarray  # two-way softmax logits (z0, z1)
    softmax_probs: np.ndarray
    softmax_loss: float
    softmax_grad: np.ndarray  # two gradients: equal size, opposite sign
    sigmoid_logit: float  # s = z0 - z1
    sigmoid_prob: float  # sigmoid(s) == softmax([z0, z1])[0]
    bce_loss: float
    bce_grad: float  # dL/ds = sigmoid(s) - y: the same information, once


def binary_comparison(p_true: float, true_is_first: bool = True) -> BinaryComparison:
    """The course's example: true class cat, P(cat) = p_true, as a 2-way softmax and as one sigmoid."""
    if not 0 < p_true < 1:
        raise ValueError(f"p_true: must be strictly between 0 and 1, got {p_true!r}")
    z = logits_for_probs([p_true, 1 - p_true])
    ce = softmax_cross_entropy(z, 0 if true_is_first else 1)
    s = float(z[0] - z[1])
    q = sigmoid(s)
    y = 1.0 if true_is_first else 0.0
    bce = -(y * math.log(q) + (1 - y) * math.log(1 - q))
    return BinaryComparison(p_true, z, ce.probs, ce.loss, ce.grad, s, q, bce, q - y)


def autograd_bce(s: float, y: float) -> tuple[float, float]:
    st = torch.tensor(s, dtype=torch.float64, requires_grad=True)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(st, torch.tensor(y, dtype=torch.float64))
    loss.backward()
    return loss.item(), st.grad.item()


# --- labels: ordinal targets vs one-hot ------------------------------------------------
def ordinal_vs_onehot_losses(n_classes: int, true_class: int, confidence: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Loss of predicting each class k when the truth is `true_class`:
    squared error on the class index (ordinal labels), and cross-entropy of a prediction that puts
    `confidence` on k and spreads the rest evenly (one-hot labels)."""
    k = np.arange(n_classes)
    ordinal = (k - true_class).astype(np.float64) ** 2
    rest = (1 - confidence) / (n_classes - 1)
    ce = np.where(k == true_class, -np.log(confidence), -np.log(rest))
    return ordinal, ce


# --- the double softmax -------------------------------------------------------------------
def double_softmax_floor(n_classes: int = 10) -> float:
    """Lowest cross-entropy reachable when the model already outputs probabilities: a perfect one-hot
    output p gives CE(softmax(p)) = log(e + n - 1) - 1 (about 1.461 for 10 classes)."""
    return math.log(math.e + n_classes - 1) - 1


def _both_forms(z: torch.Tensor, target: int = 0) -> tuple[float, float, float, float]:
    """(loss, ‖dL/dz‖) of the correct form, CE on the logits z, and of the double softmax, CE on softmax(z),
    both by autograd in float64."""
    out = []
    for double in (False, True):
        zt = z.detach().clone().requires_grad_(True)
        inp = torch.softmax(zt, 0) if double else zt
        loss = torch.nn.functional.cross_entropy(inp[None], torch.tensor([target]))
        loss.backward()
        out += [loss.item(), float(zt.grad.norm())]
    return out[0], out[1], out[2], out[3]


def confidence_sweep(n_classes: int = 10, margins: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """For logits [m, 0, ..., 0] with the true class first: loss and gradient norm w.r.t. the logits,
    for the correct form (CE on logits) and the double softmax (CE on softmax(logits)), via autograd."""
    margins = np.linspace(0, 12, 49) if margins is None else np.asarray(margins, dtype=np.float64)
    out = {k: np.zeros(len(margins)) for k in ("p_true", "loss", "grad", "double_loss", "double_grad")}
    for i, m in enumerate(margins):
        z = torch.zeros(n_classes, dtype=torch.float64)
        z[0] = m
        out["loss"][i], out["grad"][i], out["double_loss"][i], out["double_grad"][i] = _both_forms(z)
        out["p_true"][i] = softmax(z.numpy())[0]
    out["margin"] = margins
    return out


# ŷ[true] where the page compares the two forms: 1/10 is where every output is equal (an untrained net)
COMPARED_CONFIDENCES = (0.10, 0.30, 0.50, 0.69, 0.90, 0.98, 0.999)


@dataclass(frozen=True)
class FormsAt:
    """Both forms at logits [m, 0, ..., 0] whose softmax gives the true class p_true."""
    p_true: float
    loss: float  # CE(z): the correct form
    grad: float  # its ‖dL/dz‖
    double_loss: float  # CE(softmax(z)): never below double_softmax_floor
    double_grad: float

    @property
    def ratio(self) -> float:
        """How many times smaller the double-softmax gradient is."""
        return self.grad / self.double_grad


def margin_for_confidence(p_true: float, n_classes: int = 10) -> float:
    """m such that softmax([m, 0, ..., 0])[0] = p_true: e^m / (e^m + n - 1) = p."""
    if not 0 < p_true < 1:
        raise ValueError(f"p_true: must be strictly between 0 and 1, got {p_true!r}")
    return math.log(p_true * (n_classes - 1) / (1 - p_true))


def forms_at(p_true: float, n_classes: int = 10) -> FormsAt:
    z = torch.zeros(n_classes, dtype=torch.float64)
    z[0] = margin_for_confidence(p_true, n_classes)
    return FormsAt(p_true, *_both_forms(z))
