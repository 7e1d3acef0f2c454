"""One epoch, evaluation, and the background Trainer that publishes snapshots."""
from __future__ import annotations

import ctypes
import math
import threading
import time
from collections import deque
from dataclasses import replace
from typing import Protocol

import torch
from torch import nn
from torch.nn import functional as F

from core.engine import cpu
from core.engine.augment import robust_batches
from core.engine.config import TrainConfig
from core.engine.cuda_graph import GraphedStep
from core.engine.data import MEAN, STD, Dataset, iterate_batches, load_dataset, num_batches
from core.engine.models import MLP, build_model
from core.engine.optimizers import build_optimizer
from core.engine.snapshot import EpochMetrics, RunSnapshot

EVAL_BATCH = 1000  # evaluation batch size: eval mode makes the result independent of it


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.inference_mode()
def evaluate(model: nn.Module, x_uint8: torch.Tensor, y: torch.Tensor, batch_size: int = EVAL_BATCH,
             mean: float = MEAN, std: float = STD) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over a whole split, in eval mode (BN uses running statistics)."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=y.device)
    correct = torch.zeros((), dtype=torch.long, device=y.device)
    for xb, yb in iterate_batches(x_uint8, y, batch_size, mean=mean, std=std):
        out = model(xb)  # (B, 10)
        loss_sum += F.cross_entropy(out, yb, reduction="sum")
        correct += (out.argmax(1) == yb).sum()
    model.train(was_training)
    n = len(y)
    return loss_sum.item() / n, correct.item() / n


class RunListener(Protocol):
    """What the trainer tells the run store; called from the training thread."""

    def on_status(self, snap: RunSnapshot) -> None: ...
    def on_steps(self, steps: list[tuple[int, float]]) -> None: ...
    def on_epoch_end(self, snap: RunSnapshot, model: MLP) -> None: ...
    def on_end(self, snap: RunSnapshot, model: MLP | None) -> None: ...


class StepProbe(Protocol):
    """Looks inside the network while it trains (the BatchNorm lab); called in the training thread."""

    def attach(self, model: MLP) -> None: ...  # once, before the first step: register forward hooks
    def wants(self, step: int) -> bool: ...  # whether it looks at `step` (1-based): that step runs eagerly
    def before_step(self, step: int) -> None: ...  # before the forward pass of `step`
    def after_backward(self, step: int, model: MLP) -> None: ...  # gradients are there, not yet applied
    def to_dict(self) -> dict: ...  # what it recorded, JSON-ready (saved as probes.json)


