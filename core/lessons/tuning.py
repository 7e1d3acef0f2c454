"""The Tuning page's lessons as experiments: random vs grid, the right scale for a learning rate and for
Adam's β1, coarse to fine; the numbers each one shows, and how long a study will take on this machine.

Sample draws come from Optuna's own RandomSampler, the sampler the random studies use, so the histograms the
page shows are the distribution the studies really sample."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from core.engine.config import TrainConfig
from core.store.pace import Pace
from core.store.runs import RunStore
from core.tuning.space import Dimension, make_space
from core.tuning.study import StudySpec, retried_numbers, run_of

if TYPE_CHECKING:
    import optuna

LR_RANGE = (1e-4, 1.0)  # the course's example: uniform sampling spends ~90% of the budget above 0.1
BETA_RANGE = (0.9, 0.999)  # β1; sampled as 1 - β1 in [1e-3, 1e-1]
DEFAULT_BUDGET = dict(epochs=3, max_batches=100)  # a trial: 3 reports of 100 batches each


# --- sampling on a scale ---------------------------------------------------------------------------------
def draw(lo: float, hi: float, n: int, log: bool, seed: int = 0) -> np.ndarray:
    """n values from Optuna's RandomSampler over [lo, hi], uniform or log-uniform."""
    from optuna.distributions import FloatDistribution
    from optuna.samplers import RandomSampler

    sampler, dist = RandomSampler(seed=seed), FloatDistribution(lo, hi, log=log)
    # RandomSampler draws each value from its own generator; the study and trial arguments are not read.
    return np.array([sampler.sample_independent(None, None, "x", dist) for _ in range(n)])


def decades(lo: float, hi: float) -> list[tuple[float, float]]:
    """[lo, hi] cut at the powers of ten: (1e-4, 1) -> (1e-4, 1e-3), ..., (0.1, 1)."""
    edges = [lo] + [10.0 ** k for k in range(math.floor(math.log10(lo)) + 1, math.ceil(math.log10(hi)))] + [hi]
    return list(zip(edges[:-1], edges[1:]))


def decade_shares(values: Sequence[float], lo: float, hi: float) -> list[tuple[float, float, float]]:
    """(decade low, decade high, share of the values in it) for each decade of [lo, hi]."""
    v = np.asarray(values, dtype=float)
    out = []
    for i, (a, b) in enumerate(decades(lo, hi)):
        last = i == len(decades(lo, hi)) - 1
        inside = (v >= a) & ((v <= b) if last else (v < b))
        out.append((a, b, float(inside.mean()) if len(v) else 0.0))
    return out


def expected_decade_shares(lo: float, hi: float, log: bool) -> list[tuple[float, float, float]]:
    """What each decade should get: its width over the range's, in the values (uniform) or their logs."""
    f = np.log10 if log else (lambda x: x)
    return [(a, b, float((f(b) - f(a)) / (f(hi) - f(lo)))) for a, b in decades(lo, hi)]


# --- the lessons' studies --------------------------------------------------------------------------------
def _base(epochs: int, max_batches: int | None) -> TrainConfig:
    return TrainConfig(epochs=epochs, max_batches=max_batches)


def log_cell_centres(lo: float, hi: float, k: int) -> list[float]:
    """k values evenly spaced on a log scale, at the centres of k equal cells of [lo, hi] (not the edges)."""
    a, b = math.log10(lo), math.log10(hi)
    return [float(10 ** (a + (b - a) * (i + 0.5) / k)) for i in range(k)]


def grid_vs_random(epochs: int, max_batches: int | None, side: int = 3, group: str = "") -> dict[str, StudySpec]:
    """Same budget (side² trials) over the learning rate and Adam's ε, which barely matters: the grid tries
    `side` distinct learning rates, random search side²."""
    space = make_space(["lr", "eps"])
    n, base = side * side, _base(epochs, max_batches)
    grid = {d.name: log_cell_centres(d.lo, d.hi, side) for d in space}
    common = dict(base=base, space=space, n_trials=n, pruner="none", group=group)
    return {"grid": StudySpec(sampler="grid", grid=grid, lesson="grid", **common),
            "random": StudySpec(sampler="random", lesson="random", **common)}


