"""The one process-wide run registry, shared by every session and tab."""
from __future__ import annotations

import re
import time
from typing import Iterable, Sequence

import streamlit as st

from core.store.groups import LabKind
from core.store.runs import RunInfo, RunsFolderError, RunStore


@st.cache_resource
def _open_store() -> RunStore:
    return RunStore()  # RUNS_DIR / DATA_DIR from the environment, else ./runs and ./data


def get_store() -> RunStore:
    """The run store; when the runs folder cannot be used, the page shows why and how to fix it, and stops.
    (Nothing is cached then: the next page view tries again, so fixing the folder needs no restart.)"""
    try:
        return _open_store()
    except RunsFolderError as e:
        st.error(plain(str(e)), icon=":material/folder_off:")
        st.stop()


def store_revision(owner: str | None = None) -> int | None:
    """RunStore.revision of the shared store (of `owner`'s runs only, if given); None while the runs folder cannot
    be used (pages say why)."""
    try:
        return _open_store().revision(owner)
    except RunsFolderError:
        return None


def run_label(info: RunInfo, when: bool = False) -> str:
    """A run in a picker (widget options are shown as plain text): what kind of lab run it is, if one, its name,
    status and accuracy; `when`: with its start time, to tell apart runs of the same name."""
    acc = info.snapshot.final.test_acc if info.snapshot.final else None
    kind = lab_kind(info)
    started = f" · {time.strftime('%d %b %H:%M:%S', time.localtime(info.created))}" if when else ""
    return (f"[{kind}] " if kind else "") + f"{info.name}{started} · {info.snapshot.status}" + \
        (f" · {acc:.2%}" if acc is not None else "")


def run_labels(runs: Iterable[RunInfo]) -> dict[str, str]:
    """Picker labels by run id; runs that share a name also show when they started."""
    runs = list(runs)
    names = [r.name for r in runs]
    return {r.id: run_label(r, when=names.count(r.name) > 1) for r in runs}


def lab_kind(info: RunInfo) -> str | None:
    """What a lab run is ('BN twins', 'tuning trial', ...: core/store/groups.py), None for the learner's own runs."""
    if not info.group and not (info.tags or {}).keys() - {"precision_auto"}:
        return None
    kind = LabKind.of(info.group)
    return kind.label if kind else "lab run"


def ordered_runs(runs: Sequence[RunInfo], lab: bool = True) -> list[RunInfo]:
    """The learner's own runs first (newest first), then, when `lab`, the labs' runs set by set (newest set
    first, in the order they ran)."""
    own = [r for r in runs if lab_kind(r) is None]
    if not lab:
        return own
    sets: dict[str, list[RunInfo]] = {}
    for r in runs:
        if lab_kind(r) is not None:
            sets.setdefault(r.group or r.id, []).append(r)
    newest = sorted(sets.values(), key=lambda rs: max(r.created for r in rs), reverse=True)
    return own + [r for rs in newest for r in sorted(rs, key=lambda r: r.created)]


BROKEN = ("failed", "diverged")  # statuses a picker never chooses by default


def default_run(runs: Sequence[RunInfo]) -> RunInfo | None:
    """What a picker shows first: a live run of the learner's, else any live run, else the newest run of the
    learner's that did not fail or diverge, else any such run, else the newest."""
    ok = [r for r in runs if r.snapshot.status not in BROKEN]
    for pool in ([r for r in runs if r.live and lab_kind(r) is None], [r for r in runs if r.live],
                 [r for r in ok if lab_kind(r) is None], ok, list(runs)):
        if pool:
            return max(pool, key=lambda r: r.created)
    return None


def fresh_label(key: str) -> None:
    """Call before a picker whose labels change while its value does not (a run's status, its accuracy): the
    browser keeps the label it was given with the value, and shows the old one ("· running" after the run
    ended) until the value is stated again. Restating it sends the new label with the widget."""
    if key in st.session_state:
        st.session_state[key] = st.session_state[key]


def unique_name(runs: Iterable[RunInfo], name: str) -> str:
    """`name`, or `name (2)`, `name (3)`, ...: a new run never takes an existing run's name."""
    taken = {r.name for r in runs}
    n = 1
    candidate = name
    while candidate in taken:
        n += 1
        candidate = f"{name} ({n})"
    return candidate


_MARKDOWN = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|~:$])")


def plain(text: str | None) -> str:
    """Text that st.markdown, st.caption, st.warning and the like show as it is (a run's name, a file's
    message): every character Markdown could read as syntax is escaped. None shows as nothing."""
    return _MARKDOWN.sub(r"\\\1", "" if text is None else str(text))