def _return_freed_memory() -> None:
    """Hand the memory of a freed model back to the system. glibc keeps freed blocks in its arenas, so without
    this a server's RSS grew by about 13 MB per 2000x2000 run started and stopped, although nothing leaked
    (benchmarks/soak_memory.py). No-op where the C library has no malloc_trim."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # TypeError: Windows cannot open the process itself
        pass


class _StoppedWhileQueued(Exception):
    pass


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


class Trainer:
    """Trains one TrainConfig in a background thread. Never touches UI code.

    Read `snapshot` from any thread: it is an immutable RunSnapshot swapped in under a lock.
    pause(), resume() and stop() take effect within one batch.
    """

    def __init__(self, config: TrainConfig, data_dir: str | None = None, device: torch.device | None = None,
                 listener: RunListener | None = None, log_every: int = 10, probe: StepProbe | None = None,
                 after: "Trainer | None" = None, keep_model: bool = True, cuda_graph: bool = True) -> None:
        config.validate()
        self.cuda_graph = cuda_graph  # on a CUDA device, replay the training step as a CUDA graph
        self.config, self.data_dir, self.listener = config, data_dir, listener
        self.device = device or default_device()
        self.log_every, self.probe = log_every, probe
        self.after = after  # queued behind this trainer: one run at a time keeps both cores for it
        self.model: MLP | None = None
        self.keep_model = keep_model  # False: drop the model when the run ends (its weights are on disk)
        self._lock = threading.Lock()
        self._snap = RunSnapshot(epochs=config.epochs, device=str(self.device))
        self._stop = threading.Event()
        self._end: tuple[str, str | None] = ("stopped", None)  # final status and message when stopped
        self._resume = threading.Event()
        self._resume.set()
        self._thread = threading.Thread(target=self._run, name="trainer", daemon=True)

    # --- control, from any thread -------------------------------------------------------
    @property
    def snapshot(self) -> RunSnapshot:
        with self._lock:
            return self._snap

    def start(self) -> "Trainer":
        self._thread.start()
        return self

    def pause(self) -> None:
        if self.snapshot.status == "running":
            self._resume.clear()

    def resume(self) -> None:
        self._resume.set()

    def stop(self, status: str = "stopped", reason: str | None = None) -> None:
        """End the run within one batch; its final status is `status` ("stopped", or "pruned" by a tuning
        study, "diverged"), with `reason` as its message."""
        self._end = (status, reason)
        self._stop.set()
        self._resume.set()  # a paused run must wake up to stop

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # --- the training thread ------------------------------------------------------------
    def _publish(self, **changes) -> RunSnapshot:
        with self._lock:
            self._snap = replace(self._snap, **changes)
            return self._snap

    def _set_status(self, status: str, error: str | None = None) -> None:
        snap = self._publish(status=status, error=error)
        if self.listener:
            self.listener.on_status(snap)

    def _run(self) -> None:
        # Adam's moments for dead ReLU units decay into denormal floats (46% of layer 1 after 3 no-BN
        # epochs), which some CPUs process far more slowly: flush them to zero (benchmarks/bench_cpu_effects.py).
        torch.set_flush_denormal(True)
        cpu.use_base_threads()
        try:
            while self.after is not None and self.after.alive and not self._stop.is_set():
                self.after.join(0.2)
            self.after = None  # a chain of queued runs must not keep every earlier trainer alive
            if self._stop.is_set():
                raise _StoppedWhileQueued
            self._set_status("running")
            data = load_dataset(self.config.dataset, self.data_dir)
            self._train(data)
            self._set_status(*self._ended()) if self._stop.is_set() else self._set_status("finished")
        except _StoppedWhileQueued:
            self._set_status(*self._end)
        except Exception as e:  # the thread must never die silently
            self._set_status("failed", self._kept(f"{type(e).__name__}: {e}"))
        if self.listener:
            try:
                self.listener.on_end(self.snapshot, self.model)
            except Exception as e:
                self._publish(status="failed", error=f"saving the end of the run failed: {type(e).__name__}: {e}")
        if not self.keep_model:
            self.model = None
            _return_freed_memory()

    def _ended(self) -> tuple[str, str | None]:
        status, reason = self._end
        return status, self._kept(reason)

    def _kept(self, reason: str | None) -> str | None:
        """A run that ends during an epoch keeps the previous epoch's weights and numbers: say so."""
        snap = self.snapshot
        if snap.epoch_step == 0 or snap.epoch >= snap.epochs:
            return reason
        done = snap.epoch
        kept = (f"ended during epoch {done + 1} (step {snap.epoch_step} of {snap.steps_per_epoch}): "
                + (f"its weights and numbers are those of epoch {done}, the last completed one" if done else
                   "no epoch was completed, so it has no weights"))
        return f"{reason}; {kept}" if reason else kept[0].upper() + kept[1:]

    def _train(self, data: Dataset) -> None:
        cfg, dev = self.config, self.device
        if cfg.framework == "keras":  # Keras' own fit; Keras and its backend load only now
            from core.engine.keras_trainer import train_keras

            return train_keras(self, data)
        train_x, train_y = data.train_x.to(dev), data.train_y.to(dev)
        test_x, test_y = data.test_x.to(dev), data.test_y.to(dev)
        model = self.model = build_model(cfg).to(dev)
        if self.probe:
            self.probe.attach(model)
        opt = build_optimizer(model.parameters(), cfg)
        # Mixed precision: thread-local, so other threads (and evaluation) stay in float32. A CUDA graph
        # cannot replay autocast's cache of cast weights: it is switched off there.
        amp = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16",
                             cache_enabled=dev.type != "cuda")
        # Minibatch order: same seed, same order (on a GPU the shuffling runs there, from its own generator).
        gen = torch.Generator(device=dev if dev.type == "cuda" else "cpu").manual_seed(cfg.seed)
        steps_per_epoch = num_batches(len(train_x), cfg.batch_size, cfg.max_batches)
        probe = self.probe

        def train_step(xb: torch.Tensor, yb: torch.Tensor, probe_step: int | None = None):
            if probe_step:
                probe.before_step(probe_step)
            with amp:
                out = model(xb)  # (B, classes)
                loss = F.cross_entropy(out, yb)  # autocast computes it in float32
            opt.zero_grad()
            loss.backward()
            if probe_step:
                probe.after_backward(probe_step, model)
            opt.step()
            return loss, out

        # On a GPU the step is launch-bound: capture it once as a CUDA graph (core/engine/cuda_graph.py).
        graphed = GraphedStep(train_step) if dev.type == "cuda" and self.cuda_graph else None
        self._publish(steps_per_epoch=steps_per_epoch, threads=torch.get_num_threads(),
                      engine="eager" if graphed is None else graphed.path)
        step, elapsed, step_losses, history = 0, 0.0, [], []
        throughput = Throughput()
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            t0, paused = time.perf_counter(), 0.0  # pauses do not count as training time
            w0 = t0  # start of this logging window
            loss_sum, correct, seen = 0.0, 0, 0
            losses, preds, labels = [], [], []  # this logging window's steps, read out every log_every steps
            if cfg.robust:  # the same minibatches, each image redrawn, turned, slanted, stretched (augment.py)
                batches = robust_batches(train_x, train_y, cfg.batch_size, gen, cfg.max_batches, data.spec.mean,
                                         data.spec.std, cfg.seed, epoch)
            else:
                batches = iterate_batches(train_x, train_y, cfg.batch_size, gen, cfg.max_batches, data.spec.mean, data.spec.std)
            for i, (xb, yb) in enumerate(batches, start=1):
                if not self._resume.is_set():
                    p0 = time.perf_counter()
                    self._set_status("paused")
                    self._resume.wait()
                    paused += time.perf_counter() - p0
                    w0 += time.perf_counter() - p0
                    if not self._stop.is_set():
                        self._set_status("running")
                if self._stop.is_set():
                    break
                looked_at = probe is not None and probe.wants(step + 1)
                if graphed is not None and not looked_at:
                    loss, pred = graphed(xb, yb)
                else:  # probe steps run eagerly: Python hooks do not run on a graph's replay
                    loss, out = train_step(xb, yb, step + 1 if looked_at else None)
                    loss, pred = loss.detach(), out.argmax(1)
                step, seen = step + 1, seen + len(yb)
                losses.append(loss)
                preds.append(pred)
                labels.append(yb)
                if i % self.log_every == 0 or i == steps_per_epoch:
                    # The window's losses and its count of correct predictions in one transfer: the only
                    # point where a GPU's queue is waited for, once per window, never per step.
                    hits = (torch.cat(preds) == torch.cat(labels)).sum().float()
                    *window, hits = torch.cat([torch.stack(losses).float(), hits[None]]).tolist()
                    if not all(map(math.isfinite, window)):  # checked here: no extra sync per step
                        self._diverged(window, step, epoch, i, len(labels))
                        break
                    loss_sum += sum(v * len(y) for v, y in zip(window, labels))
                    correct += int(hits)
                    window_samples = sum(len(y) for y in labels)
                    losses, preds, labels = [], [], []
                    entry = (step, sum(window) / len(window))
                    step_losses.append(entry)
                    now = time.perf_counter()
                    busy = now - t0 - paused
                    recent = throughput.add(window_samples, now - w0)
                    w0 = now
                    self._publish(step=step, epoch_step=i, step_losses=tuple(step_losses), elapsed=elapsed + busy,
                                  samples_per_sec=seen / max(busy, 1e-9), recent_samples_per_sec=recent,
                                  peak_samples_per_sec=throughput.peak, threads=torch.get_num_threads(),
                                  engine="eager" if graphed is None else graphed.path)
                    if self.listener:
                        self.listener.on_steps([entry])
            if self._stop.is_set():
                break
            test_loss, test_acc = evaluate(model, test_x, test_y, EVAL_BATCH if dev.type == "cpu" else len(test_y),
                                           mean=data.spec.mean, std=data.spec.std)  # a GPU takes the split at once
            seconds = time.perf_counter() - t0 - paused
            elapsed += seconds
            history.append(EpochMetrics(epoch, loss_sum / seen, correct / seen, test_loss, test_acc, seconds))
            done = dict(epoch=epoch, step=step, epoch_step=0, history=tuple(history), elapsed=elapsed)
            if self.listener:  # saved before it is shown: no reader sees an epoch whose weights are not on disk
                self.listener.on_epoch_end(replace(self.snapshot, **done), model)
            self._publish(**done)

    def _diverged(self, window: list[float], step: int, epoch: int, epoch_step: int, n: int) -> None:
        """Stop as "diverged" at the first non-finite loss of the logging window that ended at `step`."""
        k = next(j for j, v in enumerate(window) if not math.isfinite(v))
        at = step - n + k + 1
        self._publish(step=at, epoch_step=epoch_step - n + k + 1)  # the step that produced it was taken
        self.stop("diverged", f"the training loss became {window[k]} at step {at} (epoch {epoch}): the "
                              f"optimizer's steps grew too large (learning rate {self.config.lr:g})")
