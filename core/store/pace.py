"""How long runs take on this machine, from the epochs its runs have already timed, else from a few training
steps it timed.

An epoch's seconds are training steps plus one evaluation of the test set, so they are not proportional to the
steps: an epoch of 150 batches costs about a quarter of one of 938 here, not a sixth. The estimate fits
seconds = evaluation + steps x seconds-per-step to the timed epochs of runs of the same network, batch size and
framework, and says what it rests on.

Before this machine has timed a run like the one asked about, the estimate rests on its measured pace (`PROBE`:
a few training steps of the course network at two batch sizes and one evaluation, timed once per process in a
thread of its own, about half a second once the data is loaded; every page with the data starts it). Only
until that measurement is there does it fall back on constants measured on the development machine, and it says
that this is a first guess (the constants are the idle development machine's: on a loaded machine a step took
3.7x as long)."""
from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Sequence

from core.engine.config import TrainConfig
from core.engine.data import dataset_spec, is_loaded, num_batches
from core.store.runs import RunInfo

RUN_OVERHEAD = 0.1  # s per run outside its epochs (thread, model, files): 0.10-0.11 s measured on the dev VM
DEFAULT_STEP = 0.0015  # s per training step of the course network at batch 64, on the idle dev VM: a first guess
DEFAULT_EVAL = 0.3  # s to evaluate the 10,000 test images, idem
LOAD_SECONDS = 3.0  # the first run of a process imports torchvision and reads the dataset: 3.3-4.7 s here, loaded
RECENT = 60  # newest timed epochs used: the machine's speed drifts


@dataclass(frozen=True)
class Estimate:
    seconds: float
    basis: str  # what it rests on, for the page: "from 12 timed epochs of runs like these on this machine"
    first_guess: bool = False  # from another machine's pace: nothing has been timed on this one yet

    def describe(self) -> str:
        s = self.seconds
        return f"about {s:.0f} s" if s < 90 else f"about {s / 60:.1f} min"


# --- this machine's pace, measured -------------------------------------------------------------------------
def weights(config: TrainConfig) -> int:
    """Multiply-adds per image: what a step's time grows with."""
    spec = dataset_spec(config.dataset)
    sizes = (spec.input_size, *config.hidden, spec.num_classes)
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


@dataclass(frozen=True)
class Pace:
    """This machine's speed for the course network (measured): a training step costs `step_fixed` +
    `per_sample` x batch size seconds, a pass over the 10,000 test images `eval_seconds`; scaled by the
    number of weights for other widths. `start` is a run's own start-up (thread, files). `steps`: how many
    training steps were timed."""
    step_fixed: float
    per_sample: float
    eval_seconds: float
    start: float = 0.05
    steps: int = 0
    bn_factor: float = 1.0  # a BN step's time over a no-BN one's, measured at batch 64

    def epoch_seconds(self, config: TrainConfig) -> float:
        """Training steps and one evaluation; without the robust preset's augmentation, which is not timed."""
        w = weights(config) / weights(TrainConfig())
        step = self.step_fixed + self.per_sample * config.batch_size * w
        step *= self.bn_factor if config.batch_norm else 1
        return steps_per_epoch(config) * step + self.eval_seconds * w

    def trial_seconds(self, config: TrainConfig) -> float:
        return config.epochs * self.epoch_seconds(config) + self.start


def measure_pace(data_dir: str | None = None, steps: int = 12) -> Pace:
    """Time a few training steps at two batch sizes and one evaluation (about half a second). Runs in a thread
    of its own, which then ends: a long-lived thread that has run torch slows later training."""
    out: dict[str, object] = {}

    def work() -> None:
        try:
            out["pace"] = _measure(data_dir, steps)
        except BaseException as e:  # handed to the caller's thread
            out["error"] = e

    t = threading.Thread(target=work, name="pace")
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["pace"]


def _measure(data_dir: str | None, steps: int) -> Pace:
    import torch

    from core.engine import cpu
    from core.engine.data import iterate_batches, load_dataset
    from core.engine.models import build_model
    from core.engine.optimizers import build_optimizer
    from core.engine.torch_loop import evaluate, make_step

    torch.set_flush_denormal(True)  # as the trainer does
    cpu.use_base_threads()
    config = TrainConfig()
    data = load_dataset(config.dataset, data_dir)
    per_step = {}
    for bn, bs in ((False, 32), (False, 256), (True, 64)):
        model = build_model(replace(config, batch_norm=bn))
        step = make_step(model, build_optimizer(model.parameters(), config), config.precision)  # a run's own step
        batches = iterate_batches(data.train_x, data.train_y, bs, torch.Generator().manual_seed(0), steps + 2)
        for i, (xb, yb) in enumerate(batches):
            if i == 2:  # two warm-up steps
                t0 = time.perf_counter()
            step(xb, yb)
        per_step[bn, bs] = (time.perf_counter() - t0) / steps
    t0 = time.perf_counter()
    evaluate(model, data.test_x, data.test_y)
    eval_seconds = time.perf_counter() - t0
    per_sample = max(0.0, (per_step[False, 256] - per_step[False, 32]) / (256 - 32))
    fixed = max(0.0, per_step[False, 32] - 32 * per_sample)
    plain64 = fixed + 64 * per_sample
    return Pace(fixed, per_sample, eval_seconds, steps=3 * steps,
                bn_factor=per_step[True, 64] / plain64 if plain64 > 0 else 1.0)


