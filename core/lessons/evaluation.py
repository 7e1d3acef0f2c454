"""Evaluation of a trained model on the test split: confusion matrix, per-class accuracy, worst mistakes."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from core.engine import course
from core.engine.data import load_dataset, normalize
from core.engine.models import MLP


@dataclass(frozen=True)
class EvalReport:
    class_names: tuple[str, ...]
    confusion: np.ndarray  # (k, k) counts, rows = true class, columns = predicted
    accuracy: float
    per_class_accuracy: np.ndarray  # (k,)
    mistakes: tuple["Mistake", ...]  # misclassified test images, highest loss first
    by_pair: dict[tuple[int, int], tuple["Mistake", ...]] = field(default_factory=dict)  # (true, predicted) ->
    # that cell's misclassified images, highest loss first (at most max_per_pair)


@dataclass(frozen=True)
class Mistake:
    index: int  # position in the test split
    image: np.ndarray  # (28, 28) uint8
    true: int
    predicted: int
    confidence: float  # probability given to the predicted class
    loss: float  # cross-entropy of the true class


@torch.inference_mode()
def evaluate_model(model: MLP, dataset: str = course.DATASET, data_dir: str | None = None, max_mistakes: int = 48,
                   max_per_pair: int = 24) -> EvalReport:
    data = load_dataset(dataset, data_dir)
    spec, k = data.spec, data.spec.num_classes
    model = model.cpu().eval()  # BN uses its running statistics
    x, y = data.test_x, data.test_y
    probs = torch.cat([model.probabilities(normalize(x[i:i + 1000], spec.mean, spec.std))
                       for i in range(0, len(x), 1000)])  # (N, k)
    pred = probs.argmax(1)
    losses = F.nll_loss(probs.clamp_min(1e-12).log(), y, reduction="none")  # per-image cross-entropy
    confusion = torch.bincount(y * k + pred, minlength=k * k).reshape(k, k).numpy()
    per_class = confusion.diagonal() / np.maximum(confusion.sum(1), 1)
    wrong = (pred != y).nonzero().flatten()
    ranked = wrong[losses[wrong].argsort(descending=True)]  # every mistake, highest loss first

    def mistake(i) -> Mistake:
        return Mistake(int(i), x[i].numpy(), int(y[i]), int(pred[i]), float(probs[i, pred[i]]), float(losses[i]))

    by_pair: dict[tuple[int, int], list[Mistake]] = {}
    for i in ranked.tolist():
        cell = by_pair.setdefault((int(y[i]), int(pred[i])), [])
        if len(cell) < max_per_pair:
            cell.append(mistake(i))
    return EvalReport(spec.class_names, confusion, float((pred == y).float().mean()), per_class,
                      tuple(mistake(i) for i in ranked[:max_mistakes]), {k: tuple(v) for k, v in by_pair.items()})


def class_shares(dataset: str = course.DATASET, data_dir: str | None = None) -> np.ndarray:
    """(k,) share of each class in the test split: the accuracy of a model that answers that class for every
    image (MNIST: 11.35% for '1', the commonest test digit)."""
    data = load_dataset(dataset, data_dir)
    return (torch.bincount(data.test_y, minlength=data.spec.num_classes) / len(data.test_y)).numpy()


def one_class_answer(accuracy: float, shares: np.ndarray, test_size: int) -> int | None:
    """The class c when `accuracy` is exactly c's share of the test split (within half an image), which is
    what a network that answers c for everything scores: a sign that it collapsed, as diverging ones do."""
    close = np.abs(shares - accuracy) < 0.5 / test_size
    return int(np.argmax(close)) if close.any() else None
