"""The course's Keras model, the settings a Keras run takes, and its weights under the PyTorch MLP's names.

Keras and its backend load only when a Keras model is built (`load_keras`), never when `core` is imported:
importing them costs seconds and starts XLA's threads. The backend is JAX, chosen by measurement
(benchmarks/bench_frameworks.py --backends: the course's BN model in `fit` took 2.5-3.3 ms a step on JAX and
12 ms on Keras' torch backend here); KERAS_BACKEND=torch in the environment picks the other one.

A Keras run's weights are stored converted to the PyTorch MLP's state-dict names (`torch_state_dict`), so
everything that loads a run (evaluation, the Draw page, the BatchNorm lab) works unchanged: a Dense kernel
(in, out) is a Linear weight (out, in) transposed, BN gamma / beta / moving mean / moving variance are
weight / bias / running_mean / running_var, and the softmax of the converted logits is Keras' softmax output.
"""
from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from core.engine import course, cpu
from core.engine.config import TrainConfig, keras_matched

if TYPE_CHECKING:
    import keras

BACKEND = "jax"  # measured the faster Keras backend here (see the module docstring)
BACKENDS = ("jax", "torch")
# Keras' own defaults, for code that must not load Keras (building the PyTorch MLP that holds a Keras run's
# weights); tests/test_frameworks.py checks each against a live Keras object.
KERAS_BN_MOMENTUM = 0.99  # Keras' convention: the weight of the old running value
KERAS_BN_EPS = 1e-3
KERAS_ADAM_EPS = 1e-7

CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"
_lock = threading.Lock()


def compilation_cache_dir() -> Path | None:
    """Where JAX keeps compiled programs between runs and processes: $JAX_COMPILATION_CACHE_DIR (empty: no
    cache), else the user's cache folder. Without it every Keras run compiles its steps again (5-20 s here)."""
    if CACHE_ENV in os.environ:
        return Path(os.environ[CACHE_ENV]) if os.environ[CACHE_ENV] else None
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mnist-dashboard" / "jax"


def load_keras():
    """Import Keras on the chosen backend, with the CPU threading policy applied to XLA first. Raises
    RuntimeError when Keras was already imported on another backend (KERAS_BACKEND is read once per process)."""
    with _lock:
        backend = os.environ.setdefault("KERAS_BACKEND", BACKEND)
        if backend not in BACKENDS:
            raise RuntimeError(f"KERAS_BACKEND={backend!r}: Keras runs here on {' or '.join(BACKENDS)}")
        if backend == "jax":
            cpu.apply_to_xla()
        import keras

        if backend == "jax" and (cache := compilation_cache_dir()) is not None:
            import jax

            jax.config.update("jax_compilation_cache_dir", str(cache))
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)  # building the model compiles small ops

        if keras.backend.backend() != backend:
            raise RuntimeError(f"Keras was imported on the {keras.backend.backend()} backend before KERAS_BACKEND="
                               f"{backend} was set; start a new process")
        return keras


@dataclass(frozen=True)
class KerasSettings:
    """What a Keras run takes from PyTorch instead of Keras' own defaults (None / False: Keras' own)."""
    torch_init: bool = False  # PyTorch's initial weights copied in, instead of glorot_uniform kernels and zero biases
    bn_momentum: float | None = None  # in Keras' convention: the weight of the old running value
    bn_eps: float | None = None
    adam_eps: float | None = None
    logits: bool = False  # Dense(10) outputs logits and the loss takes from_logits=True


def keras_settings(config: TrainConfig) -> KerasSettings:
    """The settings of a Keras run, from config.keras_defaults; PyTorch's values are read from live objects."""
    matched = keras_matched(config.keras_defaults)
    bn = nn.BatchNorm1d(1)
    return KerasSettings(torch_init="init" in matched,
                         bn_momentum=1 - bn.momentum if "bn_momentum" in matched else None,  # 0.1 new = 0.9 old
                         bn_eps=bn.eps if "bn_eps" in matched else None,
                         adam_eps=config.eps if "adam_eps" in matched else None,
                         logits="logits" in matched)


