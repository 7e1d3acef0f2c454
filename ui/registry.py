"""The one process-wide run registry, shared by every session and tab."""
from __future__ import annotations

import streamlit as st

from core.store.runs import RunInfo, RunStore


@st.cache_resource
def get_store() -> RunStore:
    return RunStore()  # RUNS_DIR / DATA_DIR from the environment, else ./runs and ./data


def run_label(info: RunInfo) -> str:
    acc = info.snapshot.final.test_acc if info.snapshot.final else None
    return f"{info.name} · {info.snapshot.status}" + (f" · {acc:.2%}" if acc is not None else "")
