"""Every tab sees runs start, pause and end without a reload: one small fragment per page view polls the run
store's revision (a number that changes when a run is added, renamed or deleted, or changes status) and reruns
the page only when it moved. Cost per tick: one lock and a tuple of the process's run statuses, no page work;
the live charts keep their own, faster fragments while a run trains."""
from __future__ import annotations

import streamlit as st

from ui import keys as K
from ui.registry import store_revision
from ui.fragment import fragment

WATCH_EVERY = 1.0  # s: a run started in another tab shows within about this plus one page run


def _whose() -> str | None:
    """Whose runs the page redraws for: a learner's own in class mode (unless a "Class runs" switch of theirs is on),
    else every run. A class of 30 would otherwise redraw every learner's page whenever any run starts or ends."""
    learner = st.session_state.get(K.APP_WATCH_OWNER)
    if learner and not any(v for k, v in st.session_state.items() if str(k).startswith(K.SESSION_CLASS_RUNS) and v):
        return learner
    return None


@fragment(run_every=WATCH_EVERY)
def _watch() -> None:
    if store_revision(_whose()) != st.session_state.get(K.APP_REVISION):
        st.rerun(scope="app")


def watch_runs(owner: str | None = None) -> None:
    """Call once per page view, before the page runs: remembers the revision the page is drawn from and
    starts the poll (a fragment that draws nothing takes no room on the page). `owner`: the learner looking, in
    class mode (ui/session.Viewer.by)."""
    st.session_state[K.APP_WATCH_OWNER] = owner
    st.session_state[K.APP_REVISION] = store_revision(_whose())
    _watch()
