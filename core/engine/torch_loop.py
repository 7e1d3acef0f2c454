"""The PyTorch backend: the training loop, one step, and evaluation.

`train_pytorch` is the loop of pytorch/examples' mnist `train()` with two additions that a dashboard needs:
run control asked before each batch (pause, stop) and a logging window every few steps, read out in one transfer
(the only point where a GPU's queue is waited for, never per step).
"""
from __future__ import annotations

import contextlib

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from core.engine.augment import robust_batches
from core.engine.control import RunControl, StepProbe
from core.engine.cuda_graph import GraphedStep
from core.engine.data import MEAN, STD, Dataset, iterate_batches, num_batches
from core.engine.models import MLP
from core.engine.optimizers import Optimizer

EVAL_BATCH = 1000  # evaluation batch size: eval mode makes the result independent of it


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.inference_mode()
def evaluate(model: nn.Module, x_uint8: torch.Tensor, y: torch.Tensor, batch_size: int = EVAL_BATCH,
             mean: float = MEAN, std: float = STD) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over a whole split, in eval mode (BN uses running statistics)."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=y.device)
    correct = torch.zeros((), dtype=torch.long, device=y.device)
    for xb, yb in iterate_batches(x_uint8, y, batch_size, mean=mean, std=std):
        out = model(xb)  # (B, 10)
        loss_sum += F.cross_entropy(out, yb, reduction="sum")
        correct += (out.argmax(1) == yb).sum()
    model.train(was_training)
    n = len(y)
    return loss_sum.item() / n, correct.item() / n


def make_step(model: MLP, opt: Optimizer, precision: str = "fp32", device_type: str = "cpu",
              probe: StepProbe | None = None) -> Callable:
    """One training step, as every run takes it: step(x, y, probe_step=None) -> (loss, logits).

    Mixed precision ("bf16") is thread-local, so other threads (and evaluation) stay in float32. A CUDA graph
    cannot replay autocast's cache of cast weights: it is switched off there."""
    amp = torch.autocast(device_type, dtype=torch.bfloat16, cache_enabled=device_type != "cuda") \
        if precision == "bf16" else contextlib.nullcontext()  # a disabled autocast still costs its enter and exit

    def step(xb: torch.Tensor, yb: torch.Tensor, probe_step: int | None = None):
        if probe_step:
            probe.before_step(probe_step)
        with amp:
            out = model(xb)  # (B, classes)
            loss = F.cross_entropy(out, yb)  # autocast computes it in float32
        opt.zero_grad()
        loss.backward()
        if probe_step:
            probe.after_backward(probe_step, model)
        opt.step()
        return loss, out
    return step


class _Window:
    """The steps of one logging window, kept as tensors and read out together."""

    def __init__(self) -> None:
        self.losses: list[torch.Tensor] = []
        self.preds: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []

    def add(self, loss: torch.Tensor, pred: torch.Tensor, y: torch.Tensor) -> None:
        self.losses.append(loss)
        self.preds.append(pred)
        self.labels.append(y)

    def read(self) -> tuple[list[float], int, list[int]]:
        """(each step's loss, correct predictions, each step's batch size): one transfer for the whole window."""
        hits = (torch.cat(self.preds) == torch.cat(self.labels)).sum().float()
        *losses, hits = torch.cat([torch.stack(self.losses).float(), hits[None]]).tolist()
        sizes = [len(y) for y in self.labels]
        self.__init__()
        return losses, int(hits), sizes


def train_pytorch(control: RunControl, config, data: Dataset, model: MLP, opt: Optimizer, device: torch.device,
                  probe: StepProbe | None = None, cuda_graph: bool = True) -> None:
    """Train `model` on `data` for config.epochs, reporting to `control`; returns when done or stopped."""
    train_x, train_y = data.train_x.to(device), data.train_y.to(device)
    test_x, test_y = data.test_x.to(device), data.test_y.to(device)
    if probe:
        probe.attach(model)
    step_fn = make_step(model, opt, config.precision, device.type, probe)
    # On a GPU the step is launch-bound: capture it once as a CUDA graph (core/engine/cuda_graph.py).
    graphed = GraphedStep(step_fn) if device.type == "cuda" and cuda_graph else None
    engine = "eager" if graphed is None else graphed.path
    control.begin(num_batches(len(train_x), config.batch_size, config.max_batches), threads=torch.get_num_threads(),
                  engine=engine)
    # Minibatch order: same seed, same order (on a GPU the shuffling runs there, from its own generator).
    gen = torch.Generator(device=device if device.type == "cuda" else "cpu").manual_seed(config.seed)
    step = 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        control.begin_epoch(epoch)
        window, loss_sum, correct, seen = _Window(), 0.0, 0, 0
        for i, (xb, yb) in enumerate(_batches(config, data, train_x, train_y, gen, epoch), start=1):
            control.wait_if_paused()
            if control.stopping:
                break
            step += 1
            looked_at = probe is not None and probe.wants(step)
            if graphed is not None and not looked_at:
                loss, pred = graphed(xb, yb)
            else:  # probe steps run eagerly: Python hooks do not run on a graph's replay
                loss, out = step_fn(xb, yb, step if looked_at else None)
                loss, pred = loss.detach(), out.argmax(1)
            window.add(loss, pred, yb)
            if control.log_due(i):
                losses, hits, sizes = window.read()
                if not control.end_window(losses, sum(sizes), i, threads=torch.get_num_threads(), engine=engine):
                    break
                loss_sum += sum(v * n for v, n in zip(losses, sizes))
                correct, seen = correct + hits, seen + sum(sizes)
        if control.stopping:
            break
        # a GPU takes the test split at once
        test_loss, test_acc = evaluate(model, test_x, test_y, EVAL_BATCH if device.type == "cpu" else len(test_y),
                                       data.spec.mean, data.spec.std)
        control.end_epoch(loss_sum / seen, correct / seen, test_loss, test_acc, model)


def _batches(config, data: Dataset, train_x: torch.Tensor, train_y: torch.Tensor, gen: torch.Generator, epoch: int):
    """One epoch's minibatches; with the robust preset the same minibatches, each image redrawn, turned, slanted,
    stretched (core/engine/augment.py)."""
    if config.robust:
        return robust_batches(train_x, train_y, config.batch_size, gen, config.max_batches, data.spec.mean,
                              data.spec.std, config.seed, epoch)
    return iterate_batches(train_x, train_y, config.batch_size, gen, config.max_batches, data.spec.mean, data.spec.std)
