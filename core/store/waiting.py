"""Where a queued run stands: its place in the queue and when it should start, from this machine's measured pace.

The runs ahead of it start in the scheduler's fair order (core/store/scheduler.py) as a slot and enough of the
training memory free (the head of the queue is never passed). Each run's length is what its own pace says is left
(a run that trains) or the estimate of core/store/pace.py for its settings (a waiting run), at full speed; when more
runs train at once than the executor has cores for, they share them and each goes that much slower (in a class
with TRAIN_SLOTS above the cores, four batch-60,000 runs on two cores took twice as long each: without this the
estimate was 5.45x too short, benchmarks/README.md). Runs chained `after` another are not modelled."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from core.engine.config import memory_estimate
from core.store.pace import estimate
from core.store.runs import RunStore


@dataclass(frozen=True)
class Wait:
    position: int  # 1: next to start
    of: int  # runs waiting in all
    seconds: float  # until it should start

    def describe(self) -> str:
        if math.isinf(self.seconds):
            when = "when memory frees (no end in sight: a paused run holds it)"
        else:
            when = "within seconds" if self.seconds < 5 else (f"in about {self.seconds:.0f} s" if self.seconds < 90 else
                                                               f"in about {self.seconds / 60:.0f} min")
        return f"waiting for a slot: {_ordinal(self.position)} of {self.of} in the queue, starts {when}"


def start_times(training: Sequence[tuple[float, int]], queued: Sequence[tuple[float, int]], slots: int,
                memory_total: int, cores: int, held: int = 0) -> list[float]:
    """When each queued run starts, in seconds from now. `training`: (seconds of work left at full speed, memory)
    of the runs holding a slot; `queued`: (seconds at full speed, memory) in the order they start; `held`: memory of
    paused runs (held, never freed here). Runs progress at min(1, cores / runs training) of full speed."""
    active = [[left, mem] for left, mem in training]
    now, starts, queue = 0.0, [], list(queued)
    while queue:
        while queue and len(active) < slots and held + sum(m for _, m in active) + queue[0][1] <= memory_total:
            active.append(list(queue.pop(0)))
            starts.append(now)
        if not queue:
            break
        if not active:  # the head can never fit while paused runs hold their memory
            return starts + [math.inf] * len(queue)
        speed = min(1.0, cores / len(active))
        step = min(left for left, _ in active) / speed
        now += step
        active = [[left - step * speed, mem] for left, mem in active if left - step * speed > 1e-9]
    return starts


def queue_waits(store: RunStore) -> dict[str, Wait]:
    """Each waiting run's place and expected start, by run id."""
    queue = store.queue()
    if not queue:
        return {}
    runs, limits = store.list(), store.limits
    cores = max(1, store.executor.capacity() or limits.slots)
    waiting = {q.id for q in queue}
    live = [r for r in store.live_runs() if r.id not in waiting]
    training = sorted((r for r in live if r.snapshot.status == "running"), key=lambda r: r.created)
    held = sum(memory_estimate(r.config).total for r in live if r.snapshot.status == "paused")
    now_speed = min(1.0, cores / max(1, len(training)))  # a training run's time left is at today's sharing

    def left(r) -> float:
        s = r.snapshot.seconds_left
        return (s if s is not None else estimate(runs, [r.config]).seconds) * now_speed
    starts = start_times([(left(r), memory_estimate(r.config).total) for r in training],
                         [(estimate(runs, [r.config]).seconds, memory_estimate(r.config).total) for r in queue],
                         limits.slots, limits.memory_total, cores, held)
    return {r.id: Wait(i, len(queue), t) for i, (r, t) in enumerate(zip(queue, starts), start=1)}


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"
