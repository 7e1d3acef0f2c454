"""The frameworks lesson: the course's network in PyTorch and in Keras, the defaults in which they differ
(every value read from a live object), and PyTorch / Keras twin runs that see the same minibatches.

Keras loads only inside the functions that need it (core/engine/keras_model.py: load_keras)."""
from __future__ import annotations

import functools
import inspect
import math
import re
import threading
import time
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch
from torch import nn

from core.engine import keras_model, keras_trainer, models
from core.engine.config import KERAS_DEFAULTS, TrainConfig
from core.engine.data import MEAN, STD, normalize
from core.engine.snapshot import RunSnapshot
from core.lessons.softmax import double_softmax_floor
from core.store.groups import LabKind
from core.store.runs import RunInfo, RunStore



# --- the two listings -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Listing:
    title: str
    code: str
    notes: tuple[tuple[int, str], ...]  # (1-based line in `code`, what to see there)


def _line_of(code: str, fragment: str) -> int:
    return next(i for i, line in enumerate(code.splitlines(), 1) if fragment in line)


def pytorch_listing() -> Listing:
    """The PyTorch MLP as the trainer builds it (the class itself, so the listing cannot drift)."""
    code = inspect.getsource(models.MLP)
    line = _line_of(code, "torch.softmax(z, dim=1) if self.double_softmax")
    floor = double_softmax_floor(10)
    return Listing("PyTorch (core/engine/models.py)", code, (
        (_line_of(code, "z = self.out(x)"), "Logits out: the loss (F.cross_entropy) applies log-softmax once."),
        (line, "The course's listing always ends with nn.Softmax(dim=1) and feeds that to nn.CrossEntropyLoss, "
               "which applies log-softmax again: softmax runs twice and the loss cannot go below "
               f"{floor:.3f} (log(e + 9) − 1). Here the model returns logits; the course's form is only the "
               "labelled option double_softmax=True."),
    ))


def keras_listing() -> Listing:
    """The Keras model and how the Keras run compiles and fits it (the real functions, so it cannot drift)."""
    code = "\n".join(inspect.getsource(f) for f in (keras_model.keras_mlp, keras_model.compile_course_model,
                                                    keras_trainer.fit_course_model))
    return Listing("Keras 3 (core/engine/keras_model.py, keras_trainer.py)", code, (
        (_line_of(code, "layers.Rescaling(1 / 127.5, offset=-1)"),
         "The same input scaling as PyTorch's Normalize((0.5,), (0.5,)): pixels to [−1, 1]."),
        (_line_of(code, 'activation=None if settings.logits else "softmax"'),
         "One softmax, at the output layer (the course's Keras listing; logits only when the defaults are matched)."),
        (_line_of(code, "SparseCategoricalCrossentropy(from_logits=settings.logits)"),
         "…and a loss that expects probabilities (from_logits=False): softmax runs once. Right."),
    ))


# --- the same models, as the course writes them ------------------------------------------------------------
# The course's second variant (BN after each hidden Linear), in float32 as both frameworks run it for the course
COURSE_STYLE = TrainConfig(batch_norm=True, precision="fp32")


def _torch_layer(layer: nn.Module) -> str:
    if isinstance(layer, nn.Linear):
        return f"nn.Linear({layer.in_features}, {layer.out_features})"
    if isinstance(layer, nn.BatchNorm1d):
        fresh = nn.BatchNorm1d(layer.num_features)
        extra = "".join(f", {k}={getattr(layer, k):g}" for k in ("eps", "momentum")
                        if getattr(layer, k) != getattr(fresh, k))
        return f"nn.BatchNorm1d({layer.num_features}{extra})"
    return f"nn.{type(layer).__name__}()"


