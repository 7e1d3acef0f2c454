"""How long runs take on this machine, from the epochs its runs have already timed.

An epoch's seconds are training steps plus one evaluation of the test set, so they are not proportional to the
steps: an epoch of 150 batches costs about a quarter of one of 938 here, not a sixth. The estimate fits
seconds = evaluation + steps x seconds-per-step to the timed epochs of runs of the same network and batch size,
and says what it rests on."""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from core.engine.config import TrainConfig
from core.engine.data import dataset_spec, is_loaded, num_batches
from core.store.runs import RunInfo

RUN_OVERHEAD = 0.1  # s per run outside its epochs (thread, model, files): 0.10-0.11 s measured on the dev VM
DEFAULT_STEP = 0.0015  # s per training step of the course network at batch 64, when nothing has been timed here
DEFAULT_EVAL = 0.3  # s to evaluate the 10,000 test images, idem
LOAD_SECONDS = 3.0  # the first run of a process imports torchvision and reads the dataset: 3.3-4.7 s here, loaded
RECENT = 60  # newest timed epochs used: the machine's speed drifts


@dataclass(frozen=True)
class Estimate:
    seconds: float
    basis: str  # what it rests on, for the page: "from 12 timed epochs of runs like these on this machine"

    def describe(self) -> str:
        s = self.seconds
        return f"about {s:.0f} s" if s < 90 else f"about {s / 60:.1f} min"


def steps_per_epoch(config: TrainConfig) -> int:
    return num_batches(dataset_spec(config.dataset).train_size, config.batch_size, config.max_batches)


def _alike(a: TrainConfig, b: TrainConfig) -> bool:
    """Runs whose steps cost about the same: same data, network, batch and optimizer (BN adds ~15%, ignored)."""
    return (a.dataset, a.hidden, a.batch_size, a.optimizer) == (b.dataset, b.hidden, b.batch_size, b.optimizer)


def _fit(points: Sequence[tuple[int, float]]) -> tuple[float, float] | None:
    """(evaluation seconds, seconds per step) by least squares over (steps, seconds) of timed epochs; None when
    the epochs all had the same number of steps, or the fit makes no physical sense (noise)."""
    xs = [float(n) for n, _ in points]
    if len(set(xs)) < 2:
        return None
    mx, my = statistics.fmean(xs), statistics.fmean(s for _, s in points)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (s - my) for x, (_, s) in zip(xs, points)) / sxx
    a = my - b * mx
    return (a, b) if a >= 0 and b > 0 else None


def _epochs(runs: Iterable[RunInfo], config: TrainConfig) -> list[tuple[int, float]]:
    """(steps, seconds) of the newest timed epochs of ended runs like `config`."""
    points = []
    for r in runs:  # newest first
        if r.live or not _alike(r.config, config):
            continue
        n = r.snapshot.steps_per_epoch or steps_per_epoch(r.config)
        points += [(n, h.seconds) for h in r.snapshot.history if h.seconds > 0]
        if len(points) >= RECENT:
            break
    return points[:RECENT]


def _per_epoch(points: Sequence[tuple[int, float]], n: int) -> tuple[float, str] | None:
    """Seconds of an n-step epoch from timed epochs, and what that rests on; None without any."""
    same = [s for k, s in points if k == n]
    if len(same) >= 2:
        return statistics.median(same), f"{len(same)} timed epochs of this size"
    if fit := _fit(points):
        return fit[0] + fit[1] * n, f"{len(points)} timed epochs of runs like these"
    if points:  # one size (or a fit that noise made senseless): scale the newest size as the defaults split it
        k = points[0][0]
        at_k = statistics.median(s for m, s in points if m == k)
        return at_k * (DEFAULT_EVAL + DEFAULT_STEP * n) / (DEFAULT_EVAL + DEFAULT_STEP * k), \
            f"{sum(m == k for m, _ in points)} timed epochs of {k}-step runs"
    return None


def estimate(runs: Sequence[RunInfo], configs: Sequence[TrainConfig], data_dir=None,
             prefer: Callable[[RunInfo], bool] | None = None) -> Estimate:
    """Seconds for `configs` run one after another, from the timed epochs of `runs` (newest first), plus the
    dataset's loading when this process has not loaded it yet. `prefer`: the runs to measure from first, when
    they are enough (the BatchNorm lab's twins carry a probe that costs them time other runs do not spend)."""
    total, bases, notes = 0.0, set(), []
    for name in sorted({c.dataset for c in configs}):
        if not is_loaded(name, data_dir):
            total += LOAD_SECONDS
            notes.append(f"with about {LOAD_SECONDS:.0f} s to load {name} first")
    preferred = [r for r in runs if prefer(r)] if prefer else []
    for cfg in configs:
        n = steps_per_epoch(cfg)
        found = (_per_epoch(_epochs(preferred, cfg), n) if preferred else None) or _per_epoch(_epochs(runs, cfg), n)
        per_epoch, basis = found or (DEFAULT_EVAL + DEFAULT_STEP * n, "no timed run like these here yet: a rough guess")
        total += cfg.epochs * per_epoch + RUN_OVERHEAD
        bases.add(basis)
    return Estimate(total, "; ".join(sorted(bases) + notes) if bases else "nothing to run")
