"""The BatchNorm lab: twin runs that differ only in BN, a probe that looks inside while they train,
train- vs eval-mode classification, and summaries that say when a difference is only seed noise."""
from __future__ import annotations

import copy
import math
import statistics
import threading
import uuid
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import torch
from torch import nn

from core.engine.config import TrainConfig
from core.engine.data import load_dataset, normalize
from core.engine.models import MLP
from core.store.runs import RunInfo, RunStore
from core.engine.snapshot import RunSnapshot

QUANTILES = (0.15, 0.50, 0.85)  # as in Ioffe & Szegedy (2015), figure 1
MAX_QUANTILE_ELEMENTS = 1 << 20  # torch.quantile refuses huge inputs; a strided sample is plenty


def activation_percentiles(values: torch.Tensor) -> list[float]:
    """15th / 50th / 85th percentiles of all values of a (B, H) activation."""
    flat = values.detach().float().flatten()
    if flat.numel() > MAX_QUANTILE_ELEMENTS:
        flat = flat[:: math.ceil(flat.numel() / MAX_QUANTILE_ELEMENTS)]
    return torch.quantile(flat, torch.tensor(QUANTILES, device=flat.device)).tolist()


class BNProbe:
    """StepProbe that samples every `every` steps (and step 1): per hidden layer the percentiles of the
    pre-activation (Linear output) and, with BN, of the BN output; the weight-gradient norm; and for
    feature 0 of each BN layer the batch mean / variance against the running mean / variance."""

    def __init__(self, every: int = 25) -> None:
        self.every = every
        self._lock = threading.Lock()
        self._records: list[dict] = []
        self._current: dict | None = None
        self._bn = False

    def attach(self, model: MLP) -> None:
        self._bn = model.batch_norm
        for i, block in enumerate(model.blocks):
            block[0].register_forward_hook(partial(self._hook, i, "pre"))
            if model.batch_norm:
                block[1].register_forward_hook(partial(self._hook, i, "post"))

    def before_step(self, step: int) -> None:
        self._current = {"step": step, "pre": {}, "post": {}, "batch": {}} if step == 1 or step % self.every == 0 else None

    def _hook(self, layer: int, kind: str, module: nn.Module, inputs, out: torch.Tensor) -> None:
        cur = self._current
        if cur is None or not module.training:  # evaluation passes are not training steps
            return
        with torch.no_grad():
            cur[kind][layer] = activation_percentiles(out)
            if kind == "pre" and self._bn:
                col = out[:, 0].float()  # bf16 under mixed precision
                cur["batch"][layer] = (col.mean().item(), col.var(unbiased=False).item())

    def after_backward(self, step: int, model: MLP) -> None:
        cur, self._current = self._current, None
        if cur is None:
            return
        n = len(model.blocks)
        rec = {"step": step, "pre": [cur["pre"][i] for i in range(n)],
               "grad": [b[0].weight.grad.norm().item() for b in model.blocks]}
        if self._bn:
            rec["post"] = [cur["post"][i] for i in range(n)]
            rec["bn"] = [[*cur["batch"][i], b[1].running_mean[0].item(), b[1].running_var[0].item()]
                         for i, b in enumerate(model.blocks)]  # batch mean, batch var, running mean, running var
        with self._lock:
            self._records.append(rec)

    def to_dict(self) -> dict:
        with self._lock:
            return {"every": self.every, "quantiles": list(QUANTILES), "batch_norm": self._bn,
                    "records": list(self._records)}


# --- starting twins and sweeps ----------------------------------------------------------------
def start_twins(store: RunStore, base: TrainConfig, seeds: list[int], probe_every: int = 25) -> str:
    """BN and no-BN runs for each seed, identical in everything else (same seed: same initial Linear
    weights and minibatch order). They run one after another, so each gets the whole CPU."""
    if not 1 <= len(seeds) <= 5:
        raise ValueError(f"seeds: choose 1 to 5 seeds per arm, got {len(seeds)}")
    group, prev = "twins-" + uuid.uuid4().hex[:6], None
    for seed in seeds:
        for bn in (True, False):
            cfg = replace(base, batch_norm=bn, seed=seed, double_softmax=False)
            run = store.start(cfg, name=f"{'BN' if bn else 'no-BN'} seed {seed} ({group})", allow_duplicate=True,
                              group=group, after=prev, probe=BNProbe(probe_every))
            prev = run.id
    return group


LR_SWEEP = (1e-3, 1e-2, 5e-2)


def start_lr_sweep(store: RunStore, base: TrainConfig, lrs: tuple[float, ...] = LR_SWEEP) -> str:
    group, prev = "lr-sweep-" + uuid.uuid4().hex[:6], None
    for lr in lrs:
        for bn in (True, False):
            cfg = replace(base, batch_norm=bn, lr=lr, double_softmax=False)
            prev = store.start(cfg, name=f"{'BN' if bn else 'no-BN'} lr {lr:g} ({group})", allow_duplicate=True,
                               group=group, after=prev).id
    return group