def pytorch_course_listing(config: TrainConfig = COURSE_STYLE) -> str:
    """The PyTorch model, loss and optimizer a run of `config` trains, written as the course writes them (one
    nn.Sequential, a layer a line, narrow enough for half the page): generated from the model the trainer builds
    and the optimizer it uses, so it cannot drift. tests/test_frameworks.py runs it against the real module."""
    from core.engine import torch_loop
    from core.engine.optimizers import FusedAdam, build_optimizer

    model = models.build_model(config)
    opt = build_optimizer(model.parameters(), config)
    rows = [f"    {_torch_layer(layer)}," for block in model.blocks for layer in block]
    # the loss function every training step calls, read from its source
    loss_fn = next(re.search(r"([\w.]+cross_entropy)\(", line).group(1)
                   for line in inspect.getsource(torch_loop.make_step).splitlines() if "cross_entropy(" in line)
    # This project's Adam is torch.optim.Adam's fused kernel without its bookkeeping (core/engine/optimizers.py)
    name = "Adam" if isinstance(opt, FusedAdam) else type(opt).__name__
    lr = opt.lr if isinstance(opt, FusedAdam) else opt.param_groups[0]["lr"]
    init = "xavier_uniform_" if "xavier_uniform_" in inspect.getsource(models.init_weights) else None
    return "\n".join([
        "model = nn.Sequential(",
        "    nn.Flatten(),",
        *rows,
        f"    {_torch_layer(model.out)},  # logits" + (", then softmax: the bug" if model.double_softmax else ""),
        ")",
        *(["# the course's init of the output layer", f"nn.init.{init}(model[-1].weight)"] if init else []),
        f"optimizer = torch.optim.{name}(",
        f"    model.parameters(), lr={lr:g})",
        "# each step: x scaled to [-1, 1], y the digit",
        f"loss = {loss_fn}(model(x), y)",
        "optimizer.zero_grad()",
        "loss.backward()",
        "optimizer.step()",
    ])


def keras_course_listing(config: TrainConfig = COURSE_STYLE) -> str:
    """The Keras model as the course writes it (one keras.Sequential, compile, fit; a layer a line), generated
    from the model a Keras run of `config` builds and compiles, so it cannot drift (tests run it against the real
    model)."""
    cfg = replace(config, framework="keras", precision="fp32")  # a Keras run computes in float32
    model = keras_model.build_keras_model(cfg)
    rows = []
    fresh = keras_model.load_keras().layers.BatchNormalization()
    for i, dense in enumerate(model.dense):
        rows.append(f"    layers.Dense({dense.units}),")
        if model.norm:
            bn = model.norm[i]
            extra = ", ".join(f"{k}={getattr(bn, k):g}" for k in ("momentum", "epsilon")
                              if getattr(bn, k) != getattr(fresh, k))
            rows.append(f"    layers.BatchNormalization({extra}),")
        rows.append("    layers.ReLU(),")
    act = model.out.activation.__name__
    loss, opt = model.loss, model.optimizer
    from_logits = loss.get_config()["from_logits"]
    lr = float(keras_model.load_keras().ops.convert_to_numpy(opt.learning_rate))
    return "\n".join([
        "model = keras.Sequential([",
        "    layers.Flatten(),",
        "    # pixels 0..255 to [-1, 1]",
        f"    layers.Rescaling(1 / {1 / model.rescale.scale:g}, offset={model.rescale.offset:g}),",
        *rows,
        f"    layers.Dense({model.out.units}" + (f', activation="{act}"),' if act != "linear" else "),  # logits"),
        "])",
        f"loss = keras.losses.{type(loss).__name__}({'from_logits=True' if from_logits else ''})",
        f"optimizer = keras.optimizers.{type(opt).__name__}({lr:g})",
        "model.compile(optimizer=optimizer, loss=loss,",
        "              metrics=[\"accuracy\"])",
        f"model.fit(x_train, y_train, batch_size={cfg.batch_size},",
        f"          epochs={cfg.epochs},",
        "          validation_data=(x_test, y_test))",
    ])


# --- the defaults that differ ---------------------------------------------------------------------
@dataclass(frozen=True)
class DefaultRow:
    name: str
    pytorch: str
    keras: str
    note: str
    switch: str  # the KERAS_MATCHABLE item that gives the Keras run PyTorch's value, or why there is none


