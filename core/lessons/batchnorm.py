"""The BatchNorm lab: twin runs that differ only in BN, a probe that looks inside while they train,
train- vs eval-mode classification, and summaries that say when a difference is only seed noise."""
from __future__ import annotations

import copy
import math
import statistics
import threading
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Sequence

import numpy as np
import torch
from torch import nn

from core.engine import course
from core.engine.config import TrainConfig
from core.engine.data import load_dataset, normalize
from core.engine.models import MLP
from core.store.groups import LabKind
from core.store.runs import AdmissionError, RunInfo, RunStore
from core.store.scheduler import EVERYONE
from core.engine.snapshot import RunSnapshot

QUANTILES = (0.15, 0.50, 0.85)  # the percentiles of Ioffe & Szegedy (2015), figure 1
MAX_QUANTILE_ELEMENTS = 1 << 20  # torch.quantile refuses huge inputs; a strided sample is plenty
PROBED_UNITS = 8  # units 0..7 of each hidden layer are followed one by one (the paper follows one typical unit)
PROBE_VERSION = 2  # 1: records by position (before named records); read by read_probe all the same

Percentiles = tuple[float, float, float]  # 15th, 50th, 85th


def standard_normal_percentiles() -> list[float]:
    """QUANTILES of N(0, 1): where the percentiles of a standardised unit sit (about -1.04, 0, +1.04)."""
    return [statistics.NormalDist().inv_cdf(q) for q in QUANTILES]


def activation_percentiles(values: torch.Tensor) -> list[float]:
    """15th / 50th / 85th percentiles of all values of a (B, H) activation: every unit pooled."""
    flat = values.detach().float().flatten()
    if flat.numel() > MAX_QUANTILE_ELEMENTS:
        flat = flat[:: math.ceil(flat.numel() / MAX_QUANTILE_ELEMENTS)]
    return torch.quantile(flat, torch.tensor(QUANTILES, device=flat.device)).tolist()


def unit_percentiles(values: torch.Tensor, units: int = PROBED_UNITS) -> list[list[float]]:
    """Per unit, the 15th / 50th / 85th percentiles over the batch of the first `units` columns of a (B, H)
    activation: the distribution one unit sees, as in Ioffe & Szegedy's figure 1."""
    cols = values.detach().float()[:, :units]  # (B, units)
    q = torch.quantile(cols, torch.tensor(QUANTILES, device=cols.device), dim=0)  # (3, units)
    return q.T.tolist()


# --- the probe and its records -----------------------------------------------------------------
@dataclass(frozen=True)
class LayerSample:
    """One hidden layer at one sampled step. `*_units[u]` and the batch statistics are for unit u of the
    first PROBED_UNITS units; `pre` and `post` pool every unit of the layer."""
    grad_norm: float  # ‖∂L/∂W‖ of the layer's Linear weight
    pre: Percentiles  # Linear output (before BN), all units pooled
    pre_units: tuple[Percentiles, ...] = ()
    post: Percentiles | None = None  # BN output (before ReLU), all units pooled; None without BN
    post_units: tuple[Percentiles, ...] = ()
    batch_mean: tuple[float, ...] = ()  # what BN normalises this batch with
    # Unbiased (divide by B - 1): what PyTorch folds into running_var. BN itself divides by B when it
    # normalises the batch; the two differ by B / (B - 1), 64/63 at batch 64. Empty in version-1 records.
    batch_var: tuple[float, ...] = ()
    running_mean: tuple[float, ...] = ()  # after this step's update
    running_var: tuple[float, ...] = ()


@dataclass(frozen=True)
class ProbeRecord:
    step: int
    layers: tuple[LayerSample, ...]


@dataclass(frozen=True)
class ProbeData:
    every: int
    batch_norm: bool
    units: int  # how many units per layer were followed one by one (0 in old records)
    momentum: float | None  # the BN layers' running-average momentum (None without BN or in old records)
    records: tuple[ProbeRecord, ...]

    @property
    def steps(self) -> list[int]:
        return [r.step for r in self.records]

    def layer(self, i: int) -> list[LayerSample]:
        return [r.layers[i] for r in self.records]


def _tuples(v) -> tuple:
    return tuple(tuple(x) if isinstance(x, list) else x for x in v)


