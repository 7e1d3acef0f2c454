"""The CPU threading policy: how many threads torch computes with, and how OpenMP's idle threads wait.

Applied once per process, before torch is imported (`import core` does it first), because OpenMP reads
its settings when torch loads it; every thread that runs torch work calls `use_base_threads()`. The
setting is the environment variable CPU_THREADS:

    auto          (default) one intra-op thread
    torch         torch's own defaults (one thread per core, OpenMP threads spinning at barriers)
    N             N threads, OpenMP's default waiting
    N:passive     N threads that sleep instead of spinning while they wait (OMP_WAIT_POLICY=PASSIVE)
    N:spin=K      N threads that spin K times before they sleep (GOMP_SPINCOUNT=K)

Why one thread: the course's network at batch 64 is thousands of small parallel regions a second, each
ending at a barrier. When another program (the browser drawing the charts, say) takes a core from one of
torch's threads, every barrier waits for it. With two competing processes on two cores, an epoch took up to
90x its idle time with torch's defaults, 4x with passive waiting and 1.6x with one thread, which has no
barriers to wait at (benchmarks/bench_busy.py; benchmarks/README.md has the table). One thread also gives
the same result for the same seed every time: the float32 matrix products round differently with a different
number of threads. What it costs on an idle 2-core machine is in benchmarks/README.md; CPU_THREADS=2 buys it
back where nothing else wants the CPU.

A Keras run computes with XLA (Keras' JAX backend), whose CPU thread pool the same policy sets (`apply_to_xla`,
called before JAX starts): one thread switches XLA's Eigen pool off.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

ENV = "CPU_THREADS"


@dataclass(frozen=True)
class ThreadPolicy:
    spec: str  # what was asked for: "auto", "torch", "2", "2:passive"
    threads: int | None  # intra-op threads; None: torch's default
    passive: bool  # OpenMP threads sleep instead of spinning while they wait
    spin: int | None = None  # GOMP_SPINCOUNT: how long an idle OpenMP thread spins before it sleeps
    note: str = ""  # why the policy could not be applied in full, if it could not

    def describe(self) -> str:
        if self.threads is None:
            text = f"torch's default CPU threads ({max_threads()}, {ENV}=torch)"
        else:
            text = f"{self.threads} CPU thread{'s' if self.threads != 1 else ''}" + \
                   (", passive waiting" if self.passive else "") + f" ({ENV}={self.spec})"
        return text + (f"; {self.note}" if self.note else "")


_applied: ThreadPolicy | None = None


def max_threads() -> int:
    """What torch would use by default: one thread per core available to this process."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def parse(spec: str) -> ThreadPolicy:
    """'auto' | 'torch' | 'N' | 'N:passive' -> ThreadPolicy; ValueError naming the variable otherwise."""
    s = spec.strip().lower()
    if s in ("", "auto"):
        return ThreadPolicy("auto", 1, False)
    if s == "torch":
        return ThreadPolicy("torch", None, False)
    count, _, wait = s.partition(":")
    if count.isascii() and count.isdigit() and int(count) >= 1 and wait in ("", "passive"):
        return ThreadPolicy(s, int(count), wait == "passive")
    if count.isascii() and count.isdigit() and int(count) >= 1 and wait.startswith("spin=") and wait[5:].isdigit():
        return ThreadPolicy(s, int(count), False, spin=int(wait[5:]))
    raise ValueError(f"{ENV}: expected auto, torch, a number of threads such as 2, or 2:passive; got {spec!r}")


def apply_thread_policy(spec: str | None = None) -> ThreadPolicy:
    """Apply the policy once per process (later calls return the first one). Call before importing torch."""
    global _applied
    if _applied is not None:
        return _applied
    try:
        policy = parse(spec if spec is not None else os.environ.get(ENV, "auto"))
    except ValueError as e:
        policy = ThreadPolicy("auto", 1, False, note=f"ignored: {e}")
    if policy.passive:
        if "torch" in sys.modules:  # OpenMP has read its settings already
            policy = ThreadPolicy(policy.spec, policy.threads, False, note="passive waiting must be set before torch loads")
        else:
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    if policy.spin is not None and "torch" not in sys.modules:
        os.environ["GOMP_SPINCOUNT"] = str(policy.spin)
    if policy.threads is not None:
        import torch

        torch.set_num_threads(policy.threads)
    _applied = policy
    return policy


def use_base_threads() -> None:
    """Set the policy's thread count for the calling thread (torch keeps one per thread): call it at the start
    of torch work in a thread of its own (a trainer, a page's evaluation)."""
    policy = apply_thread_policy()
    if policy.threads is not None:
        import torch

        torch.set_num_threads(policy.threads)


XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false"  # XLA:CPU runs each operation on the calling thread


def apply_to_xla() -> ThreadPolicy:
    """The same policy for XLA's CPU thread pool (a Keras run on the JAX backend): one thread means XLA's
    Eigen pool is switched off; N threads or 'torch' leave XLA's default, one thread per core (XLA has no
    flag for N in between). XLA reads XLA_FLAGS when JAX starts its CPU backend: call this before that."""
    policy = apply_thread_policy()
    flags = os.environ.get("XLA_FLAGS", "")
    if policy.threads == 1 and XLA_ONE_THREAD not in flags:
        if "jax" in sys.modules:  # too late to be sure XLA reads it; say so instead of pretending
            return ThreadPolicy(policy.spec, policy.threads, policy.passive, policy.spin,
                                note="JAX was loaded before the policy could reach XLA")
        os.environ["XLA_FLAGS"] = f"{flags} {XLA_ONE_THREAD}".strip()
    return policy
