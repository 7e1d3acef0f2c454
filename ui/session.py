"""Who is looking at the page: in class mode (TEACHER_KEY set) a learner, known by the key in the page URL, or the
teacher; without class mode nobody in particular, and nothing is asked.

The key is kept in the URL (`?learner=...`), so a reload or a bookmark keeps who a learner is, on any device.
Streamlit clears query parameters when the page changes, so every page view puts it back. It is never shown to
other learners: links to settings (ui/links.py) leave it out, and runs record the learner's public id only.
"""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from core.store.learners import Learner, LearnerBook, LearnerError, is_teacher, teacher_key
from ui import keys as K
from ui.registry import get_store, plain

LEARNER_PARAM, TEACHER_PARAM = "learner", "teacher"
CREDENTIALS = (LEARNER_PARAM, TEACHER_PARAM)


@dataclass(frozen=True)
class Viewer:
    learner: Learner | None = None
    teacher: bool = False
    class_mode: bool = False

    @property
    def by(self) -> str | None:
        """Who acts, as the run store checks it: the learner's id; None for the teacher and without class mode."""
        return self.learner.id if self.class_mode and not self.teacher and self.learner else None

    @property
    def owner(self) -> str:
        """Whose the runs this viewer starts are ("" without class mode, and for the teacher)."""
        return self.learner.id if self.by else ""

    def owns(self, run) -> bool:
        """Whether this viewer may act on `run` (everyone may without class mode; the teacher may on every run)."""
        return self.by is None or run.owner == self.by

    def describe(self) -> str:
        if not self.class_mode:
            return ""
        return "the teacher" if self.teacher else (self.learner.name if self.learner else "")


@st.cache_resource
def _book(root: str) -> LearnerBook:
    return LearnerBook(root)


def learner_book() -> LearnerBook:
    return _book(str(get_store().root))


def viewer() -> Viewer:
    """The viewer of this page view. In class mode without a known key it shows the form to join the class and
    stops the page there (a learner chooses a name once)."""
    if (who := known_viewer()) is not None:
        return who
    _join_form(unknown=bool(st.query_params.get(LEARNER_PARAM) or st.session_state.get(K.SESSION_LEARNER)))
    st.stop()


def known_viewer() -> Viewer | None:
    """The viewer, or None for someone in class mode who has not joined yet (app.py asks first: the navigation must
    know the page a link named before the form to join shows, or the form's rerun lands on the default page)."""
    if teacher_key() is None:
        return Viewer()
    params = st.query_params
    key = params.get(TEACHER_PARAM) or st.session_state.get(K.SESSION_TEACHER)
    if key and is_teacher(key):
        st.session_state[K.SESSION_TEACHER] = key
        _keep_in_url(TEACHER_PARAM, key)
        return Viewer(teacher=True, class_mode=True)
    key = params.get(LEARNER_PARAM) or st.session_state.get(K.SESSION_LEARNER)
    if learner := learner_book().lookup(key):
        st.session_state[K.SESSION_LEARNER] = key
        _keep_in_url(LEARNER_PARAM, key)
        return Viewer(learner=learner, class_mode=True)
    return None


def _keep_in_url(param: str, key: str) -> None:
    if st.query_params.get(param) != key:
        st.query_params[param] = key


def _join_form(unknown: bool) -> None:
    st.title("Join the class")
    if unknown:
        st.warning("The learner key in this link is not known on this server (a typo, or a class started anew). "
                   "Choose a name to join; if you joined before, open the link you bookmarked then.")
    st.markdown("Choose the name the class sees on the leaderboard. You choose it once: the page's address then "
                "holds your personal key, so **bookmark this page** to come back as yourself, on any device. "
                "Keep the address to yourself: the key is who you are here.")
    with st.form(K.SESSION_JOIN_FORM):
        name = st.text_input("Display name", max_chars=40, key=K.SESSION_NAME)
        joined = st.form_submit_button("Join", type="primary")
    if joined:
        try:
            learner, key = learner_book().register(name)
        except LearnerError as e:
            st.error(plain(str(e)))
            return
        st.session_state[K.SESSION_LEARNER] = key
        st.query_params[LEARNER_PARAM] = key
        st.rerun()


def visible_runs(runs: list, who: Viewer, where, key: str) -> list:
    """The runs a page lists: a learner's own, and other learners' (read-only) under a "Class runs" switch; the
    teacher and a dashboard without class mode see every run."""
    if who.by is None:
        return runs
    others = sum(1 for r in runs if r.owner != who.by)
    where.toggle(f"Class runs ({others})", key=f"{K.SESSION_CLASS_RUNS}_{key}", disabled=not others,
                 help="Also list other learners' runs: you can look at them, not change them")
    return shown_runs(runs, who, key)


def shown_runs(runs: list, who: Viewer, key: str) -> list:
    """`runs` filtered as the page's "Class runs" switch (drawn by visible_runs) says: for a part of the page that
    redraws by itself (a fragment) and lists the runs anew."""
    if who.by is None or st.session_state.get(f"{K.SESSION_CLASS_RUNS}_{key}"):
        return runs
    return [r for r in runs if r.owner == who.by]


def owner_name(run) -> str:
    """Who a run belongs to, as the class sees it: a learner's display name, or "teacher / everyone"."""
    return learner_book().name_of(run.owner) if run.owner else "teacher / everyone"
