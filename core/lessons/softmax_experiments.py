"""Short live experiments for the explorer pages, on a subset of MNIST (seconds on a CPU)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from core.engine.config import TrainConfig
from core.engine.data import iterate_batches, load_dataset
from core.engine.models import MLP, init_weights
from core.engine.torch_loop import default_device
from core.store.runs import RunInfo

DIGITS = 10


def confusion_counts(true: torch.Tensor, pred: torch.Tensor, k: int = DIGITS) -> np.ndarray:
    """(k, k) counts, rows = true digit, columns = predicted digit."""
    return torch.bincount(true.long() * k + pred.long(), minlength=k * k).reshape(k, k).cpu().numpy()


def regression_labels(out: torch.Tensor) -> torch.Tensor:
    """A regression output (B, 1) read as a digit: rounded to the nearest of 0..9."""
    return out[:, 0].round().clamp(0, DIGITS - 1).long()


@dataclass(frozen=True)
class ErrorSummary:
    """What a model's test errors look like, from its confusion matrix."""
    errors: int
    off_by_one: int  # predicted digit = true digit ± 1
    top_wrong: tuple[tuple[tuple[int, int], ...], ...]  # per true digit: (predicted, count) of its two commonest errors

    @property
    def off_by_one_share(self) -> float:
        return self.off_by_one / self.errors if self.errors else 0.0


def error_summary(confusion: np.ndarray) -> ErrorSummary:
    c = np.asarray(confusion)
    wrong = c * (1 - np.eye(len(c), dtype=c.dtype))
    i, j = np.indices(c.shape)
    top = tuple(tuple((int(p), int(row[p])) for p in np.argsort(-row, kind="stable")[:2] if row[p] > 0) for row in wrong)
    return ErrorSummary(int(wrong.sum()), int(wrong[np.abs(i - j) == 1].sum()), top)


@dataclass(frozen=True)
class LabelExperiment:
    """The same MLP trained with a regression output and with a 10-way softmax, tested on all 10,000."""
    regression_acc: float
    softmax_acc: float
    regression_seconds: float
    softmax_seconds: float
    regression_confusion: np.ndarray  # (10, 10) counts, rows = true digit
    softmax_confusion: np.ndarray

    @property
    def regression_errors(self) -> ErrorSummary:
        return error_summary(self.regression_confusion)

    @property
    def softmax_errors(self) -> ErrorSummary:
        return error_summary(self.softmax_confusion)


LABEL_TRAIN, LABEL_EPOCHS, LABEL_BATCH = 12000, 3, 64  # the labels experiment: images, epochs, batch size


def label_experiment_configs() -> list[TrainConfig]:
    """What the labels experiment costs, as runs the duration estimate knows: two no-BN models of 3 epochs over
    12,000 images (the regression model's one output instead of ten changes nothing measurable)."""
    return [TrainConfig(epochs=LABEL_EPOCHS, max_batches=math.ceil(LABEL_TRAIN / LABEL_BATCH))] * 2


def regression_vs_softmax(data_dir: str | None = None, n_train: int = LABEL_TRAIN, epochs: int = LABEL_EPOCHS,
                          hidden: tuple[int, ...] = (512, 256, 128, 32), seed: int = 0) -> LabelExperiment:
    """The same MLP trained two ways on the first n_train images, tested on all 10,000:
    one output regressed on the digit's value (MSE, rounded to predict) vs 10-way softmax + cross-entropy."""
    torch.set_flush_denormal(True)
    data = load_dataset("mnist", data_dir)
    dev = default_device()
    x, y = data.train_x[:n_train].to(dev), data.train_y[:n_train].to(dev)
    tx, ty = data.test_x.to(dev), data.test_y.to(dev)
    out: dict[str, object] = {}
    for mode in ("regression", "softmax"):
        t0 = time.perf_counter()
        model = MLP(hidden, outputs=1 if mode == "regression" else DIGITS)
        init_weights(model, seed)
        model.to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        gen = torch.Generator().manual_seed(seed)  # both modes see the same batches
        for _ in range(epochs):
            for xb, yb in iterate_batches(x, y, LABEL_BATCH, gen):
                pred = model(xb)
                loss = F.mse_loss(pred[:, 0], yb.float()) if mode == "regression" else F.cross_entropy(pred, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        model.eval()
        labels = []
        with torch.inference_mode():
            for xb, _ in iterate_batches(tx, ty, 1000):
                pred = model(xb)
                labels.append(regression_labels(pred) if mode == "regression" else pred.argmax(1))
        confusion = confusion_counts(ty, torch.cat(labels))
        out[f"{mode}_acc"] = float(np.trace(confusion) / len(ty))
        out[f"{mode}_confusion"] = confusion
        out[f"{mode}_seconds"] = time.perf_counter() - t0
    return LabelExperiment(**out)


def regression_error_rows(res: LabelExperiment) -> list[dict]:
    """Per true digit: the regression model's errors and what it read that digit as most often."""
    c = res.regression_confusion
    return [{"true digit": d, "errors": int(c[d].sum() - c[d, d]),
             "read most often as": ", ".join(f"{p} ({n})" for p, n in top)}
            for d, top in enumerate(res.regression_errors.top_wrong)]


# --- both forms of the loss, trained briefly --------------------------------------------------------------------
def double_softmax_configs() -> list[TrainConfig]:
    """The explorer's pair: the correct form and the double softmax, no BN, 3 epochs of 150 batches."""
    return [TrainConfig(double_softmax=ds, epochs=3, max_batches=150) for ds in (False, True)]


def form_name(config: TrainConfig) -> str:
    return "double softmax" if config.double_softmax else "correct"


def newest_pair(own_runs: Sequence[RunInfo], broken: Sequence[str] = ("failed", "diverged")) -> list[str]:
    """Ids of the newest ended-an-epoch run of each form among the learner's runs (newest first), [correct,
    double]; [] unless both forms have one. Never a failed or diverged run."""
    ok = [r for r in own_runs if r.snapshot.history and r.snapshot.status not in broken]
    correct = next((r.id for r in ok if not r.config.double_softmax), None)
    doubled = next((r.id for r in ok if r.config.double_softmax), None)
    return [correct, doubled] if correct and doubled else []
