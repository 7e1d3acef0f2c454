"""The class challenge's leaderboard, live: the teacher's Class page shows every detail, a learner's Home page the
board with their own row marked and their own runs that do not qualify, with the rule each breaks."""
from __future__ import annotations

import streamlit as st

from core.lessons.challenge import leaderboard, load_challenge
from core.store.learners import LearnerBook
from core.store.runs import RunStore
from ui.registry import plain
from ui.fragment import fragment


def challenge_board(store: RunStore, book: LearnerBook, me: str | None = None) -> None:
    """Redrawn every 2 s. `me`: the learner looking (None: the teacher, who sees every row's details)."""
    @fragment(run_every=2.0)
    def board() -> None:
        challenge, _ = load_challenge(store.root)
        if challenge is None:
            if me is None:
                st.caption("No challenge yet: compose one above; learners see it on their Home page and the board "
                           "here fills in as their runs finish.")
            return
        if me is not None:
            st.subheader("Class challenge")
        st.markdown(f"**{plain(challenge.title)}**: {plain(challenge.describe())}")
        rows = []
        for i, row in enumerate(leaderboard(challenge, store.list(), [l.id for l in book.all()]), start=1):
            best, mine = row.best, row.owner == me
            score = "–" if best is None else f"{best.score:.2%}" if challenge.goal == "accuracy" else f"{best.score:.1f} s"
            rows.append({"#": i if best else "", "learner": book.name_of(row.owner) + (" (you)" if mine else ""),
                         "score": score, "run": best.run.name if best and (me is None or mine) else "",
                         "training": row.live,
                         "not qualifying": "; ".join(f"{e.run.name}: {', '.join(e.broken)}" for e in row.not_qualifying)
                         if me is None or mine else ""})
        st.dataframe(rows, hide_index=True, width="stretch")
    board()