def lr_scales(epochs: int, max_batches: int | None, n: int = 12, group: str = "") -> dict[str, StudySpec]:
    """The learning rate alone over [1e-4, 1], sampled uniformly and on a log scale."""
    lr = make_space(["lr"])[0]
    common = dict(base=_base(epochs, max_batches), n_trials=n, sampler="random", pruner="none", group=group)
    return {scale: StudySpec(space=(replace(lr, lo=LR_RANGE[0], hi=LR_RANGE[1], log=scale == "log"),),
                             lesson=f"lr-{scale}", **common) for scale in ("uniform", "log")}


def beta_scales(epochs: int, max_batches: int | None, n: int = 12, group: str = "") -> dict[str, StudySpec]:
    """Adam's β1 over [0.9, 0.999]: β1 uniformly, and 1 - β1 on a log scale."""
    one_minus = make_space(["one_minus_beta1"])[0]
    uniform = Dimension("beta1", "float", "beta1", lo=BETA_RANGE[0], hi=BETA_RANGE[1], label="Adam β1")
    common = dict(base=_base(epochs, max_batches), n_trials=n, sampler="random", pruner="none", group=group)
    return {"uniform": StudySpec(space=(uniform,), lesson="beta-uniform", **common),
            "log": StudySpec(space=(one_minus,), lesson="beta-log", **common)}


COARSE_PARAMS = ("lr", "one_minus_beta1")


def coarse(epochs: int, max_batches: int | None, n: int = 12, group: str = "") -> StudySpec:
    """A first random search over the learning rate and 1 - β1, both on a log scale."""
    return StudySpec(base=_base(epochs, max_batches), space=make_space(list(COARSE_PARAMS)), n_trials=n,
                     sampler="random", pruner="none", lesson="coarse", group=group)


def fine(coarse_spec: StudySpec, region: dict[str, tuple[float, float]], n: int = 12) -> StudySpec:
    """The same search inside `region` ({name: (lo, hi)}): more trials where the good ones were."""
    space = tuple(d.with_range(*region[d.name]) if d.name in region else d for d in coarse_spec.space)
    return replace(coarse_spec, space=space, n_trials=n, lesson="fine", seed=coarse_spec.seed + 1)


def propose_region(points: Sequence[tuple[dict[str, float], float]], space: Sequence[Dimension],
                   top_fraction: float = 0.3, pad: float = 0.25) -> dict[str, tuple[float, float]]:
    """The box around the best trials ((params, accuracy) pairs): the top `top_fraction` of them (at least 2),
    widened by `pad` of its span on each side (on a log scale for log parameters), inside the old range."""
    ranked = sorted(points, key=lambda p: p[1], reverse=True)
    best = ranked[: max(2, math.ceil(len(ranked) * top_fraction))]
    return box_around([p for p, _ in best], space, pad)


def box_around(params: Sequence[dict[str, float]], space: Sequence[Dimension],
               pad: float = 0.25) -> dict[str, tuple[float, float]]:
    """The smallest box holding these points, padded, clipped to each dimension's range."""
    region = {}
    for d in space:
        if d.kind == "categorical" or not params:
            continue
        f, g = (math.log10, lambda x: 10 ** x) if d.log else (float, float)
        vals = [f(p[d.name]) for p in params]
        lo, hi = min(vals), max(vals)
        width = max(hi - lo, (f(d.hi) - f(d.lo)) * 0.05)  # never a box of zero width
        lo, hi = lo - pad * width, hi + pad * width
        region[d.name] = (max(d.lo, g(lo)), min(d.hi, g(hi)))
    return region


