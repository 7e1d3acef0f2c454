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
    from core.runs import RunStore

    s = RunStore(tmp_path / "runs", data_dir)
    yield s
    s.stop_all(wait=30)