def _layer_from_dict(d: dict) -> LayerSample:
    return LayerSample(
        grad_norm=float(d["grad_norm"]), pre=tuple(d["pre"]), pre_units=_tuples(d.get("pre_units", ())),
        post=tuple(d["post"]) if d.get("post") is not None else None, post_units=_tuples(d.get("post_units", ())),
        batch_mean=tuple(d.get("batch_mean", ())), batch_var=tuple(d.get("batch_var", ())),
        running_mean=tuple(d.get("running_mean", ())), running_var=tuple(d.get("running_var", ())))


def _layers_from_v1(r: dict) -> tuple[LayerSample, ...]:
    """Version 1 kept lists by position: rec["bn"][layer] = [batch mean, biased batch var, running mean,
    running var] of unit 0. The biased variance is dropped rather than shown against running_var."""
    out = []
    for i, pre in enumerate(r["pre"]):
        bn = r["bn"][i] if "bn" in r else None
        out.append(LayerSample(grad_norm=float(r["grad"][i]), pre=tuple(pre),
                               post=tuple(r["post"][i]) if "post" in r else None,
                               batch_mean=(bn[0],) if bn else (), running_mean=(bn[2],) if bn else (), running_var=(bn[3],) if bn else ()))
    return tuple(out)


def read_probe(raw: dict | None) -> ProbeData | None:
    """What RunStore.probes returns (the probe's to_dict, live or from probes.json) as named records.
    None when there is nothing, or nothing readable, to show."""
    if not raw or not raw.get("records"):
        return None
    try:
        if raw.get("version", 1) == 1:
            records = tuple(ProbeRecord(int(r["step"]), _layers_from_v1(r)) for r in raw["records"])
        else:
            records = tuple(ProbeRecord(int(r["step"]), tuple(_layer_from_dict(l) for l in r["layers"]))
                            for r in raw["records"])
    except (KeyError, TypeError, ValueError, IndexError):
        return None  # a damaged probes.json: the lab shows everything else
    momentum = raw.get("momentum")
    return ProbeData(int(raw.get("every", 0)), bool(raw.get("batch_norm")), int(raw.get("units", 0)),
                     float(momentum) if momentum is not None else None, records)


class BNProbe:
    """StepProbe that samples every `every` steps (and step 1). Per hidden layer: the percentiles of the
    pre-activation (Linear output) and, with BN, of the BN output, pooled over all units and for each of the
    first PROBED_UNITS units; the weight-gradient norm; with BN, for those units the batch mean and unbiased
    variance against the running mean and variance."""

    def __init__(self, every: int = 25, units: int = PROBED_UNITS) -> None:
        self.every, self.units = every, units
        self._lock = threading.Lock()
        self._records: list[dict] = []
        self._current: dict | None = None
        self._bn = False
        self._momentum: float | None = None

    def attach(self, model: MLP) -> None:
        self._bn = model.batch_norm
        self._momentum = model.blocks[0][1].momentum if model.batch_norm else None
        for i, block in enumerate(model.blocks):
            block[0].register_forward_hook(partial(self._hook, i, "pre"))
            if model.batch_norm:
                block[1].register_forward_hook(partial(self._hook, i, "post"))

    def wants(self, step: int) -> bool:
        return step == 1 or step % self.every == 0

    def before_step(self, step: int) -> None:
        self._current = {"pre": {}, "post": {}} if self.wants(step) else None

    def _hook(self, layer: int, kind: str, module: nn.Module, inputs, out: torch.Tensor) -> None:
        cur = self._current
        if cur is None or not module.training:  # evaluation passes are not training steps
            return
        with torch.no_grad():
            sample = {kind: activation_percentiles(out), f"{kind}_units": unit_percentiles(out, self.units)}
            if kind == "pre" and self._bn:
                cols = out[:, : self.units].float()  # bf16 under mixed precision; BN computes in float32
                sample["batch_mean"] = cols.mean(0).tolist()
                sample["batch_var"] = cols.var(0, unbiased=True).tolist()  # what running_var averages
            cur[kind][layer] = sample

    def after_backward(self, step: int, model: MLP) -> None:
        cur, self._current = self._current, None
        if cur is None:
            return
        layers = []
        for i, block in enumerate(model.blocks):
            fields = {**cur["pre"][i], **cur["post"].get(i, {}), "grad_norm": block[0].weight.grad.norm().item()}
            if self._bn:  # running statistics after this step's forward pass updated them
                fields["running_mean"] = block[1].running_mean[: self.units].tolist()
                fields["running_var"] = block[1].running_var[: self.units].tolist()
            layers.append(asdict(_layer_from_dict(fields)))
        with self._lock:
            self._records.append({"step": step, "layers": layers})

    def to_dict(self) -> dict:
        with self._lock:
            return {"version": PROBE_VERSION, "every": self.every, "quantiles": list(QUANTILES),
                    "batch_norm": self._bn, "units": self.units, "momentum": self._momentum,
                    "records": list(self._records)}