# --- what a study has found ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    params: dict[str, Any]  # as sampled (1 - β1, the width factor)
    accuracy: float | None  # the final test accuracy; for a pruned trial the last one it reported
    epochs: int  # epochs it reported
    seconds: float | None  # training time of its run
    run_id: str | None
    note: str  # why it ended without a result that counts, if it did
    error: str = ""  # a failed run's status and message (a result: such settings fail)

    @property
    def counted(self) -> bool:
        return not self.note


def trial_rows(study: "optuna.Study", store: RunStore | None = None) -> list[TrialRow]:
    """The study's trials; `store`: where to read each run's training time (else the trial's wall time)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    rows = []
    for t in trials:
        acc = t.value if t.state == TrialState.COMPLETE else (
            t.intermediate_values[max(t.intermediate_values)]
            if t.state == TrialState.PRUNED and t.intermediate_values else None)
        note = t.user_attrs.get("uncounted", "")
        if t.state == TrialState.FAIL and t.number in retried:
            note = note or "its process stopped; run again"
        run_id, error = run_of(t), ""
        seconds = t.duration.total_seconds() if t.duration is not None else None
        if store is not None and run_id is not None:
            try:
                snap = store.get(run_id).snapshot
                seconds = snap.elapsed
                if t.state == TrialState.FAIL and not note:
                    error = f"run {snap.status}: {snap.error}"
            except KeyError:  # trained by another process: its runs folder is not read until a restart
                pass
        rows.append(TrialRow(t.number, t.state.name, dict(t.params), acc, len(t.intermediate_values), seconds,
                             run_id, note, error))
    return rows


def distinct_values(rows: Sequence[TrialRow], name: str) -> int:
    return len({r.params[name] for r in rows if name in r.params and r.counted})


def best_row(rows: Sequence[TrialRow]) -> TrialRow | None:
    done = [r for r in rows if r.state == "COMPLETE" and r.accuracy is not None]
    return max(done, key=lambda r: r.accuracy, default=None)


def spread_along(rows: Sequence[TrialRow], param: str) -> float | None:
    """How far the mean test accuracy moves across the values of `param`: the range of the means of the completed
    trials that share each value. On a grid every value is tried with each value of the other parameters, so this
    is the parameter's main effect; None with fewer than two values."""
    by: dict[float, list[float]] = {}
    for r in rows:
        if r.state == "COMPLETE" and r.accuracy is not None and param in r.params:
            by.setdefault(r.params[param], []).append(r.accuracy)
    if len(by) < 2:
        return None
    means = [statistics.fmean(v) for v in by.values()]
    return max(means) - min(means)


# --- random vs grid, repeated --------------------------------------------------------------------------------
def reseeded(spec: StudySpec, seed: int) -> StudySpec:
    """The study again with a new sampler seed AND a new training seed (initial weights, minibatch order): another
    draw of the whole experiment. With the training seed fixed the grid would replay the same 9 runs."""
    return replace(spec, seed=seed, base=replace(spec.base, seed=seed % 2 ** 31))


@dataclass(frozen=True)
class GvrResult:
    """One finished repetition of the random-vs-grid lesson: each search's best test accuracy."""
    group: str
    grid_best: float
    random_best: float
    grid_spread: tuple[float, float] | None = None  # (learning rate, spread of the grid's accuracies at it): noise
    grid_best_lr: float | None = None  # the learning rate of the grid's best trial

    @property
    def diff(self) -> float:
        return self.random_best - self.grid_best

    @property
    def winner(self) -> str:
        return "random" if self.diff > 0 else "grid" if self.diff < 0 else "tie"


