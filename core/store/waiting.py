"""Where a queued run stands: its place in the queue and when it should start, from this machine's measured pace.

The runs ahead of it start as slots free, in the scheduler's fair order (core/store/scheduler.py); each slot frees
when its run's estimated time is up (a run that trains: what its own pace says is left; a waiting run: the estimate
of core/store/pace.py for its settings)."""
from __future__ import annotations

import heapq
from dataclasses import dataclass

from core.store.pace import estimate
from core.store.runs import RunStore


@dataclass(frozen=True)
class Wait:
    position: int  # 1: next to start
    of: int  # runs waiting in all
    seconds: float  # until it should start

    def describe(self) -> str:
        when = "within seconds" if self.seconds < 5 else (f"in about {self.seconds:.0f} s" if self.seconds < 90 else
                                                           f"in about {self.seconds / 60:.0f} min")
        return f"waiting for a slot: {_ordinal(self.position)} of {self.of} in the queue, starts {when}"


def queue_waits(store: RunStore) -> dict[str, Wait]:
    """Each waiting run's place and expected start, by run id."""
    queue = store.queue()
    if not queue:
        return {}
    runs = store.list()
    slots = [0.0] * store.limits.slots
    training = [r for r in store.live_runs() if r.snapshot.status in ("running", "paused") and r.id not in
                {q.id for q in queue}]
    for i, r in enumerate(sorted(training, key=lambda r: r.created)[:len(slots)]):
        left = r.snapshot.seconds_left
        slots[i] = left if left is not None else estimate(runs, [r.config]).seconds
    heapq.heapify(slots)
    waits = {}
    for position, r in enumerate(queue, start=1):
        start = heapq.heappop(slots)
        waits[r.id] = Wait(position, len(queue), start)
        heapq.heappush(slots, start + estimate(runs, [r.config]).seconds)
    return waits


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"
