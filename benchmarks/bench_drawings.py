"""Does a model read canvas drawings? The course recipe vs the robust preset on the drawing-like test set.

    .venv/bin/python benchmarks/bench_drawings.py           # 10 epochs a case, 3 speed rounds, the Draw page's quick model
    .venv/bin/python benchmarks/bench_drawings.py --quick   # 2 epochs a case, 1 speed round, drawings of 2,000 test digits

Three parts, all in one invocation:
- accuracy: the course recipe and the robust preset (no-BN and BN, same epochs and seed), each trained in its own
  process into one temporary runs folder; then this process builds the drawing-like set once
  (core/drawing/drawing_set.py) and measures every saved model on it and on the MNIST test split.
- speed: seconds per epoch of the course recipe and of the robust preset in alternating fresh processes, the
  order reversed every other round; the augmentation's cost is the median of the per-round ratios.
- the Draw page's quick model: from Start to finished on this machine, and how it reads drawings.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# --- one training run, inside its own process --------------------------------------------
def train_case(config: dict, runs_dir: str, data_dir: str, augment_changes: dict) -> dict:
    """Train one TrainConfig through the run store, as the pages do; no torch work in this (main) thread while
    the trainer runs (a second thread that has run torch slows training about 2x, README)."""
    from core.engine import augment
    from core.engine.config import TrainConfig
    from core.store.runs import RunStore

    augment.DEFAULT = replace(augment.DEFAULT, **augment_changes)  # another augmentation, in this process only
    if config.pop("steps", False):
        return step_costs(data_dir, rounds=5, steps=200)
    store = RunStore(runs_dir, data_dir)
    t0 = time.perf_counter()
    run = store.start(TrainConfig(**config), allow_duplicate=True)
    store.trainer(run.id).join()
    wall = time.perf_counter() - t0  # Start to finished, data loading included
    snap = store.get(run.id).snapshot
    assert snap.status == "finished", snap.error
    return {"run_id": run.id, "wall": wall, "times": [h.seconds for h in snap.history],
            "test_acc": snap.final.test_acc}


def step_costs(data_dir: str, rounds: int, steps: int) -> dict:
    """Training steps (BN, batch 64, the trainer's arithmetic) fed by plain batches, by the robust preset's batches
    augmented in the training thread, and by the same batches prepared in the helper thread: blocks of `steps`
    steps in turn, `rounds` times, all in one process and one training thread, so that drifting machine load
    hits the three alike. Runs in a thread of its own, as the trainer does."""
    import itertools
    import threading

    import torch
    import torch.nn.functional as F

    from core.engine import augment, cpu
    from core.engine.config import TrainConfig
    from core.engine.data import iterate_batches, load_dataset
    from core.engine.models import build_model

    out: dict = {}

    def work() -> None:
        cpu.use_base_threads()
        torch.set_flush_denormal(True)
        data = load_dataset("mnist", data_dir)
        augment.centre_lines_of(data.train_x)  # the once-per-process part, not timed here
        model = build_model(TrainConfig(batch_norm=True))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
        g = lambda: torch.Generator().manual_seed(0)
        sources = {
            "plain": lambda: iterate_batches(data.train_x, data.train_y, 64, g()),
            "augmented in the training thread": lambda: _inline(augment.robust_batches)(
                data.train_x, data.train_y, 64, g(), None, 0.5, 0.5, 0, 1),
            "augmented ahead in the helper thread": lambda: augment.robust_batches(
                data.train_x, data.train_y, 64, g(), None, 0.5, 0.5, 0, 1),
        }
        times = {k: [] for k in sources}
        for rnd in range(rounds + 1):  # round 0 warms up
            for name, make in (sources.items() if rnd % 2 else reversed(sources.items())):
                batches = make()
                t0 = time.perf_counter()
                for xb, yb in itertools.islice(batches, steps):
                    loss = F.cross_entropy(model(xb), yb)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                batches.close()
                if rnd:
                    times[name].append((time.perf_counter() - t0) / steps)
        out.update(times)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    return out


def _inline(robust_batches):
    """robust_batches with its helper thread switched off: every chunk is augmented in the reading thread."""
    from core.engine import augment

    def run(*args):
        saved, augment._ahead = augment._ahead, lambda items, depth=2: items
        try:
            yield from robust_batches(*args)
        finally:
            augment._ahead = saved
    return run


def spawn(config: dict, runs_dir: str, data_dir: str, augment_changes: dict | None = None) -> dict:
    cmd = [sys.executable, __file__, "--case", json.dumps(config), "--runs-dir", runs_dir, "--data-dir", data_dir,
           "--augment", json.dumps(augment_changes or {})]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(f"{config} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- the orchestrator -------------------------------------------------------------------
def name(config: dict, augment_changes: dict | None = None) -> str:
    bn = "BN" if config.get("batch_norm") else "no-BN"
    changed = " + " + ", ".join(f"{k}={v}" for k, v in augment_changes.items()) if augment_changes else ""
    kind = "robust preset" + changed if config.get("robust") else "course recipe"
    return f"{kind}, {bn}"


def drawing_report(runs_dir: str, data_dir: str, n: int | None, runs: list[tuple[str, dict]]) -> None:
    import torch

    from core.drawing.drawing_set import drawing_set, predictions
    from core.store.runs import RunStore

    t0 = time.perf_counter()
    ds = drawing_set(data_dir, n=n)
    built = time.perf_counter() - t0
    print(f"drawing-like set: {len(ds.y):,} MNIST test digits drawn as on the canvas and preprocessed like the "
          f"Draw page, built in {built:.1f} s ({built / len(ds.y) * 1000:.2f} ms a drawing)")
    store = RunStore(runs_dir, data_dir)
    print(f"{'model':<44}{'MNIST test':>11}{'drawings':>10}   drawings per digit 0-9")
    for label, out in runs:
        model = store.load_model(out["run_id"])
        pred = predictions(model, ds)
        per_digit = [float((pred[ds.y == d] == d).float().mean()) for d in range(10)]
        acc = float((pred == ds.y).float().mean())
        print(f"{label:<44}{out['test_acc']:>11.2%}{acc:>10.2%}   " + " ".join(f"{a:.0%}" for a in per_digit))
        out["drawings"] = acc
    del torch


def accuracy(runs_dir: str, data_dir: str, epochs: int, seed: int, n: int | None, variants: list[dict]) -> list:
    print(f"\n## Accuracy after {epochs} epochs, seed {seed}")
    cases = [(dict(batch_norm=bn, robust=robust, epochs=epochs, seed=seed, precision="fp32"), {})
             for robust in (False, True) for bn in (False, True)]
    cases += [(dict(batch_norm=True, robust=True, epochs=epochs, seed=seed, precision="fp32"), v) for v in variants]
    runs = [(name(c, e), spawn(c, runs_dir, data_dir, e)) for c, e in cases]
    drawing_report(runs_dir, data_dir, n, runs)
    for bn in ("no-BN", "BN"):
        course, robust = (dict(runs)[f"{k}, {bn}"] for k in ("course recipe", "robust preset"))
        print(f"{bn}: the robust preset's MNIST test accuracy is {(robust['test_acc'] - course['test_acc']) * 100:+.2f} "
              f"points from the course recipe's; on drawings {(robust['drawings'] - course['drawings']) * 100:+.2f} points")
    return runs


def speed(runs_dir: str, data_dir: str, epochs: int, rounds: int) -> None:
    print(f"\n## Speed: seconds per epoch (training + test evaluation), BN, {epochs} epochs a process, {rounds} "
          "round(s) of course recipe and robust preset in alternating order; epochs 2 on (the first epoch of a robust "
          "process also finds the training digits' centre lines, timed below)")
    ratios, steady = [], {False: [], True: []}
    for rnd in range(rounds):
        this = {}
        for robust in ((False, True) if rnd % 2 == 0 else (True, False)):
            out = spawn(dict(batch_norm=True, robust=robust, epochs=epochs, seed=rnd, precision="fp32"), runs_dir, data_dir)
            this[robust] = statistics.median(out["times"][1:])
            steady[robust] += out["times"][1:]
        ratios.append(this[True] / this[False])
    print(f"course recipe {statistics.median(steady[False]):.2f} s, robust preset {statistics.median(steady[True]):.2f} s "
          f"per epoch; the augmentation costs {statistics.median(ratios) - 1:+.1%} (median of the rounds: "
          f"{', '.join(f'{r - 1:+.1%}' for r in ratios)}; target at most +30%)")
    out = spawn({"steps": True}, runs_dir, data_dir)
    plain = out.pop("plain")
    print(f"training steps in one process, blocks of steps in turn ({len(plain)} rounds), median per step: "
          f"plain batches {statistics.median(plain) * 1e3:.2f} ms")
    for name, ts in out.items():
        r = [a / b - 1 for a, b in zip(ts, plain)]
        print(f"  {name}: {statistics.median(ts) * 1e3:.2f} ms, {statistics.median(r):+.1%} "
              f"(rounds: {', '.join(f'{v:+.0%}' for v in r)})")
    from core.engine.augment import centre_lines_of
    from core.engine.data import load_dataset

    x = load_dataset("mnist", data_dir).train_x
    t0 = time.perf_counter()
    centre_lines_of(x)
    print(f"once per process, before the first robust epoch: the centre lines of the 60,000 training digits, "
          f"{time.perf_counter() - t0:.1f} s")


def quick_model(runs_dir: str, data_dir: str, n: int | None) -> None:
    from core.drawing.drawing_set import QUICK_MODEL

    print(f"\n## The Draw page's quick model: {QUICK_MODEL.label()}")
    out = spawn(QUICK_MODEL.to_dict(), runs_dir, data_dir)
    drawing_report(runs_dir, data_dir, n, [("quick model", out)])
    print(f"Start to finished: {out['wall']:.1f} s (target at most 60 s), epochs {', '.join(f'{t:.1f}' for t in out['times'])} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 epochs a case, 1 speed round, 2,000 drawings")
    p.add_argument("--epochs", type=int, default=None, help="epochs of the accuracy cases (default 10, quick 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=None, help="speed rounds (default 3, quick 1)")
    p.add_argument("--speed-epochs", type=int, default=None, help="epochs per speed process, the first not timed "
                   "(default 3, quick 2)")
    p.add_argument("--drawings", type=int, default=None, help="drawings of the first N test digits (default all; quick 2000)")
    p.add_argument("--augment", default="{}", help="also a robust BN case with these AugmentConfig changes (JSON), "
                   "such as '{\"elastic_px\": 1.5}'")
    p.add_argument("--parts", default="accuracy,speed,quick", help="which parts, comma separated")
    p.add_argument("--data-dir", default=os.environ.get("DATA_DIR", str(ROOT / "data")))
    p.add_argument("--runs-dir", help=argparse.SUPPRESS)
    p.add_argument("--case", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.case:  # worker process
        print(json.dumps(train_case(json.loads(a.case), a.runs_dir, a.data_dir, json.loads(a.augment))))
        return
    import core  # noqa: F401 - the CPU threading policy, before torch

    n = a.drawings or (2000 if a.quick else None)
    parts = set(a.parts.split(","))
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}; data: {a.data_dir}")
    with tempfile.TemporaryDirectory() as runs_dir:
        if "accuracy" in parts:
            variants = [v for v in json.loads(f"[{a.augment}]") if v]
            accuracy(runs_dir, a.data_dir, a.epochs or (2 if a.quick else 10), a.seed, n, variants)
        if "speed" in parts:
            speed(runs_dir, a.data_dir, max(2, a.speed_epochs or (2 if a.quick else 3)), a.rounds or (1 if a.quick else 3))
        if "quick" in parts:
            quick_model(runs_dir, a.data_dir, n)
    print(f"load average at the end {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