def gvr_result(group: str, grid: Sequence[TrialRow], random: Sequence[TrialRow], n_trials: int) -> GvrResult | None:
    """The repetition's result once both searches have all their trials (a failed trial counts as a result, with
    no accuracy); None while either is short of its budget or any trial still runs."""
    for rows in (grid, random):
        ended = [r for r in rows if r.counted and r.state in ("COMPLETE", "PRUNED", "FAIL")]
        if len(ended) < n_trials or any(r.state in ("RUNNING", "WAITING") for r in rows):
            return None
    gb, rb = best_row(grid), best_row(random)
    if gb is None or rb is None:
        return None
    at_lr: dict[float, list[float]] = {}
    for r in grid:
        if r.state == "COMPLETE" and r.accuracy is not None and "lr" in r.params:
            at_lr.setdefault(r.params["lr"], []).append(r.accuracy)
    lr, accs = max(at_lr.items(), key=lambda kv: max(kv[1]))  # the grid's best learning rate, tried with several ε
    spread = (lr, max(accs) - min(accs)) if len(accs) > 1 else None
    return GvrResult(group, gb.accuracy, rb.accuracy, spread, gb.params.get("lr"))


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:  # z: the normal 97.5% point
    """95% Wilson score interval of a share k/n: honest about how little a few repetitions tell."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class GvrTally:
    results: tuple[GvrResult, ...]

    def count(self, winner: str) -> int:
        return sum(r.winner == winner for r in self.results)

    def words(self) -> str:
        n = len(self.results)
        if n == 0:
            return "No repetition has finished yet."
        k = self.count("random")
        lo, hi = wilson(k, n)
        diffs = [r.diff * 100 for r in self.results]
        text = (f"**Over {n} finished repetition{'s' if n > 1 else ''}, random search found the better learning rate "
                f"in {k}** (95% interval {lo:.0%}–{hi:.0%} of repetitions), the grid in {self.count('grid')}"
                + (f", a tie in {self.count('tie')}" if self.count("tie") else "")
                + f". Random's best minus the grid's: {statistics.fmean(diffs):+.2f} points on average, from "
                f"{min(diffs):+.2f} to {max(diffs):+.2f}.")
        lrs = [r.grid_best_lr for r in self.results if r.grid_best_lr is not None]
        if lrs:
            common = max(set(lrs), key=lrs.count)
            text += (f" The grid's best came from learning rate {common:.3g} in {lrs.count(common)} of {len(lrs)}: "
                     "where its three values fall decides how well it does.")
        noise = [r.grid_spread for r in self.results if r.grid_spread]
        if noise:
            lr, spread = noise[-1]
            text += (f" One search's winner is partly luck: in the newest repetition the grid's runs at learning rate "
                     f"{lr:.3g}, which differ only in ε, spread over {spread * 100:.2f} points.")
        if n < 5:
            text += " A few repetitions say little about how often: repeat the experiment below."
        return text


# --- how long it will take -------------------------------------------------------------------------------
def estimate_seconds(spec: StudySpec, pace: Pace, draws: int = 64) -> float:
    """Seconds for the whole budget, if no trial is pruned: the mean trial over draws from the space (the
    grid's points for a grid) times the number of trials."""
    if spec.sampler == "grid":
        import itertools

        combos = [dict(zip(spec.grid, vals)) for vals in itertools.product(*spec.grid.values())]
    else:
        samples = {d.name: _draw_param(d, draws, i) for i, d in enumerate(spec.space)}
        combos = [{k: v[i] for k, v in samples.items()} for i in range(draws)]
    per_trial = [pace.trial_seconds(spec.trial_config(p)) for p in combos]
    return spec.n_trials * float(np.mean(per_trial))


def _draw_param(d: Dimension, n: int, seed: int) -> list[Any]:
    from optuna.samplers import RandomSampler

    sampler, dist = RandomSampler(seed=seed), d.distribution()
    return [sampler.sample_independent(None, None, d.name, dist) for _ in range(n)]


def budget_words(spec: StudySpec) -> dict[str, float]:
    """What a trial's budget is, in numbers the page states: images seen, as a share of one pass."""
    from core.engine.data import dataset_spec, num_batches

    train = dataset_spec(spec.base.dataset).train_size
    batches = num_batches(train, spec.base.batch_size, spec.base.max_batches)
    images = spec.base.epochs * batches * spec.base.batch_size
    return {"epochs": spec.base.epochs, "batches": batches, "images": images, "passes": images / train,
            "train_size": train}