def torch_bn_options(config: TrainConfig) -> dict[str, float]:
    """BatchNorm1d eps and momentum (PyTorch's convention) of the MLP that holds a run's weights: a Keras run's
    BN normalises with its own epsilon, so the converted model must too."""
    if config.framework != "keras":
        return {}
    s = keras_settings(config)
    return {"bn_eps": KERAS_BN_EPS if s.bn_eps is None else s.bn_eps,
            "bn_momentum": 1 - (KERAS_BN_MOMENTUM if s.bn_momentum is None else s.bn_momentum)}


def keras_mlp(hidden: tuple[int, ...] = course.HIDDEN, batch_norm: bool = False,
              settings: KerasSettings = KerasSettings(), seed: int = 0, outputs: int = 10,
              input_shape: tuple[int, int] = (28, 28)) -> "keras.Model":
    """The course's Keras model, built. The class is defined here because Keras loads only now."""
    keras = load_keras()
    from keras import layers, ops

    bn_options = {k: v for k, v in (("momentum", settings.bn_momentum), ("epsilon", settings.bn_eps)) if v is not None}

    class CourseModel(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            seeds = keras.random.SeedGenerator(seed)  # Keras' default initializer, seeded by the run's seed
            self.flatten = layers.Flatten()
            self.rescale = layers.Rescaling(1 / 127.5, offset=-1)  # pixels 0..255 -> [-1, 1]
            self.dense = [layers.Dense(h, kernel_initializer=keras.initializers.GlorotUniform(seeds)) for h in hidden]
            self.norm = [layers.BatchNormalization(**bn_options) for _ in hidden] if batch_norm else []
            # One softmax, at the output; SparseCategoricalCrossentropy() then expects probabilities.
            self.out = layers.Dense(outputs, activation=None if settings.logits else "softmax",
                                    kernel_initializer=keras.initializers.GlorotUniform(seeds))

        def call(self, x, training=False):
            x = self.rescale(self.flatten(x))
            for i, dense in enumerate(self.dense):
                x = dense(x)
                if self.norm:
                    x = self.norm[i](x, training=training)  # batch statistics in training, moving averages else
                x = ops.relu(x)
            return self.out(x)

    model = CourseModel()
    model(np.zeros((1, *input_shape), dtype=np.uint8))  # creates the weights (a subclassed model builds on first call)
    return model


def compile_course_model(model: "keras.Model", config: TrainConfig, settings: KerasSettings) -> None:
    """Adam(learning_rate=0.001) and SparseCategoricalCrossentropy(), as the course compiles it."""
    keras = load_keras()
    adam = {"learning_rate": config.lr, "beta_1": config.beta1, "beta_2": config.beta2}
    optimizer = (keras.optimizers.Adam(**adam) if settings.adam_eps is None
                 else torch_style_adam(epsilon=settings.adam_eps, **adam))
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=settings.logits),
                  metrics=["accuracy"])


