"""Fair admission: which waiting runs start now. One policy for every run the store starts (pages, labs, tuning
trials, scripts), in every mode: a class of 30 learners and one learner starting ten big runs alike.

- At most `slots` runs train at once (TRAIN_SLOTS, default: what the executor can run side by side, one run a core
  here). A paused run gives its slot back; resuming it waits for a free slot, ahead of the queue.
- The memory estimates of the runs in memory (training or paused) stay within `memory_total` (MEMORY_TOTAL, a size
  such as 2G or 1500M; default half of this machine's memory). A run larger than the whole budget is refused.
- The queue is fair across learners: runs wait in rounds, a learner's k-th waiting run (counting the runs they
  already have training) in round k, first come first served within a round. So a learner's second run waits
  behind the other learners' first runs, and nobody's run waits for ever: the head of the queue is never passed
  by a smaller run that fits the memory left (it would starve a big one). A run queued `after` another waits for
  that one to end (the BatchNorm lab trains its twins one at a time) without holding up the others.
- A learner holds at most `per_learner` waiting runs (QUEUE_PER_LEARNER, default 12: the largest lab action, five
  seeds of BN twins, is ten runs).

This module decides; the run store (core/store/runs.py) holds the runs and acts.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

SLOTS_ENV, MEMORY_ENV, QUEUE_ENV = "TRAIN_SLOTS", "MEMORY_TOTAL", "QUEUE_PER_LEARNER"
DEFAULT_PER_LEARNER = 12
EVERYONE = ""  # the owner of runs started without class mode (and of runs saved before owners existed)
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)i?B?\s*", re.IGNORECASE)


class AdmissionError(ValueError):
    """A run the scheduler will not take: larger than the whole memory budget, or one queued run too many."""


@dataclass(frozen=True)
class Job:
    """A run as the scheduler sees it."""
    run_id: str
    owner: str
    memory: int  # bytes its training needs (core/engine/config.py: memory_estimate)
    order: int  # when it was queued: first come, first served within a round
    after: str | None = None  # a run id it waits for


@dataclass(frozen=True)
class Limits:
    slots: int
    memory_total: int
    per_learner: int
    notes: tuple[str, ...] = ()  # settings that were ignored, and why

    def describe(self) -> str:
        return (f"{self.slots} run{'s' if self.slots != 1 else ''} at once, {self.memory_total / 2**30:.1f} GB of "
                f"training memory, up to {self.per_learner} waiting runs a learner")


def parse_size(text: str) -> int:
    """'2G', '1500M', '1.5GB', '800000000' -> bytes (K, M, G, T are powers of 1024); ValueError otherwise."""
    m = _SIZE.fullmatch(str(text))
    if not m:
        raise ValueError(f"expected a size such as 2G or 1500M, got {str(text)[:40]!r}")
    return int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " "))


def machine_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def limits_from_env(default_slots: int | None, env: dict[str, str] | None = None) -> Limits:
    """The limits the environment asks for; a value that cannot be used is replaced by its default, and said."""
    env = os.environ if env is None else env
    notes = []
    slots = max(1, default_slots or os.cpu_count() or 1)
    if raw := env.get(SLOTS_ENV, "").strip():
        if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 10_000:
            slots = int(raw)
        else:
            notes.append(f"{SLOTS_ENV}={raw[:40]!r} ignored (expected a whole number from 1): {slots} slots")
    memory = machine_memory() // 2
    if raw := env.get(MEMORY_ENV, "").strip():
        try:
            memory = parse_size(raw)
            if memory < 1 << 20:
                raise ValueError("at least 1M")
        except ValueError as e:
            memory = machine_memory() // 2
            notes.append(f"{MEMORY_ENV}={raw[:40]!r} ignored ({e}): half of this machine's memory")
    per_learner = DEFAULT_PER_LEARNER
    if raw := env.get(QUEUE_ENV, "").strip():
        if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 10_000:
            per_learner = int(raw)
        else:
            notes.append(f"{QUEUE_ENV}={raw[:40]!r} ignored (expected a whole number from 1): {per_learner}")
    return Limits(slots, memory, per_learner, tuple(notes))


def check_admission(job: Job, waiting: list[Job], limits: Limits, describe_need: str = "") -> None:
    """AdmissionError when `job` can never run here or its learner has too many runs waiting."""
    if job.memory > limits.memory_total:
        raise AdmissionError(f"This run needs about {describe_need or f'{job.memory / 2**20:,.0f} MB'}, more than the "
                             f"{limits.memory_total / 2**30:.2f} GB all training runs may use on this server "
                             f"({MEMORY_ENV}); choose smaller hidden layers or a smaller batch")
    mine = sum(1 for j in waiting if j.owner == job.owner)
    if mine >= limits.per_learner:
        raise AdmissionError(f"{mine} of your runs are already waiting for a slot, the most one learner may queue "
                             f"({QUEUE_ENV}={limits.per_learner}); start more when some have begun")


def fair_order(waiting: list[Job], training: list[Job]) -> list[Job]:
    """The queue in the order runs will start: round k holds each learner's k-th run, counting their runs that are
    training already; within a round, first come first served."""
    active: dict[str, int] = {}
    for j in training:
        active[j.owner] = active.get(j.owner, 0) + 1
    rounds: list[tuple[int, int, Job]] = []
    seen: dict[str, int] = {}
    for j in sorted(waiting, key=lambda j: j.order):
        k = active.get(j.owner, 0) + seen.get(j.owner, 0)
        seen[j.owner] = seen.get(j.owner, 0) + 1
        rounds.append((k, j.order, j))
    return [j for _, _, j in sorted(rounds, key=lambda t: (t[0], t[1]))]


def to_start(waiting: list[Job], training: list[Job], paused: list[Job], resuming: list[Job], live_ids: set[str],
             limits: Limits) -> tuple[list[Job], list[Job]]:
    """(paused runs to resume, queued runs to start) now. `training`: runs holding a slot; `paused`: runs in memory
    without one (those in `resuming` asked to continue); `live_ids`: every run not ended (for `after`)."""
    free = limits.slots - len(training)
    used = sum(j.memory for j in training) + sum(j.memory for j in paused)
    resume = [j for j in sorted(resuming, key=lambda j: j.order)][:max(0, free)]
    free -= len(resume)
    start: list[Job] = []
    for j in fair_order(waiting, training + resume):
        if free <= 0:
            break
        if j.after is not None and j.after in live_ids:
            continue  # not ready: does not hold up the others
        if used + j.memory > limits.memory_total:
            break  # the head waits for memory; nothing smaller passes it
        start.append(j)
        free, used = free - 1, used + j.memory
    return resume, start
