"""Short live experiments for the explorer pages, on a subset of MNIST (seconds on a CPU)."""
from __future__ import annotations

import time

import torch
from torch.nn import functional as F

from core.engine.data import iterate_batches, load_dataset
from core.engine.models import MLP, init_weights
from core.engine.trainer import default_device


def regression_vs_softmax(data_dir: str | None = None, n_train: int = 12000, epochs: int = 3,
                          hidden: tuple[int, ...] = (512, 256, 128, 32), seed: int = 0) -> dict[str, float]:
    """The same MLP trained two ways on the first n_train images, tested on all 10,000:
    one output regressed on the digit's value (MSE, rounded to predict) vs 10-way softmax + cross-entropy."""
    torch.set_flush_denormal(True)
    data = load_dataset("mnist", data_dir)
    dev = default_device()
    x, y = data.train_x[:n_train].to(dev), data.train_y[:n_train].to(dev)
    tx, ty = data.test_x.to(dev), data.test_y.to(dev)
    out: dict[str, float] = {}
    for mode in ("regression", "softmax"):
        t0 = time.perf_counter()
        model = MLP(hidden, outputs=1 if mode == "regression" else 10)
        init_weights(model, seed)
        model.to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        gen = torch.Generator().manual_seed(seed)  # both modes see the same batches
        for _ in range(epochs):
            for xb, yb in iterate_batches(x, y, 64, gen):
                pred = model(xb)
                loss = F.mse_loss(pred[:, 0], yb.float()) if mode == "regression" else F.cross_entropy(pred, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        model.eval()
        correct = 0
        with torch.inference_mode():
            for xb, yb in iterate_batches(tx, ty, 1000):
                pred = model(xb)
                label = pred[:, 0].round().clamp(0, 9).long() if mode == "regression" else pred.argmax(1)
                correct += int((label == yb).sum())
        out[f"{mode}_acc"] = correct / len(ty)
        out[f"{mode}_seconds"] = time.perf_counter() - t0
    return out
