"""The Trainer: one run trained in a background thread of this process, by the backend of its framework.

What a run publishes and how it is paused or stopped is run control's (core/engine/control.py); what computes the
steps is a backend's (core/engine/backends.py); this is the thread around them, the in-process executor's unit
(core/engine/executor.py).
"""
from __future__ import annotations

import ctypes
import threading

import torch

from core.engine import cpu
from core.engine.backends import backend_for
from core.engine.config import TrainConfig
from core.engine.control import RunControl, RunListener, StepProbe
from core.engine.data import Dataset, load_dataset
from core.engine.models import MLP
from core.engine.snapshot import RunSnapshot
from core.engine.torch_loop import default_device


def _return_freed_memory() -> None:
    """Hand the memory of a freed model back to the system. glibc keeps freed blocks in its arenas, so without
    this a server's RSS grew by about 13 MB per 2000x2000 run started and stopped, although nothing leaked
    (benchmarks/soak_memory.py). No-op where the C library has no malloc_trim."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # TypeError: Windows cannot open the process itself
        pass


class Trainer:
    """Trains one TrainConfig in a background thread. Never touches UI code.

    Read `snapshot` from any thread: it is an immutable RunSnapshot swapped in under a lock.
    pause(), resume() and stop() take effect within one batch.
    """

    def __init__(self, config: TrainConfig, data_dir: str | None = None, device: torch.device | None = None,
                 listener: RunListener | None = None, log_every: int = 10, probe: StepProbe | None = None,
                 after: "Trainer | None" = None, keep_model: bool = True, cuda_graph: bool = True,
                 data: Dataset | None = None) -> None:
        config.validate()
        self.data = data  # the dataset when the caller holds it (a Ray actor gets it from the object store)
        self.cuda_graph = cuda_graph  # on a CUDA device, replay the training step as a CUDA graph
        self.config, self.data_dir, self.listener = config, data_dir, listener
        self.device = device or default_device()
        self.probe = probe
        self.after = after  # queued behind this trainer
        self.model: MLP | None = None
        self.keep_model = keep_model  # False: drop the model when the run ends (its weights are on disk)
        self.control = RunControl(config.epochs, str(self.device), listener, log_every, config.lr)
        self._thread = threading.Thread(target=self._run, name="trainer", daemon=True)

    # --- control, from any thread -------------------------------------------------------
    @property
    def snapshot(self) -> RunSnapshot:
        return self.control.snapshot

    def start(self) -> "Trainer":
        self._thread.start()
        return self

    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def stop(self, status: str = "stopped", reason: str | None = None) -> None:
        self.control.stop(status, reason)

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # --- the training thread ------------------------------------------------------------
    def _run(self) -> None:
        # Adam's moments for dead ReLU units decay into denormal floats (46% of layer 1 after 3 no-BN
        # epochs), which some CPUs process far more slowly: flush them to zero (benchmarks/bench_cpu_effects.py).
        torch.set_flush_denormal(True)
        cpu.use_base_threads()
        control, error = self.control, None
        try:
            while self.after is not None and self.after.alive and not control.stopping:
                self.after.join(0.2)
            self.after = None  # a chain of queued runs must not keep every earlier trainer alive
            if not control.stopping:
                control.set_status("running")
                data = self.data if self.data is not None else load_dataset(self.config.dataset, self.data_dir)
                self.data = None  # the run holds its tensors while it trains, not after
                self.model = backend_for(self.config).train(control, self.config, data, self.device, self.probe,
                                                            self.cuda_graph)
        except Exception as e:  # the thread must never die silently
            error = e
        control.finish(error)
        if self.listener:
            try:
                self.listener.on_end(self.snapshot, self.model)
            except Exception as e:
                control.publish(status="failed", error=f"saving the end of the run failed: {type(e).__name__}: {e}")
        if not self.keep_model:
            self.model = None
            _return_freed_memory()
