"""The search space: which TrainConfig fields a study varies, over which range, on which scale.

Built from TrainConfig's field metadata (`config_options()`): every field whose Option says `tunable=True` (a
hyperparameter, not the experiment's budget, data, seed, arithmetic or framework) gets a dimension from its kind and
range, so a field the config gains is searchable with no code here once its metadata opts in, and never by
accident. Where the course says how to sample a value, that wins:

- the learning rate on a log scale (each decade the same share of the budget);
- a decay rate such as Adam's β1 as 1 - β on a log scale: 1/(1 - β) is the number of steps it averages,
  0.9 -> about 10, 0.999 -> about 1000, so the interesting part is near 1;
- the hidden layers' width as one scale factor on the course's sizes (512, 256, 128, 32).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from core.engine import config as C

if TYPE_CHECKING:
    import optuna

# Decay rates are sampled as 1 - value on a log scale; (lo, hi) of 1 - value.
ONE_MINUS = {"beta1": (1e-3, 1e-1), "beta2": (1e-4, 1e-2), "momentum": (1e-3, 1e-1)}

# The course's ranges where they are narrower than what TrainConfig accepts.
COURSE = {
    "lr": dict(kind="float", lo=1e-4, hi=1e-1, log=True),
    "batch_size": dict(kind="categorical", choices=(32, 64, 128, 256)),
    "eps": dict(kind="float", lo=1e-10, hi=1e-6, log=True),
}
WIDTH = (0.25, 2.0)  # scale factor on the hidden sizes, log scale

# What a study varies unless told otherwise: the course's "tune these" list.
DEFAULT_SPACE = ("lr", "one_minus_beta1", "batch_size", "batch_norm", "width")


@dataclass(frozen=True)
class Dimension:
    """One searched parameter. `name` is the Optuna parameter; `field` the TrainConfig field it sets."""
    name: str
    kind: str  # "float", "int", "categorical"
    field: str
    transform: str = "identity"  # "identity", "one_minus" (field = 1 - value), "width" (hidden = sizes x value)
    lo: float | None = None
    hi: float | None = None
    log: bool = False
    choices: tuple | None = None
    label: str = ""

    def distribution(self) -> "optuna.distributions.BaseDistribution":
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "categorical":
            return CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return IntDistribution(int(self.lo), int(self.hi), log=self.log)
        return FloatDistribution(self.lo, self.hi, log=self.log)

    def suggest(self, trial: "optuna.trial.BaseTrial") -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.lo), int(self.hi), log=self.log)
        return trial.suggest_float(self.name, self.lo, self.hi, log=self.log)

    def field_value(self, value: Any, base: Any) -> Any:
        """The TrainConfig value this parameter value means."""
        if self.transform == "one_minus":
            return 1.0 - value
        if self.transform == "width":
            return tuple(max(1, round(h * value)) for h in base.hidden)
        return value

    def with_range(self, lo: float, hi: float) -> "Dimension":
        """The same dimension over a narrower range (coarse to fine)."""
        if self.kind == "categorical":
            raise ValueError(f"{self.name}: a categorical parameter has no range")
        if not (self.lo <= lo < hi <= self.hi):
            raise ValueError(f"{self.name}: a range inside {self.lo:g}..{self.hi:g} is needed, got {lo:g}..{hi:g}")
        return replace(self, lo=lo, hi=hi)

    def describe(self) -> str:
        if self.kind == "categorical":
            return f"{self.name} in {{{', '.join(map(str, self.choices))}}}"
        return f"{self.name} in [{self.lo:g}, {self.hi:g}]" + (" (log scale)" if self.log else "")

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("name", "kind", "field", "transform", "lo", "hi", "log", "label")}
        d["choices"] = list(self.choices) if self.choices is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Dimension":
        return cls(**{**d, "choices": tuple(d["choices"]) if d.get("choices") is not None else None})


def _from_option(name: str, opt: C.Option) -> Dimension | None:
    """A field's dimension from its metadata, the course's advice applied; None for what cannot be searched."""
    if name in ONE_MINUS:
        lo, hi = ONE_MINUS[name]
        return Dimension(f"one_minus_{name}", "float", name, "one_minus", lo, hi, True, label=f"1 - {opt.label}")
    if opt.kind == "sizes":
        return Dimension("width", "float", name, "width", WIDTH[0], WIDTH[1], True,
                         label=f"{opt.label}: scale factor")
    if name in COURSE:
        return Dimension(name, field=name, label=opt.label, **COURSE[name])
    if opt.kind == "bool":
        return Dimension(name, "categorical", name, choices=(False, True), label=opt.label)
    if opt.kind == "choice":
        return Dimension(name, "categorical", name, choices=tuple(opt.choices()), label=opt.label)
    if opt.kind in ("int", "float") and opt.lo is not None and opt.hi is not None:
        log = opt.log and opt.lo > 0
        return Dimension(name, opt.kind, name, lo=opt.lo, hi=opt.hi, log=log, label=opt.label)
    return None


def tunable_dimensions() -> dict[str, Dimension]:
    """Every hyperparameter TrainConfig has now, by Optuna parameter name, in field order."""
    dims = (_from_option(name, opt) for name, _, opt in C.config_options() if opt.tunable)
    return {d.name: d for d in dims if d is not None}


def make_space(names: tuple[str, ...] | list[str] = DEFAULT_SPACE,
               ranges: dict[str, tuple[float, float]] | None = None) -> tuple[Dimension, ...]:
    """The dimensions called `names`, with optional narrower (lo, hi) ranges; ValueError naming unknown ones."""
    known = tunable_dimensions()
    if twice := sorted({n for n in names if list(names).count(n) > 1}):
        raise ValueError(f"search space: {', '.join(twice)} named more than once")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"search space: unknown parameter(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    dims = [known[n] for n in names]
    for n, (lo, hi) in (ranges or {}).items():
        i = list(names).index(n)
        dims[i] = dims[i].with_range(lo, hi)
    return tuple(dims)


def apply_params(base: Any, space: tuple[Dimension, ...], params: dict[str, Any]) -> Any:
    """The TrainConfig a trial's parameters describe (checked: out-of-range values raise ValueError)."""
    changes = {d.field: d.field_value(params[d.name], base) for d in space if d.name in params}
    return replace(base, **changes)


def shown_params(space: tuple[Dimension, ...], params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as the learner reads them: β1 itself next to 1 - β1."""
    out: dict[str, Any] = {}
    for d in space:
        if d.name not in params:
            continue
        v = params[d.name]
        out[d.name] = v
        if d.transform == "one_minus":
            out[d.field] = 1.0 - v
    return out