# --- the lab's run groups ------------------------------------------------------------------------
def lab_groups(store: RunStore, kind: LabKind) -> list[str]:
    """The groups of this kind in the store, newest first."""
    newest: dict[str, float] = {}
    for r in store.list():
        if kind.owns(r.group):
            newest[r.group] = max(newest.get(r.group, -math.inf), r.created)
    return sorted(newest, key=lambda g: newest[g], reverse=True)


def group_runs(store: RunStore, group: str) -> list[RunInfo]:
    return sorted((r for r in store.list() if r.group == group), key=lambda r: r.created)


# --- starting twins and sweeps ----------------------------------------------------------------
MIN_SEEDS_FOR_VERDICT = 3  # a paired test on fewer differences says too little (see noise_verdict)
DEFAULT_SEEDS = MIN_SEEDS_FOR_VERDICT  # the page's default, so that a first twin set can get a verdict
MAX_SEEDS = 5


def start_twins(store: RunStore, base: TrainConfig, seeds: list[int], probe_every: int = 25,
                owner: str = EVERYONE) -> str:
    """BN and no-BN runs for each seed, identical in everything else (same seed: same initial Linear
    weights and minibatch order). They run one after another, so each gets the whole CPU. `owner`: the learner
    who started them (class mode). AdmissionError, with no run of the set left queued, when the scheduler refuses
    one of them."""
    if not 1 <= len(seeds) <= MAX_SEEDS:
        raise ValueError(f"seeds: choose 1 to {MAX_SEEDS} seeds per arm, got {len(seeds)}")
    group = LabKind.TWINS.new_id()
    _start_chain(store, group, owner, [(replace(base, batch_norm=bn, seed=seed, double_softmax=False),
                                        f"{'BN' if bn else 'no-BN'} seed {seed} ({group})", BNProbe(probe_every))
                                       for seed in seeds for bn in (True, False)])
    return group


LR_SWEEP = (1e-3, 1e-2, 5e-2)


def start_lr_sweep(store: RunStore, base: TrainConfig, lrs: tuple[float, ...] = LR_SWEEP, owner: str = EVERYONE) -> str:
    group = LabKind.LR_SWEEP.new_id()
    _start_chain(store, group, owner, [(replace(base, batch_norm=bn, lr=lr, double_softmax=False),
                                        f"{'BN' if bn else 'no-BN'} lr {lr:g} ({group})", None)
                                       for lr in lrs for bn in (True, False)])
    return group


def _start_chain(store: RunStore, group: str, owner: str, runs: list[tuple[TrainConfig, str, BNProbe | None]]) -> None:
    """Queue `runs` as one set, each after the one before; all or none: a refused run takes back the ones queued."""
    started: list[str] = []
    try:
        for cfg, name, probe in runs:
            started.append(store.start(cfg, name=name, allow_duplicate=True, group=group, owner=owner, probe=probe,
                                       after=started[-1] if started else None).id)
    except AdmissionError:
        for run_id in reversed(started):  # all but the first wait behind it; the first may have begun a moment ago
            store.stop(run_id)
            store.trainer(run_id).join(30)
            try:
                store.delete(run_id)
            except RuntimeError:
                pass  # still ending after 30 s: it stays, listed as stopped
        raise


