"""The BatchNorm lab's paper mode: Ioffe & Szegedy (2015), section 4.1 and figure 1, rerun on this machine.

The paper's MNIST experiment: 3 fully connected hidden layers of 100 sigmoid units, weights from a small random
Gaussian, a 10-way softmax with cross-entropy, 50,000 steps of 60 examples, with and without BN after each hidden
layer. Figure 1: (a) test accuracy against steps; (b, c) for one typical unit of the last hidden layer, the 15th,
50th and 85th percentiles of its sigmoid's input over training, without BN and with BN.

The pair trains as the lab's twins do (same seed: the same initial weights and minibatch order) through the run
store, each run with a PaperProbe; the claims of the paper are checked against what the pair measured."""
from __future__ import annotations

import copy
import math
import statistics
import threading
import time
from dataclasses import dataclass, replace

import torch

from core.engine.config import TrainConfig
from core.engine.data import dataset_spec, load_dataset, normalize, num_batches
from core.engine.models import MLP
from core.engine.torch_loop import evaluate
from core.lessons.batchnorm import QUANTILES, group_runs, unit_percentiles
from core.store.groups import LabKind
from core.store.runs import RunInfo, RunStore

PAPER_STEPS = 50_000
STEP_CHOICES = (1_000, 5_000, 10_000, 25_000, PAPER_STEPS)  # what the page offers; the paper's is the last
PAPER_BATCH = 60
# What the paper leaves open, chosen here (the page says why): plain SGD, learning rate, σ of the Gaussian.
PAPER_LR = 1.0
PAPER_STD = 0.01
LR_CHOICES = (0.1, 0.5, 1.0, 2.0)  # the candidates measured for PAPER_LR (benchmarks/README.md, paper mode)
RECORDS = 100  # probe records per run (plus the first): every total // RECORDS steps
FIXED_IMAGES = 1_000  # the fixed batch the percentiles are taken over: the first 1,000 test images
MAX_UNITS = 128  # units of the last hidden layer followed one by one (all of the paper's 100)
NETWORKS = ("paper", "course")  # the paper's sigmoid network, or the course's network for contrast

# The verdicts' rules, fixed before measuring (the page states them). On the sigmoid's input axis a shift of
# 0.5 moves σ by up to 0.12 (σ' ≤ 1/4): an eighth of its range.
MEDIAN_SHIFT = 0.5  # "changes in its mean": the median moves at least this far
SPREAD_FACTOR = 1.5  # "changes in its variance": the 15th-85th spread grows or shrinks by at least this factor
MUCH_MORE_STABLE = 2.0  # "much more stable": with BN it changes at most 1/this as much as without