@dataclass(frozen=True)
class LiveDefaults:
    """Numbers read from live PyTorch and Keras objects; the table and the tests use these."""
    fan_in: int
    fan_out: int
    torch_init_call: str  # what nn.Linear.reset_parameters calls, from its source
    torch_weight_max: float  # largest |w| of a fresh nn.Linear(fan_in, fan_out)
    torch_bias_max: float
    keras_kernel_init: str  # class name of Dense's default kernel initializer
    keras_bias_init: str
    keras_weight_max: float  # largest |w| of a fresh Dense(fan_out) built on fan_in inputs
    keras_bias_max: float
    torch_bn_momentum: float
    keras_bn_momentum: float
    torch_bn_eps: float
    keras_bn_eps: float
    running_var_ratio: float  # PyTorch's running variance / Keras' moving variance after one batch of 64
    torch_adam_eps: float
    keras_adam_eps: float
    torch_adam_eps_step1: float  # ε as it acts at step 1, measured from one update with a tiny gradient
    keras_adam_eps_step1: float
    keras_output_activation: str
    keras_from_logits: bool
    keras_prob_clip: float  # keras.config.epsilon(): probabilities are clipped to [ε, 1 − ε] before the log
    torch_outputs_logits: bool  # this project's MLP returns values whose rows do not sum to 1
    input_range_torch: tuple[float, float]  # pixel 0 and 255 after Normalize
    input_range_keras: tuple[float, float]  # after Rescaling
    input_max_diff: float  # over all 256 pixel values


def _effective_eps_at_step1(update: float, grad: float, lr: float) -> float:
    """Adam's first update is lr * g / (|g| + ε_eff) in PyTorch's form: solve for ε_eff."""
    return lr * abs(grad) / abs(update) - abs(grad)


def read_live_defaults(fan_in: int = 784, fan_out: int = 512, batch: int = 64) -> LiveDefaults:
    """Build one layer / optimizer of each kind with its defaults and read what it does."""
    keras = keras_model.load_keras()
    from keras import layers, ops

    with torch.random.fork_rng():  # nn.Linear draws from the global generator: leave it as it was
        torch.manual_seed(0)
        lin = nn.Linear(fan_in, fan_out)
    call = re.search(r"init\.(\w+)\(self\.weight, (.*)\)\s*$", inspect.getsource(nn.Linear.reset_parameters), re.M)
    dense = layers.Dense(fan_out)
    dense.build((None, fan_in))
    np_rng = np.random.default_rng(0)
    h = np_rng.normal(1.0, 2.0, size=(batch, 8)).astype(np.float32)  # one batch of pre-activations
    # One training step of each BN layer with momentum set so that the running value becomes the batch statistic.
    tbn = nn.BatchNorm1d(8, momentum=1.0)
    tbn(torch.from_numpy(h))
    kbn = layers.BatchNormalization(momentum=0.0)
    kbn(h, training=True)
    ratio = float(np.mean(tbn.running_var.numpy() / ops.convert_to_numpy(kbn.moving_variance)))
    grad, lr = 1e-7, 1e-3
    p = torch.nn.Parameter(torch.zeros(1))
    topt = torch.optim.Adam([p], lr=lr)
    p.grad = torch.full((1,), grad)
    topt.step()
    kvar = keras.Variable(np.zeros(1, np.float32))
    kopt = keras.optimizers.Adam(learning_rate=lr)
    kopt.apply([np.full(1, grad, np.float32)], [kvar])
    kout = keras_model.keras_mlp(hidden=(4,), outputs=3, input_shape=(2, 2))
    pix = np.arange(256, dtype=np.uint8)  # every pixel value, as the datasets store them
    t_in = normalize(torch.from_numpy(pix).reshape(1, 16, 16), MEAN, STD).flatten().numpy()
    k_in = ops.convert_to_numpy(layers.Rescaling(1 / 127.5, offset=-1)(pix.astype(np.float32)))
    mlp = models.MLP(hidden=(4,), outputs=3, inputs=4)
    torch_sums = mlp(torch.randn(5, 4, generator=torch.Generator().manual_seed(0))).sum(1)
    return LiveDefaults(
        fan_in, fan_out, f"{call.group(1)}({call.group(2)})" if call else "unknown",
        lin.weight.abs().max().item(), lin.bias.abs().max().item(),
        type(dense.kernel_initializer).__name__, type(dense.bias_initializer).__name__,
        float(np.abs(ops.convert_to_numpy(dense.kernel)).max()), float(np.abs(ops.convert_to_numpy(dense.bias)).max()),
        nn.BatchNorm1d(1).momentum, layers.BatchNormalization().momentum,
        nn.BatchNorm1d(1).eps, layers.BatchNormalization().epsilon, ratio,
        torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))]).defaults["eps"], keras.optimizers.Adam().epsilon,
        _effective_eps_at_step1(p.item(), grad, lr),
        _effective_eps_at_step1(float(ops.convert_to_numpy(kvar)[0]), grad, lr),
        kout.out.activation.__name__, keras.losses.SparseCategoricalCrossentropy().get_config()["from_logits"],
        keras.config.epsilon(), not torch.allclose(torch_sums, torch.ones(5)),
        (float(t_in[0]), float(t_in[255])), (float(k_in[0]), float(k_in[255])), float(np.abs(t_in - k_in).max()))


