"""The frameworks lesson: the course's network in PyTorch and in Keras, the defaults in which they differ
(every value read from a live object), and PyTorch / Keras twin runs that see the same minibatches.

Keras loads only inside the functions that need it (core/engine/keras_model.py: load_keras)."""
from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass, replace

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


def start_framework_twins(store: RunStore, base: TrainConfig, keras_defaults: str) -> str:
    """A PyTorch run and a Keras run of the same config (same seed: same minibatch order), one after the other."""
    group = LabKind.FRAMEWORKS.new_id()
    torch_cfg = replace(base, framework="pytorch", keras_defaults="keras", double_softmax=False, precision="fp32",
                        optimizer="adam")
    keras_cfg = replace(torch_cfg, framework="keras", keras_defaults=keras_defaults)
    first = store.start(torch_cfg, name=f"PyTorch seed {base.seed} ({group})", allow_duplicate=True, group=group)
    store.start(keras_cfg, name=f"Keras [{keras_defaults}] seed {base.seed} ({group})", allow_duplicate=True,
                group=group, after=first.id)
    return group


def twin_runs(store: RunStore, group: str) -> dict[str, RunInfo]:
    return {r.config.framework: r for r in store.list() if r.group == group}


@dataclass(frozen=True)
class TwinComparison:
    steps_compared: int  # logged points both runs have
    max_rel_loss_diff: float | None  # largest |ΔL| / L over those points
    final_acc: dict[str, float | None]
    seconds_per_epoch: dict[str, tuple[float, ...]]  # each epoch's training + evaluation time


def compare_twins(pytorch: RunSnapshot, keras: RunSnapshot) -> TwinComparison:
    a, b = dict(pytorch.step_losses), dict(keras.step_losses)
    common = sorted(set(a) & set(b))
    rel = [abs(a[s] - b[s]) / abs(a[s]) for s in common if a[s]]
    return TwinComparison(len(common), max(rel) if rel else None,
                          {"pytorch": pytorch.final.test_acc if pytorch.final else None,
                           "keras": keras.final.test_acc if keras.final else None},
                          {"pytorch": tuple(h.seconds for h in pytorch.history),
                           "keras": tuple(h.seconds for h in keras.history)})
