"""Optimizers by name: each entry builds one from the model's parameters and the run's settings.

Adding one is an entry here (and a test): the Train page, the CLI and the runs table list it from this
registry, and `uses` tells them which of TrainConfig's optimizer fields it reads.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

import torch


class Optimizer(Protocol):
    def zero_grad(self) -> None: ...
    def step(self) -> None: ...


class OptimizerSettings(Protocol):
    """What optimizers read of a run's settings (a TrainConfig)."""
    optimizer: str
    lr: float
    beta1: float
    beta2: float
    eps: float
    momentum: float


@dataclass(frozen=True)
class OptimizerSpec:
    name: str  # the run setting's value
    label: str
    uses: tuple[str, ...]  # TrainConfig fields it reads besides lr
    build: Callable[[list[torch.nn.Parameter], OptimizerSettings], Optimizer]


OPTIMIZERS: dict[str, OptimizerSpec] = {}


def register_optimizer(spec: OptimizerSpec) -> OptimizerSpec:
    OPTIMIZERS[spec.name] = spec
    return spec


def build_optimizer(params: Iterable[torch.nn.Parameter], config: OptimizerSettings) -> Optimizer:
    return OPTIMIZERS[config.optimizer].build(list(params), config)


class FusedAdam:
    """Adam exactly as torch.optim.Adam(fused=True) computes it, in one kernel call per step. torch.optim's
    bookkeeping around that kernel (parameter groups, per-parameter state and step counters) costs 40-60 µs
    a step here (benchmarks/bench_step.py), 4-5% of a 1.1 ms training step. This keeps one step counter for
    all parameters, which is the same number because every parameter gets a gradient at every step. Falls
    back to torch.optim.Adam where the fused kernel does not exist."""

    def __init__(self, params, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params, self.lr, self.betas, self.eps = list(params), lr, betas, eps
        self._kernel = getattr(torch, "_fused_adam_", None)
        if self._kernel is None:
            self._opt = torch.optim.Adam(self.params, lr=lr, betas=betas, eps=eps)
            return
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self._step = torch.zeros((), dtype=torch.float32, device=self.params[0].device)
        self._steps = [self._step] * len(self.params)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        if self._kernel is None:
            return self._opt.step()
        grads = [p.grad for p in self.params]
        if any(g is None for g in grads):
            raise RuntimeError("FusedAdam needs a gradient for every parameter")
        self._step += 1
        self._kernel(self.params, grads, self.exp_avg, self.exp_avg_sq, [], self._steps, amsgrad=False, lr=self.lr,
                     beta1=self.betas[0], beta2=self.betas[1], weight_decay=0.0, eps=self.eps, maximize=False,
                     grad_scale=None, found_inf=None)


class PlainSGD:
    """w <- w - lr * g for every parameter in one call, as torch.optim.SGD (no momentum, no weight decay) computes
    it (the same bits: tests/test_bn_paper.py), without torch.optim's per-step bookkeeping (parameter groups,
    profiler records, compile guards): a step of the paper mode's small network takes 0.84-0.86x as long with it
    (benchmarks/bench_step.py)."""

    def __init__(self, params, lr: float) -> None:
        self.params, self.lr = list(params), lr

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        grads = [p.grad for p in self.params]
        if any(g is None for g in grads):
            raise RuntimeError("PlainSGD needs a gradient for every parameter")
        torch._foreach_add_(self.params, grads, alpha=-self.lr)


register_optimizer(OptimizerSpec(
    "adam", "Adam", ("beta1", "beta2", "eps"),
    lambda params, c: FusedAdam(params, c.lr, (c.beta1, c.beta2), c.eps)))
register_optimizer(OptimizerSpec(
    "sgd", "SGD with momentum", ("momentum",),
    lambda params, c: torch.optim.SGD(params, lr=c.lr, momentum=c.momentum)))
register_optimizer(OptimizerSpec(  # w <- w - lr * g: Ioffe & Szegedy's MNIST experiment names no optimizer
    "plain-sgd", "Plain SGD (no momentum)", (),
    lambda params, c: PlainSGD(params, c.lr)))
register_optimizer(OptimizerSpec(
    "rmsprop", "RMSprop", ("momentum", "eps"),
    lambda params, c: torch.optim.RMSprop(params, lr=c.lr, momentum=c.momentum, eps=c.eps)))
