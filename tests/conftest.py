import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED_DATA = ROOT.parent / "shared" / "datasets"
DATA_DIR = Path(os.environ.get("DATA_DIR") or (SHARED_DATA if SHARED_DATA.exists() else ROOT / "data"))


@pytest.fixture(scope="session")
def data_dir() -> str:
    return str(DATA_DIR)


@pytest.fixture
def store(tmp_path, data_dir):
    from core.store.runs import RunStore

    s = RunStore(tmp_path / "runs", data_dir)
    yield s
    s.stop_all(wait=30)


@pytest.fixture
def app_env(tmp_path, monkeypatch, data_dir):
    """A clean dashboard process state for AppTest: own runs/drawings folders, caches cleared before and
    after, and every training thread the test started stopped."""
    import streamlit as st

    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DRAWINGS_DIR", str(tmp_path / "drawings"))
    monkeypatch.setenv("DATA_DIR", data_dir)
    st.cache_resource.clear()
    st.cache_data.clear()
    yield tmp_path
    from ui.registry import get_store

    get_store().stop_all(wait=30)
    st.cache_resource.clear()
