"""How long a page's action will take, said before it starts, and what a run is doing while it has no pace yet.

Every estimate comes from core.store.pace: this machine's timed epochs of runs like these, else its pace measured
on a few training steps (the probe starts, in the background, on the first page view that has the data), else a
first guess that says it is one. While the probe measures, the caption redraws itself once it is done."""
from __future__ import annotations

from typing import Callable, Sequence

import streamlit as st

from core.engine.config import TrainConfig
from core.engine.data import DataCheck
from core.engine.snapshot import RunSnapshot
from core.store.pace import PROBE, Estimate, estimate, steps_per_epoch
from core.store.runs import RunInfo
from ui.registry import get_store
from ui.fragment import fragment

POLL = 0.5  # s between looks at the probe while it measures


def start_probe(data: DataCheck) -> None:
    """Start timing this machine's pace once per process, when the data is there to train on."""
    if data.ok:
        PROBE.start(get_store().data_dir)


def page_estimate(configs: Sequence[TrainConfig], prefer: Callable[[RunInfo], bool] | None = None) -> Estimate:
    store = get_store()
    return estimate(store.list(), configs, store.data_dir, prefer=prefer)


def duration_caption(configs: Sequence[TrainConfig], data: DataCheck, before: str = "",
                     prefer: Callable[[RunInfo], bool] | None = None) -> None:
    """One caption: `before` (what will run), how long it takes on this machine and what that rests on. While
    the machine's pace is being measured, a first guess is shown and replaced as soon as the measurement is in."""
    start_probe(data)
    measuring = PROBE.measuring

    @fragment(run_every=POLL if measuring else None)
    def caption() -> None:
        guess = page_estimate(configs, prefer)
        basis = guess.basis + ("; timing a few steps now" if PROBE.measuring else "")
        st.caption(f"{before}{guess.describe()} on this machine ({basis}).")
        if measuring and not PROBE.measuring:
            st.rerun(scope="app")  # measured: redraw once, and stop polling

    caption()


def progress_words(snap: RunSnapshot, config: TrainConfig) -> str:
    """What a run of `config` is doing, for a progress bar: its first seconds (queued, loading the data and
    building the network) in words, then epoch, step, share done and time left."""
    planned = snap.steps_per_epoch if snap.step else steps_per_epoch(config)
    if snap.status == "queued":
        return "Queued: starts when the run before it ends"
    if snap.live and snap.step == 0:
        return f"Epoch 1/{snap.epochs}: starting (loading the data, building the network)"
    if snap.live:
        s = snap.seconds_left
        left = "" if s is None else f" · about {s:.0f} s left" if s < 120 else f" · about {s / 60:.1f} min left"
        return (f"Epoch {min(snap.epoch + 1, snap.epochs)}/{snap.epochs} · step {snap.epoch_step}/{planned} · "
                f"whole run {snap.run_progress:.0%}{left}")
    return f"{snap.status}: {snap.epoch} of {snap.epochs} epochs completed"