def steps_config(base: TrainConfig, steps: int) -> TrainConfig:
    """`base` trained for exactly `steps` steps: whole epochs, or one capped epoch for fewer steps than one."""
    per_epoch = num_batches(dataset_spec(base.dataset).train_size, base.batch_size)
    if steps <= per_epoch:
        return replace(base, epochs=1, max_batches=steps)
    if steps % per_epoch:
        raise ValueError(f"steps: a whole number of epochs of {per_epoch:,} steps, or fewer than one; got {steps:,}")
    return replace(base, epochs=steps // per_epoch, max_batches=None)


def pair_configs(network: str = "paper", steps: int = PAPER_STEPS, lr: float | None = None,
                 seed: int = 0) -> tuple[TrainConfig, TrainConfig]:
    """(BN, no-BN) configs, identical but for BN. "paper": section 4.1's network with the choices above;
    "course": the course's network (ReLU, PyTorch's init, Adam 1e-3) at the paper's batch and steps."""
    if network == "paper":
        base = TrainConfig(hidden=(100, 100, 100), activation="sigmoid", weight_init="gaussian", init_std=PAPER_STD,
                           optimizer="plain-sgd", lr=PAPER_LR if lr is None else lr, batch_size=PAPER_BATCH, seed=seed)
    elif network == "course":
        base = TrainConfig(batch_size=PAPER_BATCH, seed=seed, **({} if lr is None else {"lr": lr}))
    else:
        raise ValueError(f"network: choose one of {', '.join(NETWORKS)}; got {network!r}")
    base = steps_config(base, steps)
    return replace(base, batch_norm=True), replace(base, batch_norm=False)


def total_steps(config: TrainConfig) -> int:
    return config.epochs * num_batches(dataset_spec(config.dataset).train_size, config.batch_size, config.max_batches)


# --- what the probe measures ----------------------------------------------------------------------------
def _short(rows: list[list[float]]) -> list[list[float]]:
    return [[float(f"{v:.6g}") for v in row] for row in rows]  # 6 significant digits: a third of the JSON


def _last_activation_input(model: MLP, x: torch.Tensor) -> torch.Tensor:
    seen: list[torch.Tensor] = []
    hook = model.blocks[-1][-1].register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    try:
        model(x)
    finally:
        hook.remove()
    return seen[0]


@torch.no_grad()
def activation_inputs(model: MLP, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The input of the last hidden layer's activation (the sigmoid, in the paper's network) for a batch `x`,
    (B, H), with the model in eval mode: for a BN model, normalised with its running averages, as it classifies.
    With BN also (second) the same input as the training network computes it (Ioffe & Szegedy's N_BN^tr): every
    BN layer normalising with this batch's own statistics, on a copy, so the running averages stay as they were.
    None without BN (train and eval mode compute the same there)."""
    was_training = model.training
    model.eval()
    try:
        classified = _last_activation_input(model, x)
    finally:
        model.train(was_training)
    if not model.batch_norm:
        return classified, None
    return classified, _last_activation_input(copy.deepcopy(model).train(), x)


class PaperProbe:
    """StepProbe for the paper mode. Before step 1 and then every `every` steps, and before the last step, it
    records, after n steps taken: per unit of the last hidden layer the 15th / 50th / 85th percentiles of the
    activation's input over a fixed batch of test images (`activation_inputs`), and the test accuracy on the
    whole test set. A probe looks before a step, so the last record is after total - 1 steps; the run's own
    evaluation after its last step gives the final accuracy."""

    def __init__(self, total: int, every: int, data_dir=None, dataset: str = "mnist", fixed: int = FIXED_IMAGES,
                 units: int = MAX_UNITS) -> None:
        if every < 1 or total < 1:
            raise ValueError(f"every, total: at least 1 step, got {every}, {total}")
        self.total, self.every, self.fixed, self.units = total, every, fixed, units
        self.data_dir, self.dataset = data_dir, dataset
        self._lock = threading.Lock()
        self._records: list[dict] = []
        self._model: MLP | None = None
        self.seconds = 0.0  # spent recording: its share of the run's time is the probe's cost

    def attach(self, model: MLP) -> None:
        data = load_dataset(self.dataset, self.data_dir)  # loaded once per process: the trainer's own copy
        dev = next(model.parameters()).device
        self._model = model
        self._x = normalize(data.test_x[: self.fixed], data.spec.mean, data.spec.std).to(dev)  # (fixed, 784)
        self._test = data.test_x.to(dev), data.test_y.to(dev), data.spec.mean, data.spec.std

    def wants(self, step: int) -> bool:
        return (step - 1) % self.every == 0 or step == self.total

    def before_step(self, step: int) -> None:
        if not self.wants(step):
            return
        t0 = time.perf_counter()
        model = self._model
        act_in, batch = activation_inputs(model, self._x)
        record = {"step": step - 1, "units": _short(unit_percentiles(act_in, self.units))}
        if batch is not None:
            record["units_batch"] = _short(unit_percentiles(batch, self.units))
        test_x, test_y, mean, std = self._test
        record["test_acc"] = evaluate(model, test_x, test_y, mean=mean, std=std)[1]
        with self._lock:
            self._records.append(record)
            self.seconds += time.perf_counter() - t0
        if step == self.total:  # the last record: the model and the batch need not outlive the run
            self._model = self._x = self._test = None

    def after_backward(self, step: int, model: MLP) -> None:
        pass

    def to_dict(self) -> dict:
        with self._lock:
            return {"kind": "paper", "version": 1, "every": self.every, "total": self.total, "fixed": self.fixed,
                    "quantiles": list(QUANTILES), "seconds": round(self.seconds, 3), "records": list(self._records)}


# --- reading it back ------------------------------------------------------------------------------------
Percentiles = tuple[float, float, float]


@dataclass(frozen=True)
class PaperTrace:
    """One run's probe records. units[i][u]: unit u's percentiles after steps[i] steps, as the network classifies;
    units_batch: the same with BN's batch statistics (the training network), empty without BN."""
    total: int
    every: int
    steps: tuple[int, ...]
    test_acc: tuple[float, ...]
    units: tuple[tuple[Percentiles, ...], ...]
    units_batch: tuple[tuple[Percentiles, ...], ...] = ()
    seconds: float = 0.0  # what recording took, of the run's training time

    @property
    def n_units(self) -> int:
        return len(self.units[0])

    def sigmoid_input(self, batch_stats: bool = True) -> tuple[tuple[Percentiles, ...], ...]:
        """What the paper plots: the training network's input to the activation (batch statistics with BN)."""
        return self.units_batch if batch_stats and self.units_batch else self.units


def read_paper_probe(raw: dict | None) -> PaperTrace | None:
    """A PaperProbe's to_dict (live, or from probes.json) as a PaperTrace; None when empty or unreadable."""
    if not raw or raw.get("kind") != "paper" or not raw.get("records"):
        return None
    try:
        recs = raw["records"]
        units = tuple(tuple(tuple(float(v) for v in p) for p in r["units"]) for r in recs)
        batch = tuple(tuple(tuple(float(v) for v in p) for p in r["units_batch"]) for r in recs) \
            if "units_batch" in recs[0] else ()
        trace = PaperTrace(int(raw["total"]), int(raw["every"]), tuple(int(r["step"]) for r in recs),
                           tuple(float(r["test_acc"]) for r in recs), units, batch, float(raw.get("seconds", 0.0)))
    except (KeyError, TypeError, ValueError):
        return None  # a damaged probes.json: the page says there is nothing to show
    if any(len(u) != trace.n_units or any(len(p) != 3 for p in u) for u in units + batch):
        return None
    return trace


# --- the pair ------------------------------------------------------------------------------------------
def start_paper_pair(store: RunStore, network: str = "paper", steps: int = PAPER_STEPS, lr: float | None = None,
                     seed: int = 0, records: int | None = None, owner: str = "") -> str:
    """The BN and the no-BN run of `pair_configs`, one after the other (each gets the whole CPU), each with a
    PaperProbe recording `records` (RECORDS) times; returns the group id. Same seed: same initial weights, same
    batches."""
    group, prev = LabKind.PAPER.new_id(), None
    for cfg in pair_configs(network, steps, lr, seed):
        total = total_steps(cfg)
        probe = PaperProbe(total, max(1, total // (records or RECORDS)), store.data_dir, cfg.dataset)
        name = f"{'BN' if cfg.batch_norm else 'no-BN'} {network} network ({group})"
        prev = store.start(cfg, name=name, allow_duplicate=True, group=group, after=prev, probe=probe,
                           tags={"paper_mode": network}, owner=owner).id
    return group


@dataclass(frozen=True)
class PaperPair:
    """A paper-mode pair as the page reads it: each arm's trace (None before its first record) and its test
    accuracy after the last step (None until the run finished)."""
    network: str
    total: int
    traces: dict[bool, PaperTrace | None]  # by batch_norm
    final: dict[bool, float | None]
    live: bool

    @property
    def activation(self) -> str:
        return "sigmoid" if self.network == "paper" else "ReLU"


def read_pair(store: RunStore, group: str) -> PaperPair:
    runs: list[RunInfo] = group_runs(store, group)
    by_bn = {r.config.batch_norm: r for r in runs}
    any_run = runs[0]
    traces, final = {}, {}
    for bn in (True, False):
        r = by_bn.get(bn)
        traces[bn] = read_paper_probe(store.probes(r.id)) if r else None
        done = r is not None and r.snapshot.status == "finished" and r.snapshot.history
        final[bn] = r.snapshot.history[-1].test_acc if done else None
    network = (any_run.tags or {}).get("paper_mode", "paper")
    return PaperPair(network, total_steps(any_run.config), traces, final, any(r.live for r in runs))


def accuracy_curve(trace: PaperTrace | None, final: float | None) -> tuple[list[int], list[float]]:
    """(steps, test accuracy): the probe's records, then the run's own evaluation after its last step."""
    if trace is None:
        return [], []
    steps, acc = list(trace.steps), list(trace.test_acc)
    if final is not None and steps[-1] < trace.total:
        steps.append(trace.total)
        acc.append(final)
    return steps, acc


def accuracy_at(trace: PaperTrace | None, final: float | None, step: int) -> float | None:
    steps, acc = accuracy_curve(trace, final)
    return acc[steps.index(step)] if step in steps else None


def checkpoints(total: int) -> tuple[int, int, int]:
    """Where the closing note reads the accuracy: 10k, 25k and 50k of the paper's 50,000 steps."""
    return total // 5, total // 2, total


# --- drift of one unit, and which unit is typical ----------------------------------------------------------
@dataclass(frozen=True)
class Drift:
    """How one unit's percentiles moved from the first record to the last."""
    first: Percentiles
    last: Percentiles

    @property
    def median_shift(self) -> float:
        return self.last[1] - self.first[1]

    @property
    def spreads(self) -> tuple[float, float]:
        """85th − 15th percentile, first and last."""
        return self.first[2] - self.first[0], self.last[2] - self.last[0]

    @property
    def spread_ratio(self) -> float:
        """Last spread / first: above 1 it widened."""
        first, last = self.spreads
        return last / max(first, 1e-12)

    @property
    def spread_change(self) -> float:
        """How much the spread changed, either way, as a factor ≥ 1."""
        r = self.spread_ratio
        return max(r, 1 / r) if r > 0 else math.inf


def drift(trace: PaperTrace, unit: int, batch_stats: bool = True) -> Drift:
    series = trace.sigmoid_input(batch_stats)
    return Drift(series[0][unit], series[-1][unit])


def typical_unit(trace: PaperTrace) -> int:
    """The unit whose median moved by the layer's median amount (the paper shows "one typical" unit): the
    median of |median shift| over the units, taken without BN (the claims are about how much it moves there)."""
    shifts = [abs(drift(trace, u).median_shift) for u in range(trace.n_units)]
    middle = statistics.median_low(shifts)
    return shifts.index(middle)


# --- the paper's claims, checked ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    panel: str  # "a", "b" or "c": which panel of figure 1 the claim reads
    claim: str  # what the paper says, paraphrased
    rule: str  # how this page decides it
    measured: str  # the numbers of this pair
    held: bool | None  # None: not measured yet
    units: tuple[int, int] | None = None  # (units of the layer for which it holds, units of the layer)


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.2%}"


def _held_in(plain: PaperTrace, bn: PaperTrace, test) -> tuple[int, int]:
    n = min(plain.n_units, bn.n_units)
    return sum(bool(test(drift(plain, u), drift(bn, u))) for u in range(n)), n


def paper_verdicts(pair: PaperPair, unit: int) -> list[Verdict]:
    """The paper's qualitative claims about figure 1, each decided from this pair's numbers (for `unit` of the
    last hidden layer; `units` says for how many units of the layer the same verdict holds)."""
    plain, bn = pair.traces[False], pair.traces[True]
    early, _, end = checkpoints(pair.total)
    act = pair.activation
    out = []
    a_bn, a_plain = accuracy_at(bn, pair.final[True], early), accuracy_at(plain, pair.final[False], early)
    out.append(Verdict("a", "BN helps the network train faster", f"BN's test accuracy after {early:,} steps (a fifth "
                       "of the run) is higher than the baseline's", f"BN {_pct(a_bn)}, without BN {_pct(a_plain)}",
                       None if a_bn is None or a_plain is None else a_bn > a_plain))
    f_bn, f_plain = pair.final[True], pair.final[False]
    out.append(Verdict("a", "BN reaches the higher test accuracy", f"BN's test accuracy after all {end:,} steps is "
                       "higher than the baseline's", f"BN {_pct(f_bn)}, without BN {_pct(f_plain)}",
                       None if f_bn is None or f_plain is None else f_bn > f_plain))
    if plain is None or bn is None or unit >= min(plain.n_units, bn.n_units):
        return out + [Verdict(p, c, r, "–", None) for p, c, r in _DRIFT_CLAIMS]
    d_plain, d_bn = drift(plain, unit), drift(bn, unit)
    tests = [lambda p, b: abs(p.median_shift) >= MEDIAN_SHIFT,
             lambda p, b: p.spread_change >= SPREAD_FACTOR,
             lambda p, b: abs(b.median_shift) * MUCH_MORE_STABLE <= abs(p.median_shift),
             lambda p, b: math.log(b.spread_change) * MUCH_MORE_STABLE <= math.log(p.spread_change)]
    measured = [f"without BN the median moved {d_plain.median_shift:+.3f}",
                f"without BN the spread went {_spread(d_plain)}",
                f"the median moved {d_bn.median_shift:+.3f} with BN, {d_plain.median_shift:+.3f} without",
                f"the spread went {_spread(d_bn)} with BN, {_spread(d_plain)} without"]
    for (panel, claim, rule), test, m in zip(_DRIFT_CLAIMS, tests, measured):
        out.append(Verdict(panel, claim.format(act=act), rule, m, bool(test(d_plain, d_bn)),
                           _held_in(plain, bn, test)))
    return out


def _spread(d: Drift) -> str:
    first, last = d.spreads
    r = d.spread_ratio
    return f"{first:.3g} → {last:.3g} (×{r:,.0f})" if r >= 100 else f"{first:.3g} → {last:.3g} (×{r:.3g})"


_DRIFT_CLAIMS = (
    ("b", "Without BN the distribution of the {act}'s input changes a lot over training in its mean",
     f"the unit's median moves by at least {MEDIAN_SHIFT:g} from the first record to the last"),
    ("b", "… and in its variance",
     f"its spread (85th − 15th percentile) grows or shrinks by a factor of at least {SPREAD_FACTOR:g}"),
    ("c", "With BN the distribution is much more stable: its mean",
     f"with BN the median moves at most 1/{MUCH_MORE_STABLE:g} as far as without"),
    ("c", "… and its variance",
     f"on a log scale the spread changes (either way) at most 1/{MUCH_MORE_STABLE:g} as much with BN as without"),
)


def numbers_rows(pair: PaperPair, unit: int) -> list[dict[str, str]]:
    """The closing note's table: accuracy at the checkpoints, and the unit's percentiles first → last."""
    rows = []
    for bn in (False, True):
        trace, row = pair.traces[bn], {"network": "with BN" if bn else "without BN"}
        for c in checkpoints(pair.total):
            row[f"test acc @ {c:,}"] = _pct(accuracy_at(trace, pair.final[bn], c))
        if trace is not None and unit < trace.n_units:
            d = drift(trace, unit)
            for name, i in (("15th", 0), ("50th", 1), ("85th", 2)):
                row[f"{name} first → last"] = f"{d.first[i]:+.3f} → {d.last[i]:+.3f}"
            if bn:
                e = drift(trace, unit, batch_stats=False)
                row["median moved (eval mode)"] = f"{e.median_shift:+.3f}"
        row.setdefault("median moved (eval mode)", "–")
        rows.append(row)
    return rows
