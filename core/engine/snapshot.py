"""Immutable views of a run that any thread may read at any moment."""
from __future__ import annotations

from dataclasses import dataclass

STATUSES = ("queued", "running", "paused", "stopped", "finished", "failed", "diverged", "pruned")
LIVE_STATUSES = ("queued", "running", "paused")


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int  # 1-based
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    seconds: float  # training + evaluation time of this epoch, pauses excluded


@dataclass(frozen=True)
class RunSnapshot:
    status: str = "queued"
    error: str | None = None
    epoch: int = 0  # epochs completed
    epochs: int = 1  # epochs planned
    step: int = 0  # training steps done in all
    epoch_step: int = 0  # steps done in the current epoch
    steps_per_epoch: int = 1
    step_losses: tuple[tuple[int, float], ...] = ()  # (step, mean training loss of the last few steps)
    history: tuple[EpochMetrics, ...] = ()
    elapsed: float = 0.0  # seconds of training, pauses excluded
    samples_per_sec: float = 0.0  # this epoch so far
    recent_samples_per_sec: float = 0.0  # about the last second
    peak_samples_per_sec: float = 0.0  # the best "recent" figure of this run
    device: str = "cpu"
    engine: str = ""  # how the steps run: "eager", "CUDA graph", or why a graph could not be used
    threads: int = 0  # intra-op CPU threads the training loop uses now (0: not started)

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def epoch_progress(self) -> float:
        return min(1.0, self.epoch_step / self.steps_per_epoch) if self.live else (1.0 if self.status == "finished" else 0.0)

    @property
    def run_progress(self) -> float:
        total = self.epochs * self.steps_per_epoch
        return 1.0 if self.status == "finished" else min(1.0, self.step / total)

    @property
    def seconds_left(self) -> float | None:
        """Estimated seconds to the end of the run, from the pace so far."""
        if not self.live or self.step == 0:
            return None
        return self.elapsed * (1 - self.run_progress) / max(self.run_progress, 1e-9)

    @property
    def cpu_contended(self) -> bool:
        """Training runs at under a third of the pace this run already reached: something else has the CPU."""
        return self.status == "running" and 0 < self.recent_samples_per_sec < self.peak_samples_per_sec / 3

    @property
    def final(self) -> EpochMetrics | None:
        return self.history[-1] if self.history else None

    @property
    def best_test_acc(self) -> float | None:
        return max((h.test_acc for h in self.history), default=None)