def defaults_table(d: LiveDefaults) -> list[DefaultRow]:
    """The defaults in which the course's two models differ, with the switch that matches each one."""
    kaiming = 1 / math.sqrt(d.fan_in)
    glorot = math.sqrt(6 / (d.fan_in + d.fan_out))
    layer = f"{d.fan_in}→{d.fan_out}"
    tm, km = d.torch_bn_momentum, d.keras_bn_momentum
    return [
        DefaultRow("Hidden-layer weights", f"{d.torch_init_call}: U(±1/√fan_in) = ±{kaiming:.4f} for {layer} "
                   f"(largest drawn {d.torch_weight_max:.4f})",
                   f"{d.keras_kernel_init}: U(±√(6/(fan_in+fan_out))) = ±{glorot:.4f} (largest drawn {d.keras_weight_max:.4f})",
                   f"Keras starts with weights {glorot / kaiming:.1f}x as large in this layer.", "init (copies PyTorch's weights)"),
        DefaultRow("Biases", f"U(±1/√fan_in) like the weights (largest drawn {d.torch_bias_max:.4f})",
                   f"{d.keras_bias_init} (largest {d.keras_bias_max:g})", "", "init"),
        DefaultRow("BatchNorm momentum", f"{tm:g}: weight of the NEW batch statistic",
                   f"{km:g}: weight of the OLD running value",
                   f"Keras {km:g} = PyTorch {1 - km:.2g}; PyTorch {tm:g} = Keras {1 - tm:.2g}. Running averages span about "
                   f"{1 / (1 - km):.0f} batches in Keras, {1 / tm:.0f} in PyTorch.", "bn_momentum"),
        DefaultRow("BatchNorm ε", f"{d.torch_bn_eps:g}", f"{d.keras_bn_eps:g}", "added to the batch variance before "
                   "the square root", "bn_eps"),
        DefaultRow("BatchNorm running variance", "unbiased: batch variance × n/(n−1)", "biased: batch variance",
                   f"after one batch of 64: PyTorch's is {d.running_var_ratio:.4f}x Keras' (64/63 = {64 / 63:.4f})",
                   "none (only the inference-mode statistics differ)"),
        DefaultRow("Adam ε", f"{d.torch_adam_eps:g}", f"{d.keras_adam_eps:g}", "", "adam_eps"),
        DefaultRow("Where Adam's ε sits", "after the bias correction: √v̂ + ε",
                   "before it: √v + ε, the step scaled by √(1−β₂ᵗ)/(1−β₁ᵗ)",
                   f"measured at step 1, ε acts as {d.torch_adam_eps_step1:.3g} in PyTorch and {d.keras_adam_eps_step1:.3g} "
                   f"in Keras ({d.keras_adam_eps_step1 / d.keras_adam_eps:.1f}x its value)", "adam_eps (value and place)"),
        DefaultRow("Where softmax lives", "model returns logits" if d.torch_outputs_logits else "model returns probabilities",
                   f"output activation {d.keras_output_activation}; loss from_logits={d.keras_from_logits}",
                   f"PyTorch's F.cross_entropy applies log-softmax itself; Keras clips probabilities to "
                   f"[{d.keras_prob_clip:g}, 1 − {d.keras_prob_clip:g}] before the log (no example's loss above "
                   f"{-math.log(d.keras_prob_clip):.2f})", "logits (Dense(10) logits + from_logits=True)"),
        DefaultRow("Input scaling", f"Normalize(0.5, 0.5): 0 → {d.input_range_torch[0]:g}, 255 → {d.input_range_torch[1]:g}",
                   f"Rescaling(1/127.5, offset=−1): 0 → {d.input_range_keras[0]:g}, 255 → {d.input_range_keras[1]:g}",
                   f"identical up to rounding (largest difference over all 256 values {d.input_max_diff:.1e})", "identical"),
    ]