def seconds_per_step(store: RunStore, default: float = 0.002) -> float:
    """This machine's pace, from the newest run that finished an epoch (else a default)."""
    for r in store.list():
        s = r.snapshot
        if s.history and s.step:
            return sum(h.seconds for h in s.history) / s.step
    return default


def group_runs(store: RunStore, group: str) -> list[RunInfo]:
    return sorted((r for r in store.list() if r.group == group), key=lambda r: r.created)


# --- summaries ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArmSummary:
    runs: int
    final_acc: list[float]
    best_acc: list[float]
    seconds_per_epoch: float | None
    reach: dict[float, tuple[float | None, float | None, int]]  # threshold -> (mean epochs, mean seconds, runs that reached)

    @property
    def final_mean(self) -> float | None:
        return statistics.mean(self.final_acc) if self.final_acc else None

    @property
    def final_sd(self) -> float:
        return statistics.stdev(self.final_acc) if len(self.final_acc) > 1 else 0.0


def summarize_arm(snaps: list[RunSnapshot], thresholds: tuple[float, ...] = (0.97, 0.98)) -> ArmSummary:
    done = [s for s in snaps if s.history]
    reach = {}
    for t in thresholds:
        hits = []
        for s in done:
            for h in s.history:
                if h.test_acc >= t:
                    hits.append((h.epoch, sum(x.seconds for x in s.history[: h.epoch])))
                    break
        reach[t] = (statistics.mean(e for e, _ in hits) if hits else None,
                    statistics.mean(sec for _, sec in hits) if hits else None, len(hits))
    epochs = [h.seconds for s in done for h in s.history]
    return ArmSummary(len(snaps), [s.history[-1].test_acc for s in done], [s.best_test_acc for s in done],
                      statistics.mean(epochs) if epochs else None, reach)


def noise_verdict(bn: ArmSummary, plain: ArmSummary) -> str:
    """Plain words on whether the BN / no-BN difference in final test accuracy exceeds seed noise."""
    if bn.final_mean is None or plain.final_mean is None:
        return "No finished epoch in both arms yet."
    diff = bn.final_mean - plain.final_mean
    head = (f"Final test accuracy: BN {bn.final_mean:.2%} vs no-BN {plain.final_mean:.2%} "
            f"({diff * 100:+.2f} points, {len(bn.final_acc)} vs {len(plain.final_acc)} seed(s)).")
    if min(len(bn.final_acc), len(plain.final_acc)) < 2:
        return head + " With one seed per arm the seed-to-seed noise is unknown: train 2 or more seeds to judge."
    se = math.sqrt(bn.final_sd ** 2 / len(bn.final_acc) + plain.final_sd ** 2 / len(plain.final_acc))
    if abs(diff) <= 2 * se:
        return head + f" That is within seed-to-seed noise (2 standard errors = {2 * se * 100:.2f} points)."
    better = "BN" if diff > 0 else "no-BN"
    return head + f" {better} is ahead by more than seed-to-seed noise (2 standard errors = {2 * se * 100:.2f} points)."


# --- train mode vs eval mode ----------------------------------------------------------------------
@dataclass(frozen=True)
class ModeResult:
    batch_size: int
    eval_acc: float
    train_acc: float | None  # None when train mode cannot run at this batch size
    error: str | None


@torch.no_grad()
def train_vs_eval(model: MLP, dataset: str = "mnist", data_dir: str | None = None, n: int = 512,
                  batch_sizes: tuple[int, ...] = (1, 2, 8, 64)) -> list[ModeResult]:
    """The same n test images classified in eval mode (running statistics) and in train mode (statistics
    of each batch), at several batch sizes. Train mode runs on a copy: its running averages are not touched."""
    data = load_dataset(dataset, data_dir)
    x, y = normalize(data.test_x[:n]), data.test_y[:n]
    dev = next(model.parameters()).device
    x, y = x.to(dev), y.to(dev)
    model.eval()
    eval_acc = (model(x).argmax(1) == y).float().mean().item()  # eval mode: the same for every batch size
    trained = copy.deepcopy(model).train()
    out = []
    for bs in batch_sizes:
        correct, error = 0, None
        try:
            for i in range(0, n, bs):
                correct += int((trained(x[i:i + bs]).argmax(1) == y[i:i + bs]).sum())
        except (ValueError, RuntimeError) as e:  # BatchNorm1d refuses a batch of one in train mode
            error = str(e)
        out.append(ModeResult(bs, eval_acc, None if error else correct / n, error))
    return out


def bn_parameters(model: MLP) -> list[dict[str, np.ndarray]]:
    """Learned gamma and beta, running mean and variance of each BN layer."""
    return [{"gamma": b[1].weight.detach().cpu().numpy(), "beta": b[1].bias.detach().cpu().numpy(),
             "running_mean": b[1].running_mean.cpu().numpy(), "running_var": b[1].running_var.cpu().numpy()}
            for b in model.blocks if isinstance(b[1], nn.BatchNorm1d)]