# --- summaries ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArmSummary:
    runs: int
    final_acc: list[float]
    best_acc: list[float]  # each run's highest test accuracy over its epochs: picked on the test set
    seconds_per_epoch: float | None
    reach: dict[float, tuple[float | None, float | None, int]]  # threshold -> (mean epochs, mean seconds, runs that reached)

    @property
    def final_mean(self) -> float | None:
        return statistics.mean(self.final_acc) if self.final_acc else None

    @property
    def final_sd(self) -> float:
        return statistics.stdev(self.final_acc) if len(self.final_acc) > 1 else 0.0

    @property
    def best_mean(self) -> float | None:
        return statistics.mean(self.best_acc) if self.best_acc else None


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


# --- is the difference more than seed noise? -----------------------------------------------------
ALPHA = 0.05  # two-sided: how often the verdict may call a difference real when there is none


@dataclass(frozen=True)
class SeedPair:
    """The twins of one seed, compared at the last epoch both completed."""
    seed: int
    epoch: int
    bn_acc: float
    plain_acc: float

    @property
    def diff(self) -> float:
        return self.bn_acc - self.plain_acc


def seed_pairs(runs: Sequence[RunInfo]) -> list[SeedPair]:
    """One pair per seed whose BN and no-BN runs have both ended with at least one epoch. Twins share the
    seed's initial weights and batch order, so the comparison is within a seed: a paired design."""
    by_seed: dict[int, dict[bool, RunSnapshot]] = {}
    for r in runs:
        by_seed.setdefault(r.config.seed, {})[r.config.batch_norm] = r.snapshot
    pairs = []
    for seed, arms in sorted(by_seed.items()):
        bn, plain = arms.get(True), arms.get(False)
        if bn and plain and bn.history and plain.history and not bn.live and not plain.live:
            e = min(len(bn.history), len(plain.history))
            pairs.append(SeedPair(seed, e, bn.history[e - 1].test_acc, plain.history[e - 1].test_acc))
    return pairs


@dataclass(frozen=True)
class PairedTest:
    n: int
    mean: float  # mean of the per-seed differences
    t: float
    p: float  # two-sided
    ci95: tuple[float, float]  # 95% confidence interval of the mean difference


def paired_t_test(diffs: Sequence[float]) -> PairedTest:
    """Student's t-test on per-seed differences (n - 1 degrees of freedom): exact when the differences are
    normal, and unlike a normal critical value it knows how little 2-5 seeds tell about the spread."""
    from scipy import stats  # imported here: only the lab's verdict needs it

    d = np.asarray(diffs, dtype=np.float64)
    n = len(d)
    if n < 2:
        raise ValueError(f"diffs: a paired t-test needs at least 2 differences, got {n}")
    mean, se = float(d.mean()), float(d.std(ddof=1)) / math.sqrt(n)
    if se == 0:  # every seed gave the same difference
        t = 0.0 if mean == 0 else math.copysign(math.inf, mean)
        p = 1.0 if mean == 0 else 0.0
    else:
        t = mean / se
        p = float(2 * stats.t.sf(abs(t), n - 1))
    half = float(stats.t.ppf(0.975, n - 1)) * se
    return PairedTest(n, mean, t, p, (mean - half, mean + half))


def _points(v: float) -> str:
    return f"{v * 100:+.2f}"


def noise_verdict(pairs: Sequence[SeedPair], alpha: float = ALPHA) -> str:
    """Plain words on whether BN and no-BN differ by more than seed-to-seed noise in final test accuracy:
    a paired t-test on the per-seed differences, and no verdict below MIN_SEEDS_FOR_VERDICT seeds."""
    if not pairs:
        return "No pair of twins (BN and no-BN with the same seed) has ended with a completed epoch yet."
    bn = statistics.mean(p.bn_acc for p in pairs)
    plain = statistics.mean(p.plain_acc for p in pairs)
    epochs = sorted({p.epoch for p in pairs})
    at = f"after epoch {epochs[0]}" if len(epochs) == 1 else "at the last epoch both twins completed"
    head = (f"Test accuracy {at}: BN {bn:.2%} vs no-BN {plain:.2%}, mean over {len(pairs)} seed(s). "
            "BN − no-BN per seed: " + ", ".join(f"seed {p.seed}: {_points(p.diff)}" for p in pairs) + " points.")
    if len(pairs) < MIN_SEEDS_FOR_VERDICT:
        return head + (f" No verdict yet: telling a difference from seed-to-seed noise takes at least "
                       f"{MIN_SEEDS_FOR_VERDICT} seeds per arm ({len(pairs)} here), because the spread of the "
                       "differences can only be estimated from the differences themselves.")
    t = paired_t_test([p.diff for p in pairs])
    stat = (f"paired t-test over {t.n} seeds: p = {t.p:.3f}; 95% confidence interval of the mean difference "
            f"{_points(t.ci95[0])} … {_points(t.ci95[1])} points")
    if t.p >= alpha:
        return head + f" Not distinguishable from seed-to-seed noise ({stat})."
    better = "BN" if t.mean > 0 else "no-BN"
    return head + f" {better} is ahead by more than seed-to-seed noise explains ({stat})."


