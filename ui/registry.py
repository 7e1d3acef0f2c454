"""The one process-wide run registry, shared by every session and tab."""
from __future__ import annotations

import re

import streamlit as st

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


def run_label(info: RunInfo) -> str:
    """A run in a picker (widget options are shown as plain text)."""
    acc = info.snapshot.final.test_acc if info.snapshot.final else None
    return f"{info.name} · {info.snapshot.status}" + (f" · {acc:.2%}" if acc is not None else "")


_MARKDOWN = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|~:$])")


def plain(text: str | None) -> str:
    """Text that st.markdown, st.caption, st.warning and the like show as it is (a run's name, a file's
    message): every character Markdown could read as syntax is escaped. None shows as nothing."""
    return _MARKDOWN.sub(r"\\\1", "" if text is None else str(text))
