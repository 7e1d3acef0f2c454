"""The runs folder `bench_pages.py` loads pages over: 50 runs as a learner's folder holds them after the course.

    .venv/bin/python benchmarks/page_runs.py [FOLDER]     # builds it (minutes, once); bench_pages.py calls it

What it holds (every file written by the run store itself, trained on real MNIST):
- 38 of the learner's own runs: two real 10-epoch runs with the default settings (no-BN and BN, full data: 9,380
  logged steps each, as the Train page's defaults make) and 36 copies of them under new ids, names and times;
- a BatchNorm-lab twin set: 3 seeds per arm, 3 epochs of 100 batches, with the lab's probes;
- a learning-rate sweep: 6 runs of 150 batches.
Every run is measured once on the drawing-like test set (drawings.json), so that pages read that number as they
do for any run they have seen before. The copies keep the file times their drawings.json refers to.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VERSION = 1  # bump when the recipe changes: bench_pages.py rebuilds a cached folder of another version
OWN_REAL, OWN_COPIES = 2, 36
DEFAULT_FOLDER = ROOT / "benchmarks" / "results" / f"page-runs-v{VERSION}"  # git-ignored


def _wait(store) -> None:
    while any(r.live for r in store.list()):
        time.sleep(0.5)


def build(folder: Path, data_dir: str) -> Path:
    """Trains and writes the runs into `folder` (which must not exist yet); returns it."""
    import core  # noqa: F401 - the CPU policy first
    from core.drawing import drawing_set as D
    from core.engine.config import TrainConfig
    from core.lessons.batchnorm import start_lr_sweep, start_twins
    from core.store.files import new_run_id
    from core.store.runs import RunStore

    building = folder.with_name(folder.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    store = RunStore(building, data_dir)
    t0 = time.time()
    for bn in (False, True):
        store.start(TrainConfig(batch_norm=bn), allow_duplicate=True)
        _wait(store)
        print(f"  own run, BN {bn}: {time.time() - t0:.0f} s", flush=True)
    start_twins(store, TrainConfig(epochs=3, max_batches=100), [0, 1, 2])
    _wait(store)
    start_lr_sweep(store, TrainConfig(epochs=1, max_batches=150))
    _wait(store)
    print(f"  twins and sweep: {time.time() - t0:.0f} s", flush=True)
    for r in store.list():
        D.run_accuracy(store, r.id)
    own = [r for r in store.list() if not r.group]
    assert len(own) == OWN_REAL and all(r.snapshot.status == "finished" for r in store.list()), store.list()
    for i in range(OWN_COPIES):
        src = own[i % OWN_REAL]
        while (building / (run_id := new_run_id())).exists():
            time.sleep(0.01)
        shutil.copytree(building / src.id, building / run_id)  # copy2: file times kept (drawings.json refers to them)
        meta = json.loads((building / run_id / "config.json").read_text())
        meta.update(name=f"{src.name} · copy {i + 1}", created=src.created - 60 * (i + 1))
        (building / run_id / "config.json").write_text(json.dumps(meta))
    n = len(RunStore(building, data_dir).list())
    assert n == OWN_REAL + OWN_COPIES + 12, n
    building.rename(folder)
    print(f"  {n} runs in {folder} after {time.time() - t0:.0f} s", flush=True)
    return folder


def ensure(folder: Path = DEFAULT_FOLDER, data_dir: str | None = None) -> Path:
    """The folder, built first when it is not there."""
    if not folder.exists():
        print(f"building the 50-run folder {folder} (once; minutes)", flush=True)
        build(folder, data_dir or os.environ.get("DATA_DIR") or str(ROOT / "data"))
    return folder


if __name__ == "__main__":
    ensure(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_FOLDER)
