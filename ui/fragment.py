"""st.fragment, each call inside a container of its own that the page run creates: every fragment of the app
goes through `fragment` here.

Why (streamlit 1.67.0, seen in benchmarks/bench_class.py's case C, two of six tabs white): a fragment that asks for
a full rerun (ui/live.py) is followed, in a tab whose timers fired together, by a queued rerun of another fragment.
When that one is preempted, Streamlit clears its send queue of the fragment's deltas, including those the full
run had just queued and not yet sent: the fragment's block never reaches the browser. At the end of the full run
the browser drops the old, now stale, fragment block and closes the gap, so every later element moves up one place;
the next fragment run writes to the old places ("Cannot set a node at a delta path": a white page). Inside a
container the page run creates (and so always sends), a dropped fragment block leaves its container empty and
moves nothing else; the fragment's next run fills it."""
from __future__ import annotations

import functools
from typing import Any, Callable

import streamlit as st


def fragment(func: Callable | None = None, *, run_every: float | None = None) -> Callable:
    """Use as @fragment or @fragment(run_every=...), like st.fragment."""
    if func is None:
        return functools.partial(fragment, run_every=run_every)
    inner = st.fragment(func, run_every=run_every)

    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        with st.container():
            return inner(*args, **kwargs)
    return call
