"""A Keras run inside the Trainer's thread: Keras' own `fit`, tied to the Trainer by one callback.

The callback (`FitBridge`) does for `fit` what the PyTorch loop in core/engine/trainer.py does inline:
it publishes step losses, epoch metrics and samples/s as RunSnapshots, waits while the run is paused,
ends the run within one batch when it is stopped, and hands the run store the weights, converted to the
PyTorch MLP (core/engine/keras_model.py), at every epoch end. Batches come in the order the PyTorch trainer
draws for the same seed, so a Keras run and a PyTorch run with the same seed see the same minibatches.
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch

from core.engine import cpu
from core.engine.data import Dataset, num_batches
from core.engine.keras_model import build_keras_model, load_keras, torch_state_dict
from core.engine.models import MLP, build_model
from core.engine.snapshot import EpochMetrics

if TYPE_CHECKING:
    import keras

    from core.engine.trainer import Trainer

EVAL_BATCH = 1000  # as the PyTorch trainer evaluates; in inference mode the result does not depend on it


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
    """Keras callback hooks (wired through keras.callbacks.LambdaCallback) that report to a Trainer."""

    def __init__(self, trainer: "Trainer", keras_model: "keras.Model", sizes: list[int]) -> None:
        from core.engine.trainer import Throughput

        self.trainer, self.model, self.sizes = trainer, keras_model, sizes
        self.step, self.elapsed, self.history = 0, 0.0, []
        self.step_losses: list[tuple[int, float]] = []
        self.throughput = Throughput()
        self.mlp: MLP | None = None  # the weights converted at the last epoch end

    def hooks(self) -> dict:
        return {"on_epoch_begin": self.on_epoch_begin, "on_train_batch_begin": self.on_train_batch_begin,
                "on_train_batch_end": self.on_train_batch_end, "on_test_batch_begin": self.on_test_batch_begin,
                "on_epoch_end": self.on_epoch_end}

    @property
    def stopping(self) -> bool:
        return self.trainer._stop.is_set()

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.epoch = epoch + 1
        self.t0 = self.w0 = time.perf_counter()
        self.paused, self.total, self.seen, self.window = 0.0, 0.0, 0, []

    def on_train_batch_begin(self, batch: int, logs=None) -> None:
        t = self.trainer
        if not t._resume.is_set():
            p0 = time.perf_counter()
            t._set_status("paused")
            t._resume.wait()
            self.paused += time.perf_counter() - p0
            self.w0 += time.perf_counter() - p0
            if not self.stopping:
                t._set_status("running")

    def on_train_batch_end(self, batch: int, logs: dict) -> None:
        # logs["loss"] is Keras' running mean over the epoch so far: this batch's loss is the difference of totals.
        i, size = batch + 1, self.sizes[batch]
        total = logs["loss"] * (self.seen + size)
        self.window.append((total - self.total) / size)
        self.total, self.seen, self.step = total, self.seen + size, self.step + 1
        if i % self.trainer.log_every == 0 or i == len(self.sizes):
            self._publish_window(i)
        if self.stopping:
            self.model.stop_training = True  # fit ends after this batch

    def _publish_window(self, i: int) -> None:
        if not all(map(math.isfinite, self.window)):  # as the PyTorch trainer: stop as "diverged", naming the step
            self.trainer._diverged(self.window, self.step, self.epoch, i, len(self.window))
            self.model.stop_training = True
            return
        entry = (self.step, sum(self.window) / len(self.window))
        self.step_losses.append(entry)
        now = time.perf_counter()
        busy = now - self.t0 - self.paused
        recent = self.throughput.add(sum(self.sizes[i - len(self.window):i]), now - self.w0)
        self.w0, self.window = now, []
        self.trainer._publish(step=self.step, epoch_step=i, step_losses=tuple(self.step_losses),
                              elapsed=self.elapsed + busy, samples_per_sec=self.seen / max(busy, 1e-9),
                              recent_samples_per_sec=recent, peak_samples_per_sec=self.throughput.peak)
        if self.trainer.listener:
            self.trainer.listener.on_steps([entry])

    def on_test_batch_begin(self, batch: int, logs=None) -> None:
        if self.stopping:
            self.model.stop_evaluating = True  # a stopped run does not finish its epoch's evaluation

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.stopping:  # the epoch is incomplete: not recorded, as in the PyTorch trainer
            self.model.stop_training = True
            return
        seconds = time.perf_counter() - self.t0 - self.paused
        self.elapsed += seconds
        self.history.append(EpochMetrics(epoch + 1, logs["loss"], logs["accuracy"], logs["val_loss"],
                                         logs["val_accuracy"], seconds))
        self.mlp = self.trainer.model = converted_mlp(self.trainer.config, self.model, self.step)
        done = dict(epoch=epoch + 1, step=self.step, epoch_step=0, history=tuple(self.history), elapsed=self.elapsed)
        if self.trainer.listener:  # saved before it is shown, as the PyTorch trainer does
            self.trainer.listener.on_epoch_end(replace(self.trainer.snapshot, **done), self.mlp)
        self.trainer._publish(**done)


def converted_mlp(config, keras_model: "keras.Model", steps: int) -> MLP:
    """The PyTorch MLP holding a Keras model's weights (what the run store saves and every page loads)."""
    mlp = build_model(config)
    mlp.load_state_dict(torch_state_dict(keras_model, steps))
    return mlp


def train_keras(trainer: "Trainer", data: Dataset) -> None:
    """Trainer._train for a Keras run: build and compile the course's model, then fit with the bridge."""
    keras = load_keras()
    cfg = trainer.config
    model = build_keras_model(cfg)
    train_x, train_y = data.train_x.numpy(), data.train_y.numpy()
    sizes = batch_sizes(len(train_x), cfg.batch_size, cfg.max_batches)
    threads = 1 if cpu.apply_to_xla().threads == 1 else cpu.max_threads()  # XLA: one thread, or one per core
    trainer._publish(steps_per_epoch=len(sizes), threads=threads, device=_device(keras),
                     engine=f"Keras fit on {keras.backend.backend()}")
    bridge = FitBridge(trainer, model, sizes)
    fit_course_model(model, seeded_batches(train_x, train_y, cfg.batch_size, cfg.seed, cfg.max_batches), len(sizes),
                     cfg.epochs, (data.test_x.numpy(), data.test_y.numpy()),
                     [keras.callbacks.LambdaCallback(**bridge.hooks())])
    # fit has written its state back into the model's variables: keep what a stopped run learned
    trainer.model = converted_mlp(cfg, model, bridge.step)


def _device(keras) -> str:
    """'cpu (keras on jax)': where the Keras backend computes."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return f"{jax.devices()[0].platform} (keras on jax)"
    return f"{'cuda' if torch.cuda.is_available() else 'cpu'} (keras on torch)"