def torch_style_adam(**kwargs) -> "keras.optimizers.Optimizer":
    """Keras' Adam with PyTorch's update: epsilon added after the bias correction of the squared-gradient average.

    Keras adds epsilon to sqrt(v) before correcting for v's start at zero, which makes its epsilon act like
    epsilon / sqrt(1 - beta_2^t) in PyTorch's formula: 31.6 times larger at step 1. Matching the value alone
    leaves most first-step updates of this network different (gradients of 1e-7 are common)."""
    keras = load_keras()
    from keras import ops

    class TorchStyleAdam(keras.optimizers.Adam):
        def update_step(self, gradient, variable, learning_rate):
            dtype = variable.dtype
            lr, g = ops.cast(learning_rate, dtype), ops.cast(gradient, dtype)
            t = ops.cast(self.iterations + 1, dtype)
            # 1 - beta^t as PyTorch gets it in double precision: 0.999 has no exact float32, and 1 - 0.999^t in
            # float32 is off by 1e-5; exp(t log beta) with the logarithm taken in Python loses nothing.
            correction1 = -ops.expm1(t * math.log(self.beta_1))
            correction2 = -ops.expm1(t * math.log(self.beta_2))
            m = self._momentums[self._get_variable_index(variable)]
            v = self._velocities[self._get_variable_index(variable)]
            self.assign_add(m, ops.multiply(ops.subtract(g, m), 1 - self.beta_1))
            self.assign_add(v, ops.multiply(ops.subtract(ops.square(g), v), 1 - self.beta_2))
            # PyTorch: p -= lr / (1 - beta_1^t) * m / (sqrt(v) / sqrt(1 - beta_2^t) + epsilon)
            denominator = ops.add(ops.divide(ops.sqrt(v), ops.sqrt(correction2)), self.epsilon)
            self.assign_sub(variable, ops.divide(ops.multiply(m, lr / correction1), denominator))

    return TorchStyleAdam(**kwargs)


def build_keras_model(config: TrainConfig) -> "keras.Model":
    """The compiled Keras model of a run; with torch_init, PyTorch's initial weights for the same seed."""
    from core.engine.data import dataset_spec
    from core.engine.models import build_model

    spec, settings = dataset_spec(config.dataset), keras_settings(config)
    model = keras_mlp(config.hidden, config.batch_norm, settings, config.seed, spec.num_classes, spec.input_shape)
    if settings.torch_init:
        twin = build_model(replace(config, framework="pytorch"))  # the PyTorch twin's initial weights
        copy_torch_weights(twin.state_dict(), model)
    compile_course_model(model, config, settings)
    return model


# --- weights between the two frameworks ------------------------------------------------------------
def _layers(model: "keras.Model") -> list[tuple[str, Any, bool]]:
    """(PyTorch MLP name prefix, Keras layer, is it a Dense layer) in order."""
    pairs = []
    for i, dense in enumerate(model.dense):
        pairs.append((f"blocks.{i}.0", dense, True))
        if model.norm:
            pairs.append((f"blocks.{i}.1", model.norm[i], False))
    return pairs + [("out", model.out, True)]


def torch_state_dict(model: "keras.Model", steps: int = 0) -> dict[str, torch.Tensor]:
    """A Keras model's weights under the PyTorch MLP's state-dict names (float32, contiguous)."""
    from keras import ops

    def t(v) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(ops.convert_to_numpy(v), dtype=np.float32))

    state: dict[str, torch.Tensor] = {}
    for name, layer, dense in _layers(model):
        if dense:
            state[f"{name}.weight"] = t(layer.kernel).T.contiguous()  # Dense (in, out) -> Linear (out, in)
            state[f"{name}.bias"] = t(layer.bias)
        else:
            state.update({f"{name}.weight": t(layer.gamma), f"{name}.bias": t(layer.beta),
                          f"{name}.running_mean": t(layer.moving_mean), f"{name}.running_var": t(layer.moving_variance),
                          f"{name}.num_batches_tracked": torch.tensor(steps, dtype=torch.long)})
    return state


def copy_torch_weights(state: dict[str, torch.Tensor], model: "keras.Model") -> None:
    """PyTorch MLP weights (state-dict names) into the Keras model: the reverse of torch_state_dict."""
    def a(name: str) -> np.ndarray:
        return state[name].detach().cpu().numpy()

    for name, layer, dense in _layers(model):
        if dense:
            layer.kernel.assign(a(f"{name}.weight").T)
            layer.bias.assign(a(f"{name}.bias"))
        else:
            layer.gamma.assign(a(f"{name}.weight"))
            layer.beta.assign(a(f"{name}.bias"))
            layer.moving_mean.assign(a(f"{name}.running_mean"))
            layer.moving_variance.assign(a(f"{name}.running_var"))