# --- twins -----------------------------------------------------------------------------------------
def keras_defaults_value(matched: bool, switched_back: str | None = None) -> str:
    """The Keras run's keras_defaults from the page's switches: Keras' own, all matched, or all but one."""
    if not matched:
        return "keras"
    value = "pytorch" if not switched_back else f"pytorch-but-{switched_back}"
    if value not in KERAS_DEFAULTS:
        raise ValueError(f"keras_defaults: no such setting {value!r}")
    return value


def twin_configs(base: TrainConfig, keras_defaults: str) -> list[TrainConfig]:
    """[PyTorch run, Keras run] of the same settings: same seed, so the same initial weights (when matched) and
    the same minibatch order."""
    torch_cfg = replace(base, framework="pytorch", keras_defaults="keras", double_softmax=False, precision="fp32",
                        optimizer="adam")
    return [torch_cfg, replace(torch_cfg, framework="keras", keras_defaults=keras_defaults)]


def start_framework_twins(store: RunStore, base: TrainConfig, keras_defaults: str, owner: str = "") -> str:
    """A PyTorch run and a Keras run of the same config (same seed: same minibatch order), one after the other."""
    group = LabKind.FRAMEWORKS.new_id()
    torch_cfg, keras_cfg = twin_configs(base, keras_defaults)
    first = store.start(torch_cfg, name=f"PyTorch seed {base.seed} ({group})", allow_duplicate=True, group=group,
                        owner=owner)
    store.start(keras_cfg, name=f"Keras [{keras_defaults}] seed {base.seed} ({group})", allow_duplicate=True,
                group=group, after=first.id, owner=owner)
    return group


def twin_runs(store: RunStore, group: str) -> dict[str, RunInfo]:
    return {r.config.framework: r for r in store.list() if r.group == group}


AGREE = 1e-3  # two logged losses agree when they differ by at most 0.1% of the first
SMOOTH_STEPS = 50  # the moving mean that shows whether curves part for good or only jitter
# A gap within this factor of the float64 yardstick's counts as rounding: measured here (seed 0, 2 x 200 steps), the
# matched twins' gap was 1.9x the yardstick's with and without BN, Keras' own defaults 10x (BN) and 39x (no BN).
SAME_SIZE = 3.0


@dataclass(frozen=True)
class Agreement:
    """How closely two runs' logged training losses (10-step means) follow each other, and their final gap."""
    points: int  # logged points both runs have
    agree_until: int  # the last logged step up to which every point agreed within AGREE (0: not even the first)
    parted_at: int | None  # the first logged step that differs by more than AGREE; None: every point agrees
    max_rel: float  # largest |ΔL| / L over those points
    max_rel_smoothed: float  # the same over moving means of SMOOTH_STEPS steps
    acc_gap: float | None  # |final test accuracy a - b|, as a share (0.0094: 0.94 points)


