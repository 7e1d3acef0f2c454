"""The softmax explorer's maths: pure functions on float64 numpy arrays, checked against autograd."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

WORKED_PROBS = (0.1, 0.2, 0.7)  # the course's example: true class rabbit
WORKED_CLASSES = ("cat", "dog", "rabbit")
N_CLASSES = 10  # the double-softmax panel: MNIST's ten digits


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
# ...and the output's confidence on a WRONG digit, where the two forms differ most
COMPARED_WRONG = (0.50, 0.90, 0.98)


def double_softmax_ceiling(n_classes: int = 10) -> float:
    """Highest cross-entropy the double softmax can report: an output that is one-hot on a wrong class gives
    CE(softmax(p)) = log(e + n - 1) (about 2.461 for 10 classes), however wrong the network is."""
    return math.log(math.e + n_classes - 1)


@dataclass(frozen=True)
class FormsAt:
    """Both forms at logits [0, ..., m, ..., 0] whose softmax puts p on one class: the true one, or a wrong one
    (then the true class and the others share 1 - p)."""
    p: float
    wrong: bool  # p sits on a wrong class
    loss: float  # CE(z): the correct form
    grad: float  # its ‖dL/dz‖
    double_loss: float  # CE(softmax(z)): between double_softmax_floor and double_softmax_ceiling
    double_grad: float
    n_classes: int = N_CLASSES

    @property
    def p_true(self) -> float:
        return (1 - self.p) / (self.n_classes - 1) if self.wrong else self.p

    @property
    def ratio(self) -> float:
        """How many times smaller the double-softmax gradient is."""
        return self.grad / self.double_grad

    @property
    def case(self) -> str:
        return f"{self.p:.0%} on a wrong digit" if self.wrong else f"{self.p:.3g} on the true digit"


def margin_for_confidence(p_true: float, n_classes: int = 10) -> float:
    """m such that softmax([m, 0, ..., 0])[0] = p_true: e^m / (e^m + n - 1) = p."""
    if not 0 < p_true < 1:
        raise ValueError(f"p_true: must be strictly between 0 and 1, got {p_true!r}")
    return math.log(p_true * (n_classes - 1) / (1 - p_true))


def forms_at(p: float, n_classes: int = N_CLASSES, wrong: bool = False) -> FormsAt:
    """Both forms when the output puts p on the true class (class 0), or with `wrong` on class 1 instead."""
    z = torch.zeros(n_classes, dtype=torch.float64)
    z[1 if wrong else 0] = margin_for_confidence(p, n_classes)
    return FormsAt(p, wrong, *_both_forms(z, target=0), n_classes)


def compared_forms() -> list[FormsAt]:
    """The rows of the page's table: confidences on the true digit, then on a wrong one."""
    return [forms_at(p) for p in COMPARED_CONFIDENCES] + [forms_at(p, wrong=True) for p in COMPARED_WRONG]


@dataclass(frozen=True)
class DoubleSoftmaxHarm:
    """What the double softmax does to the gradient, in the numbers the page and the Train page state."""
    floor: float  # lowest loss it can reach (a perfect output)
    ceiling: float  # highest loss it can report (an output sure of a wrong digit)
    start: FormsAt  # every output equal: an untrained network
    wrong: FormsAt  # 98% on a wrong digit
    adam_scale: float  # Adam's step for the same gradients 10x smaller, as a share of its step for the full ones

    @property
    def correct_weight(self) -> float:
        """A confidently wrong output's pull, relative to an untrained one's, in the correct form."""
        return self.wrong.grad / self.start.grad

    @property
    def double_weight(self) -> float:
        return self.wrong.double_grad / self.start.double_grad


def double_softmax_harm(n_classes: int = N_CLASSES) -> DoubleSoftmaxHarm:
    return DoubleSoftmaxHarm(double_softmax_floor(n_classes), double_softmax_ceiling(n_classes),
                             forms_at(1 / n_classes, n_classes), forms_at(0.98, n_classes, wrong=True),
                             adam_step_scale(0.1))


def adam_step_scale(scale: float, steps: int = 20, size: int = 1000, seed: int = 0) -> float:
    """How far Adam (PyTorch's, default settings) moves a parameter fed gradients x `scale`, as a share of how far
    it moves it fed the gradients themselves: random gradients of about 1e-3, the same ones both times."""
    g = torch.Generator().manual_seed(seed)
    grads = [torch.randn(size, generator=g, dtype=torch.float64) * 1e-3 for _ in range(steps)]
    moved = []
    for s in (1.0, scale):
        w = torch.nn.Parameter(torch.zeros(size, dtype=torch.float64))
        opt = torch.optim.Adam([w], lr=1e-3)
        for gr in grads:
            w.grad = gr * s
            opt.step()
        moved.append(float(w.detach().norm()))
    return moved[1] / moved[0]


def double_softmax_warning(n_classes: int = N_CLASSES) -> str:
    """The Train page's one-line warning under the double-softmax option, with computed numbers."""
    h = double_softmax_harm(n_classes)
    return (f"Double softmax is wrong on purpose: CrossEntropyLoss already applies (log-)softmax, so softmax runs "
            f"twice. The loss stays between {h.floor:.3f} and {h.ceiling:.3f}, and an output that is confidently "
            f"wrong gets almost no gradient: at {h.wrong.p:.0%} on a wrong digit {h.wrong.ratio:.0f}× less than the "
            "correct form gives it (numbers: Softmax explorer, *Double softmax*).")
