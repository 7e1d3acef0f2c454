"""The whole training step (forward, loss, backward, optimizer step) as one CUDA graph, replayed per batch.

On a GPU this network is bound by kernel launches, not arithmetic: about 2 ms of Python and launches per
step for microseconds of work. A CUDA graph records the step's kernels once and replays them with one
launch. What that needs, and how it is met here:
- static inputs: each batch is copied into the same two buffers, which the graph reads;
- static shapes: a batch of another size (the last, short batch of an epoch) runs eagerly;
- no host work inside the step: the optimizer must be capturable (FusedAdam keeps its step counter on the
  device; torch.optim optimizers are built with capturable=True where they have it);
- warm-up: the first steps run eagerly on a side stream (real training steps, not throw-away ones), so that
  lazy initialisation (cuBLAS handles, autograd's stream bookkeeping) happens before the capture;
- outputs are overwritten by the next replay: the loss is cloned and the predictions reduced to class ids
  before they are handed back.
Steps that a probe looks into (the BatchNorm lab) run eagerly too: Python hooks do not run on replay.
If the capture fails (an old GPU, an op that cannot be captured), the step stays eager and `path` says why.
"""
from __future__ import annotations

from typing import Callable

import torch

Step = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # (x, y) -> (loss, logits)


class GraphedStep:
    """Runs `step(x, y)` eagerly for the first `warmup` calls, then captures it once for the batch shape
    it sees and replays the capture. `capture=False` replays by calling `step` on the static buffers: the
    same plumbing without CUDA, for tests on machines without a GPU."""

    def __init__(self, step: Step, warmup: int = 3, capture: bool = True) -> None:
        self.step, self.warmup, self.capture = step, warmup, capture
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: tuple[torch.Tensor, ...] | None = None  # x, y, loss, logits
        self.failed: str | None = None  # why the step runs eagerly, when capture failed
        self.replays = 0
        self._side = torch.cuda.Stream() if capture else None

    @property
    def path(self) -> str:
        if self.failed:
            return f"eager (CUDA graph capture failed: {self.failed})"
        return "CUDA graph" if self.static is not None else "eager (warming up)"

    def __call__(self, x: torch.Tensor, y: torch.Tensor, eager: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """One training step; returns (loss, predicted class ids), neither aliased to the graph's buffers."""
        if eager or self.failed or (self.static is not None and x.shape != self.static[0].shape):
            return self._eager(x, y)
        if self.warmup > 0:
            self.warmup -= 1
            return self._eager(x, y, side=self._side)
        if self.static is None:
            try:
                self._record(x, y)
            except Exception as e:  # noqa: BLE001 - any failure means: train eagerly, and say so
                self.failed = f"{type(e).__name__}: {e}"[:300]
                self.graph, self.static = None, None
                return self._eager(x, y)
        sx, sy, loss, out = self.static
        sx.copy_(x, non_blocking=True)
        sy.copy_(y, non_blocking=True)
        if self.graph is not None:
            self.graph.replay()
        else:  # the CPU stand-in: the same buffers, the step called on them
            loss, out = self.step(sx, sy)
        self.replays += 1
        return loss.detach().clone(), out.argmax(1)

    def _eager(self, x: torch.Tensor, y: torch.Tensor, side: torch.cuda.Stream | None = None):
        if side is None:
            loss, out = self.step(x, y)
            return loss.detach(), out.argmax(1)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            loss, out = self.step(x, y)
            result = loss.detach(), out.argmax(1)
        torch.cuda.current_stream().wait_stream(side)
        return result

    def _record(self, x: torch.Tensor, y: torch.Tensor) -> None:
        sx, sy = x.clone(), y.clone()
        if not self.capture:
            self.static = (sx, sy, None, None)
            return
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            loss, out = self.step(sx, sy)  # recorded, not run: the first replay runs it
        self.graph, self.static = graph, (sx, sy, loss, out)