# --- train mode vs eval mode ----------------------------------------------------------------------
@dataclass(frozen=True)
class ModeResult:
    batch_size: int
    eval_acc: float
    train_acc: float | None  # None when train mode cannot run at this batch size
    error: str | None  # PyTorch's message when it cannot
    by_hand_acc: float | None = None  # train mode's normalisation computed by hand where PyTorch refuses
    answers: tuple[int, ...] = ()  # ...and the distinct digits it answers then

    @property
    def lesson(self) -> str | None:
        """What PyTorch's refusal means, in the lab's terms, with what train mode would have done."""
        if self.error is None:
            return None
        what = ""
        if self.by_hand_acc is not None:
            same = (f"the same answer, {self.answers[0]}, for every image" if len(self.answers) == 1
                    else f"only {len(self.answers)} different answers")
            what = (f" Computed by hand, train mode at batch size {self.batch_size} would give {same}: "
                    f"{self.by_hand_acc:.2%} right.")
        return (f"At batch size {self.batch_size} train mode cannot run: BatchNorm normalises each unit with the "
                "mean and variance of the current batch, and one image is a batch with no statistics: each unit's "
                "mean is its own value and its variance 0, so every normalised value is 0 and the layer outputs β, "
                f"whatever the image. PyTorch refuses it (\"{self.error}\").{what}")


def forward_with_batch_stats(model: MLP, x: torch.Tensor) -> torch.Tensor:
    """The MLP in train mode's arithmetic, by hand: each BN normalises with the batch's own mean and (biased)
    variance, then scales by γ and shifts by β. Equal to PyTorch's train-mode forward where PyTorch runs it, and
    also defined for a batch of one, which PyTorch refuses. Running averages are not touched."""
    h = x.flatten(1)
    for block in model.blocks:
        for layer in block:
            if isinstance(layer, nn.BatchNorm1d):
                mean, var = h.mean(0), h.var(0, unbiased=False)
                h = (h - mean) / torch.sqrt(var + layer.eps) * layer.weight + layer.bias
            else:
                h = layer(h)
    z = model.out(h)
    return torch.softmax(z, dim=1) if model.double_softmax else z


@torch.no_grad()
def train_vs_eval(model: MLP, dataset: str = course.DATASET, data_dir: str | None = None, n: int = 512,
                  batch_sizes: tuple[int, ...] = (1, 2, 8, 64)) -> list[ModeResult]:
    """The same n test images classified in eval mode (running statistics) and in train mode (statistics
    of each batch), at several batch sizes. Train mode runs on a copy: its running averages are not touched.
    Where PyTorch refuses a batch size, train mode's arithmetic is computed by hand instead."""
    data = load_dataset(dataset, data_dir)
    x, y = normalize(data.test_x[:n], data.spec.mean, data.spec.std), data.test_y[:n]
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
        if error is None:
            out.append(ModeResult(bs, eval_acc, correct / n, None))
            continue
        pred = torch.cat([forward_with_batch_stats(model, x[i:i + bs]).argmax(1) for i in range(0, n, bs)])
        out.append(ModeResult(bs, eval_acc, None, error, float((pred == y).float().mean()),
                              tuple(sorted(int(d) for d in pred.unique()))))
    return out


def bn_parameters(model: MLP) -> list[dict[str, np.ndarray]]:
    """Learned gamma and beta, running mean and variance of each BN layer."""
    return [{"gamma": b[1].weight.detach().cpu().numpy(), "beta": b[1].bias.detach().cpu().numpy(),
             "running_mean": b[1].running_mean.cpu().numpy(), "running_var": b[1].running_var.cpu().numpy()}
            for b in model.blocks if isinstance(b[1], nn.BatchNorm1d)]
