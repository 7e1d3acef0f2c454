"""The Keras backend: Keras' own `fit`, tied to run control by one callback.

The callback (`FitBridge`) does for `fit` what the PyTorch loop (core/engine/torch_loop.py) does inline, through
the same public run control (core/engine/control.py): it waits while the run is paused, ends the run within one
batch when it is stopped, hands over each logging window's losses, and at every epoch end the weights, converted
to the PyTorch MLP (core/engine/keras_model.py). Batches come in the order the PyTorch loop draws for the same
seed, so a Keras run and a PyTorch run with the same seed see the same minibatches.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch

from core.engine import cpu
from core.engine.control import RunControl
from core.engine.data import Dataset, num_batches
from core.engine.keras_model import build_keras_model, load_keras, torch_bn_options, torch_state_dict
from core.engine.models import MLP, build_model
from core.engine.torch_loop import EVAL_BATCH

if TYPE_CHECKING:
    import keras


def seeded_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int,
                   max_batches: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless (images, labels) batches, epoch after epoch, in the PyTorch trainer's order for `seed`: one
    torch.randperm per epoch from a generator seeded once (core/engine/data.py: iterate_batches)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    steps = num_batches(len(x), batch_size, max_batches)
    while True:
        order = torch.randperm(len(x), generator=gen).numpy()
        for b in range(steps):
            idx = order[b * batch_size:(b + 1) * batch_size]
            yield x[idx], y[idx]


def batch_sizes(n: int, batch_size: int, max_batches: int | None) -> list[int]:
    """Size of each batch of an epoch (the last one may be short)."""
    steps = num_batches(n, batch_size, max_batches)
    used = min(n, steps * batch_size)
    return [batch_size] * (steps - 1) + [used - (steps - 1) * batch_size]


def fit_course_model(model: "keras.Model", batches: Iterator, steps_per_epoch: int, epochs: int,
                     test: tuple[np.ndarray, np.ndarray], callbacks: list) -> None:
    """model.fit as the course calls it (batch 64, the test set as validation data); the batches come from
    `seeded_batches` instead of fit's own shuffling."""
    model.fit(batches, steps_per_epoch=steps_per_epoch, epochs=epochs, validation_data=test,
              validation_batch_size=EVAL_BATCH, callbacks=callbacks, shuffle=False, verbose=0)


class FitBridge:
    """Keras callback hooks (wired through keras.callbacks.LambdaCallback) that report to run control."""

    def __init__(self, control: RunControl, config, keras_model: "keras.Model", sizes: list[int]) -> None:
        self.control, self.config, self.model, self.sizes = control, config, keras_model, sizes
        self.step, self.seen, self.total, self.window = 0, 0, 0.0, []
        self.mlp: MLP | None = None  # the weights converted at the last epoch end

    def hooks(self) -> dict:
        return {"on_epoch_begin": self.on_epoch_begin, "on_train_batch_begin": self.on_train_batch_begin,
                "on_train_batch_end": self.on_train_batch_end, "on_test_batch_begin": self.on_test_batch_begin,
                "on_epoch_end": self.on_epoch_end}

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.control.begin_epoch(epoch + 1)
        self.total, self.seen, self.window = 0.0, 0, []

    def on_train_batch_begin(self, batch: int, logs=None) -> None:
        self.control.wait_if_paused()

    def on_train_batch_end(self, batch: int, logs: dict) -> None:
        # logs["loss"] is Keras' running mean over the epoch so far: this batch's loss is the difference of totals.
        i, size = batch + 1, self.sizes[batch]
        total = logs["loss"] * (self.seen + size)
        self.window.append((total - self.total) / size)
        self.total, self.seen, self.step = total, self.seen + size, self.step + 1
        if self.control.log_due(i):
            samples = sum(self.sizes[i - len(self.window):i])
            ok = self.control.end_window(self.window, samples, i)
            self.window = []
            if not ok:
                self.model.stop_training = True
                return
        if self.control.stopping:
            self.model.stop_training = True  # fit ends after this batch

    def on_test_batch_begin(self, batch: int, logs=None) -> None:
        if self.control.stopping:
            self.model.stop_evaluating = True  # a stopped run does not finish its epoch's evaluation

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.control.stopping:  # the epoch is incomplete: not recorded, as in the PyTorch loop
            self.model.stop_training = True
            return
        self.mlp = converted_mlp(self.config, self.model, self.step)
        self.control.end_epoch(logs["loss"], logs["accuracy"], logs["val_loss"], logs["val_accuracy"], self.mlp)


def converted_mlp(config, keras_model: "keras.Model", steps: int) -> MLP:
    """The PyTorch MLP holding a Keras model's weights (what the run store saves and every page loads)."""
    mlp = build_model(config, **torch_bn_options(config))
    mlp.load_state_dict(torch_state_dict(keras_model, steps))
    return mlp


def train_keras(control: RunControl, config, data: Dataset) -> MLP:
    """Build and compile the course's Keras model, then fit it with the bridge; the PyTorch MLP holding what it
    learned (a stopped run's too: fit has written its state back into the model's variables)."""
    keras = load_keras()
    model = build_keras_model(config)
    train_x, train_y = data.train_x.numpy(), data.train_y.numpy()
    sizes = batch_sizes(len(train_x), config.batch_size, config.max_batches)
    threads = 1 if cpu.apply_to_xla().threads == 1 else cpu.max_threads()  # XLA: one thread, or one per core
    control.begin(len(sizes), threads=threads, device=_device(keras), engine=f"Keras fit on {keras.backend.backend()}")
    bridge = FitBridge(control, config, model, sizes)
    fit_course_model(model, seeded_batches(train_x, train_y, config.batch_size, config.seed, config.max_batches),
                     len(sizes), config.epochs, (data.test_x.numpy(), data.test_y.numpy()),
                     [keras.callbacks.LambdaCallback(**bridge.hooks())])
    return converted_mlp(config, model, bridge.step)


def _device(keras) -> str:
    """'cpu (keras on jax)': where the Keras backend computes."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return f"{jax.devices()[0].platform} (keras on jax)"
    return f"{'cuda' if torch.cuda.is_available() else 'cpu'} (keras on torch)"
