import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED_DATA = ROOT.parent / "shared" / "datasets"
DATA_DIR = Path(os.environ.get("DATA_DIR") or (SHARED_DATA if SHARED_DATA.exists() else ROOT / "data"))
# precision="auto" means float32 in every test and every server a test starts, on any CPU: no test measures this
# machine's speed unless it asks (tests/test_precision.py), and no test depends on which arithmetic is faster here.
os.environ["PRECISION_AUTO"] = "fp32"


@pytest.fixture(scope="session")
def data_dir() -> str:
    """The folder holding MNIST; tests that need it skip with the reason when it is not there (and fail
    instead under REQUIRE_DATA=1, as in CI, so that a wrong path cannot pass by skipping)."""
    raw = DATA_DIR / "MNIST" / "raw"
    missing = [f for f in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte") if not (raw / f).exists()]
    if missing:
        why = f"MNIST is not in {raw} (run `make run` once online, or set DATA_DIR)"
        if os.environ.get("REQUIRE_DATA"):
            pytest.fail(why)
        pytest.skip(why)
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