class PaceProbe:
    """This machine's pace, measured once per process in the background (pages never wait for it, except the
    Tuning lab, whose every estimate rests on it). A failed measurement (no data yet) is tried again on the
    next start()."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.pace: Pace | None = None
        self.error: BaseException | None = None

    def start(self, data_dir: str | None = None) -> None:
        with self._lock:
            if self.pace is not None or (self._thread is not None and self._thread.is_alive()):
                return
            self.error = None
            # Not a daemon: a process that exits while torch works in a daemon thread aborts (C++ terminate);
            # this one ends within seconds on its own, so the exit waits for it.
            self._thread = threading.Thread(target=self._run, args=(data_dir,), name="pace-probe", daemon=False)
            self._thread.start()

    def _run(self, data_dir: str | None) -> None:
        try:
            self.pace = measure_pace(data_dir)
        except Exception as e:  # the data is not there (yet), or damaged: the pages say so on their own
            self.error = e

    @property
    def measuring(self) -> bool:
        t = self._thread
        return self.pace is None and t is not None and t.is_alive()

    def wait(self, data_dir: str | None = None) -> Pace:
        """The pace, measured now if it is not yet; raises what the measurement raised."""
        self.start(data_dir)
        t = self._thread
        if t is not None:
            t.join()
        if self.pace is None:
            raise self.error or RuntimeError("the pace could not be measured")
        return self.pace


PROBE = PaceProbe()  # one per process: every page's estimates share it


# --- estimates from timed epochs -----------------------------------------------------------------------------
def steps_per_epoch(config: TrainConfig) -> int:
    return num_batches(dataset_spec(config.dataset).train_size, config.batch_size, config.max_batches)


def _alike(a: TrainConfig, b: TrainConfig) -> bool:
    """Runs whose steps cost about the same: same data, network, batch, optimizer and framework, with or without the
    robust preset's augmentation alike (BN adds ~15%, ignored)."""
    return ((a.dataset, a.hidden, a.batch_size, a.optimizer, a.framework, a.robust)
            == (b.dataset, b.hidden, b.batch_size, b.optimizer, b.framework, b.robust))


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


def _untimed(cfg: TrainConfig, pace: Pace | None) -> tuple[float, str, bool]:
    """Seconds of one epoch of a config no run here has timed: from the measured pace, else a first guess."""
    note = " (a Keras run at PyTorch's pace, without compiling its step)" if cfg.framework == "keras" else ""
    if cfg.robust:  # its augmentation is not in the timed steps: what is said is a lower bound
        note += " (at least: the robust preset's augmentation is not timed yet)"
    if pace is not None:
        return pace.epoch_seconds(cfg), f"{pace.steps} steps timed here, no run like these yet{note}", False
    return DEFAULT_EVAL + DEFAULT_STEP * steps_per_epoch(cfg), "a first guess: nothing timed here yet" + note, True


def estimate(runs: Sequence[RunInfo], configs: Sequence[TrainConfig], data_dir=None,
             prefer: Callable[[RunInfo], bool] | None = None, pace: Pace | None = None,
             probe: PaceProbe | None = PROBE) -> Estimate:
    """Seconds for `configs` run one after another, from the timed epochs of `runs` (newest first), else from
    `pace` (by default the probe's measurement, once there), plus the dataset's loading when this process has not
    loaded it yet. `prefer`: the runs to measure from first, when they are enough (the BatchNorm lab's twins
    carry a probe that costs them time other runs do not spend)."""
    pace = pace or (probe.pace if probe is not None else None)
    measuring = probe is not None and probe.measuring  # the probe is loading the data now, not the run
    total, bases, notes, guess = 0.0, set(), [], False
    for name in sorted({c.dataset for c in configs}):
        if not is_loaded(name, data_dir) and not measuring:
            total += LOAD_SECONDS
            notes.append(f"with about {LOAD_SECONDS:.0f} s to load {name} first")
    preferred = [r for r in runs if prefer(r)] if prefer else []
    for cfg in configs:
        n = steps_per_epoch(cfg)
        found = (_per_epoch(_epochs(preferred, cfg), n) if preferred else None) or _per_epoch(_epochs(runs, cfg), n)
        if found:
            per_epoch, basis = found
        else:
            per_epoch, basis, first = _untimed(cfg, pace)
            guess = guess or first
        total += cfg.epochs * per_epoch + RUN_OVERHEAD
        bases.add(basis)
    return Estimate(total, "; ".join(sorted(bases) + notes) if bases else "nothing to run", guess)
