"""TrainConfig: the one description of a run.

Each field carries its default, its allowed values, its label and its help text (an `Option`). The
command line's flags (`add_config_arguments`), the Train page's widgets (ui/config_form.py) and the runs
table (`config_columns`) are generated from the fields, so a new run option is one field here plus its use
in the trainer. The module-level helpers look TrainConfig up when called, so a test can swap in a class
with an extra field and see it everywhere.
"""
from __future__ import annotations

import argparse
import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable

from core.engine import course
from core.engine.data import DATASETS, dataset_spec
from core.engine.optimizers import OPTIMIZERS

MAX_BATCH_SIZE = 60_000
# Memory one run may need, at most (MemoryEstimate): a laptop with 8 GB keeps the browser, the dashboard and
# a few runs. It allows the course network at every batch size up to the whole training set, and one hidden
# layer of 50,000 units; it refuses 100,000 (1.3 GB, 31 s for two batches here) and beyond.
MEMORY_BUDGET = 1 << 30
PRECISIONS = ("auto", "fp32", "bf16")
ACTIVATIONS = ("relu", "sigmoid", "tanh")  # hidden activations (core/engine/models.py maps them to modules)
WEIGHT_INITS = ("default", "gaussian")  # default: PyTorch's Linear init, Xavier on the output layer (the course)
MAX_TEXT = 1000  # characters of one typed-in value
FRAMEWORKS = ("pytorch", "keras")
# What a Keras run takes from PyTorch instead of Keras' own defaults (core/engine/keras_model.py).
KERAS_MATCHABLE = ("init", "bn_momentum", "bn_eps", "adam_eps", "logits")
KERAS_DEFAULTS = ("keras", "pytorch") + tuple(f"pytorch-but-{m}" for m in KERAS_MATCHABLE)
_INT = re.compile(r"[0-9]+")  # ASCII digits only: no '1_000', no other scripts' digits, no sign
_FLOAT = re.compile(r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?")  # no nan, inf, '_' or sign
_SIZES = re.compile(r"[0-9]+(?:\s*,\s*[0-9]+)*")  # '512, 256,128': commas between whole numbers, nothing empty


@dataclass(frozen=True)
class Option:
    """How one TrainConfig field is shown, typed in and checked."""
    label: str
    help: str
    kind: str  # "choice", "bool", "int", "float", "sizes" (tuple of whole numbers), "optional_int" (None = all)
    choices: Callable[[], tuple[str, ...]] | None = None  # for "choice": read when asked (registries grow)
    lo: float | None = None  # inclusive range for numbers (each size, for "sizes")
    hi: float | None = None
    log: bool = False  # a float better chosen on a log scale
    flag: str | None = None  # command-line flag, when not --field-name
    column: str | None = None  # heading in the runs table, when not the label
    choice_label: Callable[[str], str] | None = None  # how a choice reads on the page
    applies: Callable[[dict[str, Any]], bool] | None = None  # shown only when it matters for the other values
    # How the value reads in a run's label (TrainConfig.label): the text, "" to leave it out. Without it the field
    # appears as name=value when it differs from its default, so a new field is in the label with no code of its own.
    short: Callable[[Any], str] | None = None
    tunable: bool = False  # a hyperparameter a tuning study may vary (core/tuning/space.py); opt-in

    def check(self, name: str, value: Any) -> None:
        """ValueError naming the field when `value` is not allowed."""
        bounds = f"from {self.lo:g} to {self.hi:g}" if self.lo is not None and self.hi is not None else ""
        if self.kind == "choice":
            allowed = self.choices()
            if value not in allowed:
                raise ValueError(f"{name}: choose one of {', '.join(allowed)}; got {_shown(value)}")
        elif self.kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{name}: must be true or false, got {_shown(value)}")
        elif self.kind in ("int", "optional_int"):
            if value is None and self.kind == "optional_int":
                return
            if not _is_int(value) or not self.lo <= value <= self.hi:
                raise ValueError(f"{name}: must be a whole number {bounds}, got {_shown(value)}")
        elif self.kind == "float":
            if not _is_real(value) or not self.lo <= value <= self.hi:
                raise ValueError(f"{name}: must be a number {bounds}, got {_shown(value)}")
        elif self.kind == "sizes":
            if not isinstance(value, tuple) or not 1 <= len(value) <= 10 or \
                    not all(_is_int(v) and self.lo <= v <= self.hi for v in value):
                raise ValueError(f"{name}: must be 1 to 10 whole numbers, each {bounds}; got {_shown(value)}")

    def parse(self, name: str, text: str) -> Any:
        """Typed-in text -> value (checked), accepting exactly what the help text documents."""
        t = str(text).strip()
        if len(t) > MAX_TEXT:  # also keeps int() below its own digit limit, whose message names no field
            raise ValueError(f"{name}: expected at most {MAX_TEXT} characters, got {len(t):,}")
        if self.kind == "bool":
            if t.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"{name}: expected true or false, got {_shown(text)}")
            value: Any = t.lower() in ("true", "1", "yes")
        elif self.kind in ("int", "optional_int"):
            if not _INT.fullmatch(t):
                raise ValueError(f"{name}: expected a whole number written with the digits 0-9, got {_shown(text)}")
            value = int(t)
            if self.kind == "optional_int" and value == 0:
                value = None  # 0 = no cap
        elif self.kind == "float":
            if not _FLOAT.fullmatch(t):
                raise ValueError(f"{name}: expected a number such as 0.001 or 1e-3, got {_shown(text)}")
            value = float(t)
        elif self.kind == "sizes":
            if not _SIZES.fullmatch(t):
                raise ValueError(f"{name}: expected whole numbers separated by commas, such as 512,256,128; "
                                 f"got {_shown(text)}")
            value = tuple(int(p) for p in t.split(","))
        else:
            value = t
        self.check(name, value)
        return value

    def label_part(self, name: str, value: Any, default: Any) -> str:
        """How `value` reads in a run's label: Option.short's text, or name=value when it is not the default."""
        if self.short is not None:
            return self.short(value)
        return "" if value == default else f"{name}={self.show(value)}"

    def show(self, value: Any) -> str:
        """A value as the runs table and run names show it."""
        if self.kind == "sizes":
            return ",".join(map(str, value))
        if self.kind == "optional_int":
            return "all" if value is None else str(value)
        if self.kind == "float":
            return f"{value:g}"
        return str(value)


