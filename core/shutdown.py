"""What the process does at exit, before Python finalizes: stop every background worker and wait for it.

Python waits at exit for non-daemon threads only. Ours are daemons (a stuck one must not keep the process
alive): the trainers, the study runners, the drawing-set builder; so are Streamlit's script threads and every
thread a page starts. A daemon thread still inside a torch call when the interpreter finalizes is ended as it
takes the GIL back, by unwinding its stack, and the C++ frames it unwinds through end in std::terminate:
"terminate called without an active exception", SIGABRT (tests/test_shutdown.py shows it in a few lines). So
one handler, run by atexit (before the interpreter finalizes), in this order:

1. the process is marked as closing (`closing()`): no run or trial starts any more, long loops end early;
2. every registered worker is shut down, lowest `order` first: study runners (so that no trial starts a run
   when another ends), then run stores (every live run stopped after its batch and recorded as stopped);
3. every thread that is still running this project's code (a page measuring models in its script thread, a
   model load, the drawing-set builder) is waited for, until none is or WAIT seconds have passed in all.
"""
from __future__ import annotations

import atexit
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Protocol

WAIT = 60.0  # seconds, in all: a batch of the largest model the memory budget allows, and its save
ROOT = Path(__file__).resolve().parent.parent
OURS = tuple(str(ROOT / d) + "/" for d in ("core", "ui", "pages")) + (str(ROOT / "app.py"),)

STUDIES, RUNS = 0, 1  # shutdown order: study runners first, then the run stores their trials train in


class Worker(Protocol):
    def shutdown(self, wait: float) -> None:
        """Stop, and wait up to `wait` seconds for the threads to end."""


_closing = threading.Event()
_lock = threading.Lock()
_workers: "weakref.WeakKeyDictionary[Worker, int]" = weakref.WeakKeyDictionary()


def closing() -> bool:
    """True once the process has begun to exit: start nothing new."""
    return _closing.is_set()


def register(worker: Worker, order: int) -> None:
    """Shut `worker` down at exit (kept by a weak reference: a worker that is gone needs no stopping)."""
    with _lock:
        _workers[worker] = order


def _ours(filename: str) -> bool:
    return filename.startswith(OURS)


def busy_threads() -> list[threading.Thread]:
    """Threads other than this one with a frame of this project's code on their stack."""
    frames = sys._current_frames()
    busy = []
    for t in threading.enumerate():
        f = frames.get(t.ident) if t is not threading.current_thread() else None
        while f is not None and not _ours(f.f_code.co_filename):
            f = f.f_back
        if f is not None:
            busy.append(t)
    return busy


def shut_down(wait: float = WAIT) -> list[str]:
    """Steps 1-3 above; the names of the threads still busy when the time ran out (none, normally)."""
    _closing.set()
    deadline = time.monotonic() + wait
    with _lock:
        workers = sorted(_workers.items(), key=lambda kv: kv[1])
    for worker, _ in workers:
        try:
            worker.shutdown(max(0.0, deadline - time.monotonic()))
        except Exception as e:  # one worker's failure must not leave the others running
            print(f"shutdown: {type(worker).__name__}: {type(e).__name__}: {e}", file=sys.stderr)
    while (busy := busy_threads()) and time.monotonic() < deadline:
        busy[0].join(min(0.1, max(0.0, deadline - time.monotonic())))  # then look again: it may have left our code
    if busy:
        print(f"shutdown: {len(busy)} thread(s) still at work after {wait:.0f} s: "
              f"{', '.join(t.name for t in busy)}", file=sys.stderr)
    return [t.name for t in busy]


atexit.register(shut_down)
