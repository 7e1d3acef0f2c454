"""Executors: where a run's training happens. The run store hands a run to one and holds the handle it returns.

    inprocess  (default) a background thread of this process per run (core/engine/trainer.py): nothing to install
               or start
    ray        a Ray actor per run, on this machine or a cluster (core/engine/ray_executor.py): RUN_EXECUTOR=ray

Every executor runs the same training code (a backend under run control) and reports through the same listener,
so the run store persists every run alike and no page knows where a run trains. The class scheduler asks an
executor how many runs it can train at once (`capacity`).
"""
from __future__ import annotations

import os
from typing import Protocol

from core.engine.config import TrainConfig
from core.engine.control import RunListener, StepProbe
from core.engine.snapshot import RunSnapshot

ENV = "RUN_EXECUTOR"
EXECUTORS = ("inprocess", "ray")


class RunHandle(Protocol):
    """One launched run, as the run store sees it. Thread-safe."""
    probe: StepProbe | None

    @property
    def snapshot(self) -> RunSnapshot: ...
    @property
    def alive(self) -> bool: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def stop(self, status: str = "stopped", reason: str | None = None) -> None: ...
    def join(self, timeout: float | None = None) -> None: ...


class Executor(Protocol):
    name: str

    def launch(self, config: TrainConfig, listener: RunListener, probe: StepProbe | None = None) -> RunHandle:
        """Start training `config` now; progress goes to `listener` (called from the executor's threads)."""
        ...

    def capacity(self) -> int | None:
        """How many runs it trains at once without them slowing each other down (None: it does not know)."""
        ...

    def close(self) -> None:
        """Release what the executor holds (its runs are stopped by the store first)."""
        ...


class InProcessExecutor:
    """Each run in a background thread of this process."""
    name = "inprocess"

    def __init__(self, data_dir: str | None = None) -> None:
        self.data_dir = data_dir

    def launch(self, config: TrainConfig, listener: RunListener, probe: StepProbe | None = None) -> RunHandle:
        from core.engine.trainer import Trainer

        # keep_model=False: an ended run's model is not kept in memory; the store reads it from disk
        return Trainer(config, data_dir=self.data_dir, listener=listener, probe=probe, keep_model=False).start()

    def capacity(self) -> int | None:
        from core.engine import cpu

        return cpu.max_threads()  # one training thread per core (core/engine/cpu.py: one thread a run)

    def close(self) -> None:
        pass


def executor_name(name: str | None = None) -> str:
    """The executor asked for: `name`, else RUN_EXECUTOR, else inprocess; ValueError naming the setting."""
    value = (name if name is not None else os.environ.get(ENV, "")).strip().lower() or "inprocess"
    if value not in EXECUTORS:
        raise ValueError(f"{ENV}: choose one of {', '.join(EXECUTORS)}; got {value!r}")
    return value


def make_executor(data_dir: str | None = None, name: str | None = None) -> Executor:
    """The executor RUN_EXECUTOR asks for. Ray is imported only when it is asked for."""
    if executor_name(name) == "ray":
        from core.engine.ray_executor import RayExecutor

        return RayExecutor(data_dir=data_dir)
    return InProcessExecutor(data_dir)