def option(default: Any, label: str, help: str, kind: str, **kw: Any) -> Any:
    return field(default=default, metadata={"option": Option(label, help, kind, **kw)})


def _uses(name: str) -> Callable[[dict[str, Any]], bool]:
    """An optimizer field matters when the chosen optimizer reads it."""
    return lambda values: name in OPTIMIZERS[values.get("optimizer", "adam")].uses


def _pytorch_only(values: dict[str, Any]) -> bool:
    return values.get("framework", "pytorch") == "pytorch"


def keras_matched(keras_defaults: str) -> frozenset[str]:
    """Which of PyTorch's defaults a Keras run takes: 'keras' none, 'pytorch' all, 'pytorch-but-X' all but X."""
    if keras_defaults == "keras":
        return frozenset()
    return frozenset(KERAS_MATCHABLE) - {keras_defaults.removeprefix("pytorch-but-")}


def _gaussian_init(values: dict[str, Any]) -> bool:
    return values.get("weight_init", "default") == "gaussian" and _pytorch_only(values)


def _adam_eps_applies(values: dict[str, Any]) -> bool:
    """ε is read by PyTorch's Adam, and by a Keras run only when it takes PyTorch's ε (else Keras' own 1e-7)."""
    return _uses("eps")(values) and (_pytorch_only(values) or
                                     "adam_eps" in keras_matched(values.get("keras_defaults", "keras")))


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = option(course.DATASET, "Dataset", "which images to train on", "choice",
                          choices=lambda: tuple(DATASETS), choice_label=lambda n: DATASETS[n].label,
                          short=str)
    # Keras: the course's Keras model trained with fit on Keras 3 (core/engine/keras_trainer.py).
    framework: str = option("pytorch", "Framework", "PyTorch (this project's trainer) or the course's Keras model "
                            "trained with Keras' fit (same data order, same run store)", "choice",
                            choices=lambda: FRAMEWORKS, choice_label=lambda v: _FRAMEWORK_LABELS[v],
                            short=lambda v: "" if v == "pytorch" else v)
    keras_defaults: str = option("keras", "Keras defaults",
                                 "keras: Keras' own (the course's Keras recipe); pytorch: PyTorch's initial weights, "
                                 "BN momentum and ε, Adam ε and logits into the loss; pytorch-but-X: all of them but X",
                                 "choice", choices=lambda: KERAS_DEFAULTS,
                                 choice_label=lambda v: _keras_defaults_label(v),
                                 applies=lambda values: not _pytorch_only(values),
                                 short=lambda v: "" if v == "keras" else f"[{v}]")
    batch_norm: bool = option(False, "BatchNorm", "BatchNorm after each hidden Linear (Linear → BN → ReLU)", "bool",
                              flag="--bn", column="BN", short=lambda v: "BN" if v else "no-BN", tunable=True)
    hidden: tuple[int, ...] = option(course.HIDDEN, "Hidden layer sizes",
                                     "sizes of the hidden layers, comma separated, such as 512,256,128,32", "sizes",
                                     lo=1, hi=100_000, short=lambda v: "", tunable=True)
    # Ioffe & Szegedy's MNIST network (the BatchNorm lab's paper mode) is sigmoid with small Gaussian weights.
    activation: str = option("relu", "Hidden activation", "the nonlinearity after each hidden layer (after BN "
                             "when BN is on)", "choice", choices=lambda: ACTIVATIONS, applies=_pytorch_only,
                             short=lambda v: "" if v == "relu" else v)
    weight_init: str = option("default", "Initial weights",
                              "default: PyTorch's Linear init with Xavier-uniform on the output layer (the course's); "
                              "gaussian: every weight drawn from N(0, σ²) with σ = init_std, biases 0", "choice",
                              choices=lambda: WEIGHT_INITS, choice_label=lambda v: _INIT_LABELS[v],
                              applies=_pytorch_only, short=lambda v: "" if v == "default" else f"init={v}")
    init_std: float = option(0.01, "Initial weight σ", "standard deviation of the Gaussian initial weights", "float",
                             lo=1e-4, hi=1.0, log=True, applies=_gaussian_init)
    lr: float = option(course.LR, "Learning rate", "step size of the optimizer", "float", lo=1e-6, hi=10.0, log=True,
                       short=lambda v: f"lr={v:g}", tunable=True)
    batch_size: int = option(course.BATCH_SIZE, "Batch size", "images per training step", "int", lo=1, hi=MAX_BATCH_SIZE, column="batch",
                             short=lambda v: f"bs={v}", tunable=True)
    epochs: int = option(course.EPOCHS, "Epochs", "passes over the training set", "int", lo=1, hi=200,
                         short=lambda v: f"ep={v}")
    seed: int = option(0, "Seed", "initial weights and minibatch order; the same seed gives the same run", "int",
                       lo=0, hi=2**31 - 1, short=lambda v: f"seed={v}")
    optimizer: str = option("adam", "Optimizer", "how gradients become weight updates", "choice",
                            choices=lambda: tuple(OPTIMIZERS), choice_label=lambda n: OPTIMIZERS[n].label,
                            applies=_pytorch_only, short=lambda v: "" if v == "adam" else v, tunable=True)
    beta1: float = option(0.9, "Adam β1", "decay of Adam's mean of gradients: it averages about 1/(1 - β1) steps",
                          "float", lo=0.0, hi=0.9999, applies=_uses("beta1"), tunable=True)
    beta2: float = option(0.999, "Adam β2", "decay of Adam's mean of squared gradients", "float", lo=0.0, hi=0.99999,
                          applies=_uses("beta2"), tunable=True)
    eps: float = option(1e-8, "ε", "added to the denominator of the update for numerical safety", "float",
                        lo=1e-12, hi=1.0, log=True, applies=_adam_eps_applies, tunable=True)
    momentum: float = option(0.9, "Momentum", "decay of the velocity (SGD, RMSprop)", "float", lo=0.0, hi=0.9999,
                             applies=_uses("momentum"), tunable=True)
    # The course's defect: softmax in the model, then CrossEntropyLoss applies log-softmax again.
    double_softmax: bool = option(False, "Double softmax (a bug)",
                                  "reproduce the course's defect: softmax inside the model, then CrossEntropyLoss "
                                  "applies log-softmax again", "bool", applies=_pytorch_only,
                                  short=lambda v: "double-softmax" if v else "")
    # Off for the course's recipe; the Draw page's quick model trains with it (pages/draw.py).
    robust: bool = option(False, "Robust to drawings",
                          "augment every training batch: half the digits redrawn with one stroke width as a mouse "
                          "draws, every digit turned, slanted, stretched and shifted (core/engine/augment.py), so "
                          "that the model reads canvas drawings, not only MNIST's writers",
                          "bool", column="robust", applies=_pytorch_only, short=lambda v: "robust" if v else "",
                          tunable=True)
    max_batches: int | None = option(None, "Batches per epoch (0 = all)",
                                     "a cap on training batches per epoch, for quick runs; 0 or absent: all", "optional_int",
                                     lo=1, hi=MAX_BATCH_SIZE, column="batches/epoch", short=lambda v: "")
    # "fp32": everything in float32. "bf16": mixed precision, the forward pass under torch.autocast(bfloat16)
    # (matmuls in bf16 with float32 accumulation; weights, optimizer state and evaluation stay float32).
    # "auto" is resolved when the config is made, so a saved config always says what ran.
    precision: str = option("auto", "Arithmetic",
                            "fp32, or bf16 mixed precision (torch.autocast: matrix products in bfloat16 with float32 "
                            "sums); auto: whichever of the two trains this network faster on this machine, measured once "
                            "per network (about a second) and kept. bf16's accuracy was checked against float32 over 10 epochs, seeds "
                            "0-2, on an Intel Xeon (AMX): BN 98.12% vs 98.17%, no-BN 97.56% vs 97.52% "
                            "(benchmarks/README.md)",
                            "choice", choices=lambda: PRECISIONS, choice_label=lambda v: _PRECISION_LABELS[v](),
                            applies=_pytorch_only, short=lambda v: "bf16" if v == "bf16" else "")

    def __post_init__(self) -> None:
        if isinstance(self.hidden, list):
            object.__setattr__(self, "hidden", tuple(self.hidden))
        if self.precision == "auto" and self.framework == "keras":
            object.__setattr__(self, "precision", "fp32")  # a Keras run computes in float32: nothing to choose
        self.validate()  # first: auto is measured on this config's network, which must be a valid one
        if self.precision == "auto":  # what auto chose, and why, is kept beside the field (not part of equality)
            from core.engine.precision import auto_precision

            choice = auto_precision(self.hidden, self.activation)  # measured per network: see precision.py
            object.__setattr__(self, "precision", choice.precision)
            object.__setattr__(self, "_precision_choice", choice)

    @property
    def precision_choice(self):
        """The PrecisionChoice that "auto" resolved to when this config was made with precision="auto", else None
        (precision chosen explicitly, or read from a run's file)."""
        return getattr(self, "_precision_choice", None)

    def validate(self) -> None:
        """Raise ValueError naming the first invalid field, or the fields whose memory exceeds the budget."""
        for f in fields(self):
            f.metadata["option"].check(f.name, getattr(self, f.name))
        if self.batch_size > dataset_spec(self.dataset).train_size:
            raise ValueError(f"batch_size: at most the {dataset_spec(self.dataset).train_size:,} training images, "
                             f"got {self.batch_size}")
        if (need := memory_estimate(self)).total > MEMORY_BUDGET:
            raise ValueError(f"hidden, batch_size: this network needs about {need.describe()}, more than the "
                             f"{_mb(MEMORY_BUDGET)} one run may use; choose smaller hidden layers or a smaller batch")
        if self.framework == "keras":  # the course's Keras recipe: Adam, one softmax, float32
            for name, value, allowed in (("optimizer", self.optimizer, "adam"), ("double_softmax", self.double_softmax, False),
                                         ("precision", self.precision, "fp32"), ("robust", self.robust, False),
                                         ("activation", self.activation, "relu"),
                                         ("weight_init", self.weight_init, "default")):
                if value != allowed:
                    raise ValueError(f"{name}: a Keras run uses {allowed} (the course's Keras recipe), got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        if not isinstance(d, dict):
            raise ValueError(f"config: expected the settings as a mapping of names to values, got {_shown(d)}")
        known = {f.name for f in fields(cls)}
        # Runs saved before the precision field existed trained in float32.
        return cls(**{"precision": "fp32", **{k: v for k, v in d.items() if k in known}})

    def label(self) -> str:
        """The run's settings in one line, read from the fields' metadata (Option.short)."""
        values = asdict(self)
        parts = [opt.label_part(name, values[name], default) for name, default, opt in config_options()]
        return " ".join(p for p in parts if p).replace(" [", "[")


_INIT_LABELS = {"default": "default (PyTorch's, Xavier on the output)", "gaussian": "Gaussian N(0, σ²), biases 0"}
_FRAMEWORK_LABELS = {"pytorch": "PyTorch", "keras": "Keras 3 (the course's Keras model)"}


def _keras_defaults_label(value: str) -> str:
    if value in ("keras", "pytorch"):
        return {"keras": "Keras' own (the course's recipe)", "pytorch": "PyTorch's (all matched)"}[value]
    return f"PyTorch's, but Keras' {value.removeprefix('pytorch-but-').replace('_', ' ')}"


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run needs while it trains (float32 throughout; an upper bound for bf16 mixed precision)."""
    parameters: int  # weights and biases (+ BatchNorm's scale, shift and running statistics)
    weights: int  # the parameters
    gradients: int  # one gradient per weight
    optimizer: int  # Adam's two moments per weight: the most any optimizer here keeps
    activations: int  # one training batch: the input, and per hidden layer what backward keeps

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations

    def describe(self) -> str:
        return (f"{_mb(self.total)} (weights {_mb(self.weights)}, gradients {_mb(self.gradients)}, Adam state "
                f"{_mb(self.optimizer)}, activations {_mb(self.activations)})")


def memory_estimate(config: TrainConfig) -> MemoryEstimate:
    """What `config` needs in memory: 4 bytes per float; per hidden unit and image of a batch the backward pass
    keeps the Linear output, the ReLU output and, with BN, the normalised value (3 with BN, 2 without)."""
    spec = dataset_spec(config.dataset)
    sizes = (spec.input_size, *config.hidden, spec.num_classes)
    params = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    if config.batch_norm:
        params += 4 * sum(config.hidden)  # weight, bias, running mean, running variance
    per_image = spec.input_size + (3 if config.batch_norm else 2) * sum(config.hidden) + 2 * spec.num_classes
    return MemoryEstimate(params, 4 * params, 4 * params, 8 * params, 4 * config.batch_size * per_image)


def trainable_parameters(config: TrainConfig) -> int:
    """Weights the optimizer updates: every Linear's weights and biases, and BatchNorm's scale and shift (its
    running statistics are not trained)."""
    spec = dataset_spec(config.dataset)
    sizes = (spec.input_size, *config.hidden, spec.num_classes)
    return sum(a * b + b for a, b in zip(sizes, sizes[1:])) + (2 * sum(config.hidden) if config.batch_norm else 0)


def _mb(n: int) -> str:
    return f"{n / 2**30:.2f} GB" if n >= 2**30 else f"{n / 2**20:,.0f} MB"


_PRECISION_LABELS = {"auto": lambda: f"auto ({resolve_precision('auto')} here for the course network)", "fp32": lambda: "float32",
                     "bf16": lambda: "bf16 mixed precision"}


def resolve_precision(precision: str) -> str:
    """'auto' -> 'fp32' or 'bf16', whichever trains faster on this machine (measured once per machine and network and
    kept: core/engine/precision.py); 'fp32' and 'bf16' stay as they are."""
    if precision != "auto":
        return precision
    from core.engine.precision import auto_precision

    return auto_precision().precision


def _shown(x: Any) -> str:
    """A value in a message: its repr, cut to a readable length."""
    r = repr(x)
    return r if len(r) <= 80 else r[:77] + "..."


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_real(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# --- what the CLI, the Train page and the runs table are generated from -----------------------------
def config_options() -> list[tuple[str, Any, Option]]:
    """(field name, default, Option) of every TrainConfig field, in order."""
    return [(f.name, f.default, f.metadata["option"]) for f in fields(TrainConfig)]


def make_config(values: dict[str, Any]) -> TrainConfig:
    return TrainConfig(**values)


def config_from_dict(d: dict[str, Any]) -> TrainConfig:
    return TrainConfig.from_dict(d)


def parse_hidden(text: str) -> tuple[int, ...]:
    """'512, 256,128' -> (512, 256, 128); ValueError naming `hidden` on bad input."""
    return next(o for n, _, o in config_options() if n == "hidden").parse("hidden", text)


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field; absent flags keep the field's default."""
    for name, default, opt in config_options():
        flag = opt.flag or "--" + name.replace("_", "-")
        shown = "auto" if name == "precision" else opt.show(default)
        help_text = f"{opt.help} (default {shown})".replace("%", "%%")  # argparse formats help with %
        if opt.kind == "bool":
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif opt.kind == "choice":
            parser.add_argument(flag, dest=name, choices=opt.choices(), default=None, help=help_text)
        else:
            parser.add_argument(flag, dest=name, default=None, metavar=name.upper(), help=help_text)


def config_from_args(ns: argparse.Namespace) -> TrainConfig:
    """Parsed flags -> TrainConfig; ValueError naming the first bad field."""
    values = {}
    for name, _, opt in config_options():
        raw = getattr(ns, name, None)
        if raw is not None:
            values[name] = raw if opt.kind in ("bool", "choice") else opt.parse(name, raw)
    return make_config(values)


def config_columns(config: TrainConfig) -> dict[str, str]:
    """The runs table's columns for one run's settings: every field as it reads, '–' where it does not apply."""
    values = asdict(config)
    return {(opt.column or opt.label): opt.show(values[name]) if opt.applies is None or opt.applies(values) else "–"
            for name, _, opt in config_options()}