def loss_agreement(a: Sequence[tuple[int, float]], b: Sequence[tuple[int, float]],
                   acc_a: float | None = None, acc_b: float | None = None) -> Agreement | None:
    da, db = dict(a), dict(b)
    common = sorted(s for s in set(da) & set(db) if da[s])
    if not common:
        return None
    rel = [abs(da[s] - db[s]) / abs(da[s]) for s in common]
    parted = next((s for s, r in zip(common, rel) if r > AGREE), None)
    agreed = [s for s in common if parted is None or s < parted]
    spacing = max(1, common[1] - common[0]) if len(common) > 1 else 1
    k = max(1, SMOOTH_STEPS // spacing)  # logged points per moving mean
    ma = np.convolve([da[s] for s in common], np.ones(k) / k, "valid")
    mb = np.convolve([db[s] for s in common], np.ones(k) / k, "valid")
    smoothed = float(np.max(np.abs(ma - mb) / np.abs(ma))) if len(ma) else max(rel)
    gap = abs(acc_a - acc_b) if acc_a is not None and acc_b is not None else None
    return Agreement(len(common), agreed[-1] if agreed else 0, parted, max(rel), smoothed, gap)


@dataclass(frozen=True)
class TwinComparison:
    steps_compared: int  # logged points both runs have
    max_rel_loss_diff: float | None  # largest |ΔL| / L over those points
    final_acc: dict[str, float | None]
    seconds_per_epoch: dict[str, tuple[float, ...]]  # each epoch's training + evaluation time
    agreement: Agreement | None = None


def compare_twins(pytorch: RunSnapshot, keras: RunSnapshot) -> TwinComparison:
    acc = {"pytorch": pytorch.final.test_acc if pytorch.final else None,
           "keras": keras.final.test_acc if keras.final else None}
    agreement = loss_agreement(pytorch.step_losses, keras.step_losses, acc["pytorch"], acc["keras"])
    return TwinComparison(agreement.points if agreement else 0, agreement.max_rel if agreement else None, acc,
                          {"pytorch": tuple(h.seconds for h in pytorch.history),
                           "keras": tuple(h.seconds for h in keras.history)}, agreement)


# --- the yardstick: the PyTorch twin against itself in float64 ---------------------------------------------
@dataclass(frozen=True)
class Replica:
    """The PyTorch twin's training, replayed outside the trainer: same initial weights, same minibatches, the
    trainer's arithmetic, in the given precision; logged like the trainer (10-step mean losses)."""
    dtype: str
    step_losses: tuple[tuple[int, float], ...]
    test_acc: float
    seconds: float


def replay(config: TrainConfig, data_dir: str | None = None, dtype: torch.dtype = torch.float64,
           log_every: int = 10) -> Replica:
    """Train `config` (a PyTorch run without the robust preset) as the trainer does, in `dtype`, in a thread of its
    own (which then ends, as the trainer's does: a long-lived thread that has run torch slows later training)."""
    if config.framework != "pytorch" or config.robust or config.precision == "bf16":
        raise ValueError("replay: a PyTorch run in plain arithmetic, without the robust preset")
    return _in_thread(_replay, config, data_dir, dtype, log_every)


def _replay(config: TrainConfig, data_dir: str | None, dtype: torch.dtype, log_every: int) -> Replica:
    from core.engine import cpu
    from core.engine.data import iterate_batches, load_dataset, num_batches
    from core.engine.optimizers import build_optimizer
    from core.engine.torch_loop import EVAL_BATCH, make_step

    torch.set_flush_denormal(True)  # as the trainer does
    cpu.use_base_threads()
    t0 = time.perf_counter()
    data = load_dataset(config.dataset, data_dir)
    mean, std = data.spec.mean, data.spec.std
    model = models.build_model(config).to(dtype)  # the seed's initial weights, then widened exactly
    opt = build_optimizer(model.parameters(), config)
    train_step = make_step(model, opt)  # the step every PyTorch run takes
    gen = torch.Generator().manual_seed(config.seed)  # the trainer's minibatch order
    n = num_batches(len(data.train_x), config.batch_size, config.max_batches)
    logged, step = [], 0
    for _ in range(config.epochs):
        model.train()
        window = []
        for i, (xb, yb) in enumerate(iterate_batches(data.train_x, data.train_y, config.batch_size, gen,
                                                     config.max_batches, mean, std), start=1):
            loss, _ = train_step(xb.to(dtype), yb)
            step += 1
            window.append(loss.detach())
            if i % log_every == 0 or i == n:
                values = torch.stack(window).tolist()
                logged.append((step, sum(values) / len(values)))
                window = []
    model.eval()
    correct = 0
    with torch.no_grad():
        for xb, yb in iterate_batches(data.test_x, data.test_y, EVAL_BATCH, mean=mean, std=std):
            correct += int((model(xb.to(dtype)).argmax(1) == yb).sum())
    return Replica(str(dtype).removeprefix("torch."), tuple(logged), correct / len(data.test_y),
                   time.perf_counter() - t0)


@functools.lru_cache(maxsize=1)
def step_seconds(steps: int = 20) -> dict[str, float]:
    """Seconds of one training step of the course network with BN at batch 64, in float32 and in float64: timed
    once per process on random inputs (a fraction of a second), for the yardstick's duration."""
    return _in_thread(_step_seconds, steps)


def _step_seconds(steps: int) -> dict[str, float]:
    from torch.nn import functional as F

    from core.engine import cpu

    cpu.use_base_threads()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 784, generator=g), torch.randint(0, 10, (64,), generator=g)
    took: dict[str, float] = {}
    for dtype in (torch.float32, torch.float64) * 2:  # each twice, alternating: the second time is warm
        model = models.MLP(batch_norm=True).to(dtype)
        opt = torch.optim.Adam(model.parameters())
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = F.cross_entropy(model(x.to(dtype)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        took[str(dtype).removeprefix("torch.")] = (time.perf_counter() - t0) / steps
    return took


def replay_seconds(run_seconds: float, steps: int) -> float:
    """How long replaying a run of `steps` steps that took `run_seconds` takes in float64: its steps at float64's
    pace, its other seconds (evaluation) as they were."""
    t = step_seconds()
    return steps * t["float64"] + max(0.0, run_seconds - steps * t["float32"])


def _in_thread(fn, *args):
    out: dict[str, object] = {}

    def work() -> None:
        try:
            out["r"] = fn(*args)
        except BaseException as e:
            out["error"] = e

    t = threading.Thread(target=work, name=fn.__name__)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["r"]


def yardstick_words(keras: Agreement, yard: Agreement) -> str:
    """The Keras gap measured against the yardstick's, in words a learner can act on."""
    ratio = keras.max_rel_smoothed / yard.max_rel_smoothed if yard.max_rel_smoothed else math.inf
    parted = (f"Float32 rounding alone parts the PyTorch run from its float64 self "
              + (f"after step {yard.agree_until}" if yard.parted_at else "nowhere in these steps")
              + "; the Keras twin parts from it "
              + (f"after step {keras.agree_until}" if keras.parted_at else "nowhere in these steps") + ". ")
    size = f"On 50-step moving means the Keras gap is {ratio:.1f}× the yardstick's"
    if ratio <= SAME_SIZE:
        return (parted + size + f": the size rounding alone makes (the yardstick is one draw of that chaos too, so "
                f"within {SAME_SIZE:g}× either way is the same size). The frameworks compute the same thing; float32 "
                "rounding, which Adam and (with BN) the batch statistics amplify, parts the curves.")
    return (parted + size + ": several times what rounding alone makes, so something beyond rounding differs. With "
            "Keras' own defaults that is expected (the table above lists them); with matched defaults, the one you "
            "switched back.")


def yardstick_rows(cmp: TwinComparison, pytorch: RunSnapshot, replica: Replica | None) -> list[dict]:
    """The page's table: the Keras twin against the PyTorch one, and beside it the PyTorch twin against itself in
    float64: what float32 rounding alone does to the same run."""
    pairs = [("Keras vs PyTorch (both float32)", cmp.agreement)]
    if replica is not None:
        acc = pytorch.final.test_acc if pytorch.final else None
        pairs.append(("PyTorch float32 vs the same run in float64 (the yardstick)",
                      loss_agreement(pytorch.step_losses, replica.step_losses, acc, replica.test_acc)))
    rows = []
    for name, a in pairs:
        if a is None:
            continue
        rows.append({"compared": name,
                     "losses agree within 0.1% up to step": a.agree_until if a.parted_at else f"{a.agree_until} (all)",
                     "largest difference": f"{a.max_rel:.2%}",
                     f"largest, {SMOOTH_STEPS}-step moving mean": f"{a.max_rel_smoothed:.2%}",
                     "final test acc gap": f"{a.acc_gap * 100:.2f} points" if a.acc_gap is not None else "–"})
    return rows
