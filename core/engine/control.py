"""Run control: what every training backend shares, whatever computes the steps.

A `RunControl` owns one run's published state and its commands:
- the snapshot: an immutable RunSnapshot swapped in under a lock, readable from any thread at any moment;
- pause / resume / stop, which take effect within one batch (`wait_if_paused` and `stopping`, asked before
  each batch by the backend);
- the logging windows: every `log_every` steps the backend hands over the window's losses (`end_window`), and run
  control checks them for divergence, keeps the loss curve and the samples/s figures, and tells the listener;
- the epoch end (`end_epoch`): the listener saves the weights before the epoch is shown.

A backend (the PyTorch loop in core/engine/torch_loop.py, Keras' `fit` in core/engine/keras_trainer.py) calls
only these public methods; the thread or process that runs it is the executor's business (core/engine/executor.py).
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from core.engine.snapshot import EpochMetrics, RunSnapshot

if TYPE_CHECKING:
    from core.engine.models import MLP


class RunListener(Protocol):
    """What run control tells the run store; called from the thread that trains."""

    def on_status(self, snap: RunSnapshot) -> None: ...
    def on_steps(self, steps: list[tuple[int, float]]) -> None: ...
    def on_epoch_end(self, snap: RunSnapshot, model: "MLP") -> None: ...
    def on_end(self, snap: RunSnapshot, model: "MLP | None") -> None: ...


class StepProbe(Protocol):
    """Looks inside the network while it trains (the BatchNorm lab); called in the thread that trains."""

    def attach(self, model: "MLP") -> None: ...  # once, before the first step: register forward hooks
    def wants(self, step: int) -> bool: ...  # whether it looks at `step` (1-based): that step runs eagerly
    def before_step(self, step: int) -> None: ...  # before the forward pass of `step`
    def after_backward(self, step: int, model: "MLP") -> None: ...  # gradients are there, not yet applied
    def to_dict(self) -> dict: ...  # what it recorded, JSON-ready (saved as probes.json)


class Throughput:
    """Training samples per second over about the last `span` seconds, and the best such figure of the run:
    what the Train page compares to say that another program is taking the CPU."""

    def __init__(self, span: float = 1.0) -> None:
        self.span, self.peak = span, 0.0
        self._windows: deque[tuple[int, float]] = deque()  # (samples, seconds) of recent logging windows

    def add(self, samples: int, seconds: float) -> float:
        self._windows.append((samples, seconds))
        while sum(s for _, s in self._windows) - self._windows[0][1] >= self.span:
            self._windows.popleft()
        total = sum(s for _, s in self._windows)
        recent = sum(n for n, _ in self._windows) / max(total, 1e-9)
        if total >= self.span / 2:  # not from one short window
            self.peak = max(self.peak, recent)
        return recent


class RunControl:
    """One run's snapshot, commands and progress bookkeeping (see the module docstring). Thread-safe."""

    def __init__(self, epochs: int, device: str = "cpu", listener: RunListener | None = None, log_every: int = 10,
                 lr: float | None = None) -> None:
        self.listener, self.log_every, self.lr = listener, log_every, lr
        self._lock = threading.Lock()
        self._snap = RunSnapshot(epochs=epochs, device=device)
        self._stop = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self._end: tuple[str, str | None] = ("stopped", None)  # final status and message when stopped
        # progress of the epoch being trained (only the training thread touches these)
        self._step, self._elapsed, self._epoch = 0, 0.0, 0
        self._step_losses: list[tuple[int, float]] = []
        self._history: list[EpochMetrics] = []
        self._throughput = Throughput()
        self._t0 = self._w0 = self._paused = 0.0
        self._seen = 0

    # --- commands, from any thread ---------------------------------------------------------
    @property
    def snapshot(self) -> RunSnapshot:
        with self._lock:
            return self._snap

    def pause(self) -> None:
        if self.snapshot.status == "running":
            self._resume.clear()

    def resume(self) -> None:
        self._resume.set()

    def stop(self, status: str = "stopped", reason: str | None = None) -> None:
        """End the run within one batch; its final status is `status` ("stopped", or "pruned" by a tuning study,
        "diverged"), with `reason` as its message."""
        self._end = (status, reason)
        self._stop.set()
        self._resume.set()  # a paused run must wake up to stop

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # --- publishing, from the training thread -----------------------------------------------
    def publish(self, **changes) -> RunSnapshot:
        with self._lock:
            self._snap = replace(self._snap, **changes)
            return self._snap

    def set_status(self, status: str, error: str | None = None) -> None:
        snap = self.publish(status=status, error=error)
        if self.listener:
            self.listener.on_status(snap)

    def begin(self, steps_per_epoch: int, **facts) -> None:
        """The run starts training: how many steps an epoch has, and facts such as device, engine, threads."""
        self.publish(steps_per_epoch=steps_per_epoch, **facts)

    def begin_epoch(self, epoch: int) -> None:
        self._epoch = epoch
        self._t0 = self._w0 = time.perf_counter()
        self._paused, self._seen = 0.0, 0

    def wait_if_paused(self) -> None:
        """Before each batch: while the run is paused, wait here (pauses do not count as training time)."""
        if self._resume.is_set():
            return
        p0 = time.perf_counter()
        self.set_status("paused")
        self._resume.wait()
        self._paused += time.perf_counter() - p0
        self._w0 += time.perf_counter() - p0
        if not self.stopping:
            self.set_status("running")

    def log_due(self, epoch_step: int) -> bool:
        """Whether the window ends at this step of the epoch (every log_every steps, and at the epoch's last)."""
        return epoch_step % self.log_every == 0 or epoch_step == self.snapshot.steps_per_epoch

    def end_window(self, losses: list[float], samples: int, epoch_step: int, **facts) -> bool:
        """A logging window of len(losses) steps ended at `epoch_step`: one point of the loss curve. False (and the
        run stops as diverged, naming the step) when a loss is not finite."""
        if not all(map(math.isfinite, losses)):
            self._diverged(losses, epoch_step)
            return False
        self._step += len(losses)
        self._seen += samples
        entry = (self._step, sum(losses) / len(losses))
        self._step_losses.append(entry)
        now = time.perf_counter()
        busy = now - self._t0 - self._paused
        recent = self._throughput.add(samples, now - self._w0)
        self._w0 = now
        self.publish(step=self._step, epoch_step=epoch_step, step_losses=tuple(self._step_losses),
                     elapsed=self._elapsed + busy, samples_per_sec=self._seen / max(busy, 1e-9),
                     recent_samples_per_sec=recent, peak_samples_per_sec=self._throughput.peak, **facts)
        if self.listener:
            self.listener.on_steps([entry])
        return True

    def end_epoch(self, train_loss: float, train_acc: float, test_loss: float, test_acc: float, model: "MLP") -> None:
        """The epoch is complete and evaluated: saved (through the listener) before it is shown, so no reader sees
        an epoch whose weights are not on disk."""
        seconds = time.perf_counter() - self._t0 - self._paused
        self._elapsed += seconds
        self._history.append(EpochMetrics(self._epoch, train_loss, train_acc, test_loss, test_acc, seconds))
        done = dict(epoch=self._epoch, step=self._step, epoch_step=0, history=tuple(self._history),
                    elapsed=self._elapsed)
        if self.listener:
            self.listener.on_epoch_end(replace(self.snapshot, **done), model)
        self.publish(**done)

    def _diverged(self, window: list[float], epoch_step: int) -> None:
        """Stop as "diverged" at the first non-finite loss of the window that ended at `epoch_step`."""
        k = next(j for j, v in enumerate(window) if not math.isfinite(v))
        at = self._step + k + 1
        self.publish(step=at, epoch_step=epoch_step - len(window) + k + 1)  # the step that produced it was taken
        lr = f" (learning rate {self.lr:g})" if self.lr is not None else ""
        self.stop("diverged", f"the training loss became {window[k]} at step {at} (epoch {self._epoch}): the "
                              f"optimizer's steps grew too large{lr}")

    # --- the end --------------------------------------------------------------------------------
    def finish(self, error: BaseException | None = None) -> None:
        """Record how the run ended: failed with `error`, as asked by stop(), or finished."""
        if error is not None:
            self.set_status("failed", self.kept(f"{type(error).__name__}: {error}"))
        elif self.stopping:
            status, reason = self._end
            self.set_status(status, self.kept(reason))
        else:
            self.set_status("finished")

    def kept(self, reason: str | None) -> str | None:
        """A run that ends during an epoch keeps the previous epoch's weights and numbers: say so."""
        return kept_message(self.snapshot, reason)


def kept_message(snap: RunSnapshot, reason: str | None) -> str | None:
    """`reason`, and, for a run that ended during an epoch (as `snap` shows it), that it keeps the previous epoch's
    weights and numbers. Also what an executor says when it loses a run's worker (core/engine/ray_executor.py)."""
    if snap.epoch_step == 0 or snap.epoch >= snap.epochs:
        return reason
    done = snap.epoch
    kept = (f"ended during epoch {done + 1} (step {snap.epoch_step} of {snap.steps_per_epoch}): "
            + (f"its weights and numbers are those of epoch {done}, the last completed one" if done else
               "no epoch was completed, so it has no weights"))
    return f"{reason}; {kept}" if reason else kept[0].upper() + kept[1:]
