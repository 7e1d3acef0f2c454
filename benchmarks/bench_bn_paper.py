"""The BatchNorm lab's paper mode (Ioffe & Szegedy 2015, figure 1): the learning rate it uses, how long the pair
takes, and the numbers it reproduces.

    .venv/bin/python benchmarks/bench_bn_paper.py --part lr      # the candidates for the learning rate, 10,000 steps
    .venv/bin/python benchmarks/bench_bn_paper.py --part pair    # the 50,000-step pair with the probe and without
    .venv/bin/python benchmarks/bench_bn_paper.py --part pair --steps 5000 --rounds 2   # smaller

1. lr: the paper's network without BN (and with it, for the record) for 10,000 steps of 60 at each learning rate
   of LR_CHOICES, plain runs of the trainer; the page's learning rate is the one at which the network WITHOUT BN
   has the highest test accuracy after 10,000 steps (only the baseline decides, so the choice cannot favour BN).
2. pair: the pair as the page starts it (the run store, a PaperProbe on each run, one run after the other), and
   the same two configs as plain runs of the store without a probe, the order alternating by round; wall time of
   each, the probe's share, the load before and after, and the reproduced numbers with the paper's verdicts.
Every figure depends on the load of the machine: the load average is printed beside each.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3]) if os.path.exists("/proc/loadavg") else "?"


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def wait(store, run_ids) -> None:
    for rid in run_ids:
        store.trainer(rid).join()


def lr_part(store, steps: int) -> None:
    from core.lessons.bn_paper import LR_CHOICES, pair_configs

    print(f"\n## learning rate candidates, {steps:,} steps (load before: {load()})")
    print("| lr | without BN | with BN |\n|---|---|---|")
    best = None
    for lr in LR_CHOICES:
        prev, ids = None, []
        for cfg in pair_configs("paper", steps, lr):
            prev = store.start(cfg, allow_duplicate=True, after=prev).id
            ids.append(prev)
        wait(store, ids)
        acc = {store.get(i).config.batch_norm: store.get(i).snapshot.history[-1].test_acc for i in ids}
        print(f"| {lr:g} | {acc[False]:.2%} | {acc[True]:.2%} |", flush=True)
        if best is None or acc[False] > best[1]:
            best = (lr, acc[False])
    print(f"best for the network without BN: lr {best[0]:g} ({best[1]:.2%}); load after: {load()}")


def pair_part(store, steps: int, rounds: int) -> None:
    from core.lessons.bn_paper import (checkpoints, drift, numbers_rows, pair_configs, paper_verdicts, read_pair,
                                       read_paper_probe, start_paper_pair, typical_unit)
    from core.lessons.batchnorm import group_runs

    print(f"\n## the pair, {steps:,} steps each, {rounds} round(s)")
    for rnd in range(rounds):
        order = ("probe", "plain") if rnd % 2 == 0 else ("plain", "probe")
        walls = {}
        for kind in order:
            before, t0 = load(), time.perf_counter()
            if kind == "probe":
                group = start_paper_pair(store, "paper", steps)
                ids = [r.id for r in group_runs(store, group)]
            else:
                prev, ids = None, []
                for cfg in pair_configs("paper", steps):
                    prev = store.start(cfg, allow_duplicate=True, after=prev).id
                    ids.append(prev)
            wait(store, ids)
            walls[kind] = time.perf_counter() - t0
            runs = " + ".join(f"{store.get(i).snapshot.elapsed:.1f}" for i in ids)
            print(f"round {rnd + 1} {kind:5s}: pair {walls[kind]:.1f} s (runs' training {runs} s), "
                  f"load {before} -> {load()}", flush=True)
            if kind == "probe":  # the probe's own time inside each run: a share that the load hits alike
                for i in ids:
                    t, snap = read_paper_probe(store.probes(i)), store.get(i).snapshot
                    print(f"  {'BN' if store.get(i).config.batch_norm else 'no-BN'}: the probe took "
                          f"{t.seconds:.1f} s of the run's {snap.elapsed:.1f} s ({t.seconds / snap.elapsed:.1%})")
        print(f"round {rnd + 1}: plain / with probe = {walls['plain'] / walls['probe']:.3f} "
              f"(the probe costs {walls['probe'] / walls['plain'] - 1:+.1%})")
    pair = read_pair(store, group)
    unit = typical_unit(pair.traces[False])
    print(f"\nreproduced numbers (last pair with the probe; typical unit {unit}):")
    rows = numbers_rows(pair, unit)
    print("| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0]))
    for r in rows:
        print("| " + " | ".join(r.get(k, "–") for k in rows[0]) + " |")
    for bn in (False, True):
        d = drift(pair.traces[bn], unit)
        print(f"{'with' if bn else 'without'} BN: median {d.median_shift:+.3f}, spread {d.spreads[0]:.4g} -> "
              f"{d.spreads[1]:.4g} (x{d.spread_ratio:.3g})")
    for v in paper_verdicts(pair, unit):
        print(f"({v.panel}) {v.claim}: {'held' if v.held else 'NOT held'} — {v.measured}"
              + (f" [{v.units[0]} of {v.units[1]} units]" if v.units else ""))
    print(f"checkpoints {checkpoints(pair.total)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("lr", "pair"), required=True)
    ap.add_argument("--steps", type=int, default=None, help="steps per run (lr: 10,000; pair: 50,000)")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    import core  # noqa: F401 - the CPU policy first
    from core.engine.config import TrainConfig
    from core.store.runs import RunStore

    print(f"CPU: {cpu_name()}, {os.cpu_count()} logical cores; load average at start {load()}")
    with tempfile.TemporaryDirectory() as folder:
        store = RunStore(Path(folder) / "runs", os.environ.get("DATA_DIR"))
        store.trainer(store.start(TrainConfig(epochs=1, max_batches=1)).id).join()  # the dataset loads first
        if args.part == "lr":
            lr_part(store, args.steps or 10_000)
        else:
            pair_part(store, args.steps or 50_000, args.rounds)


if __name__ == "__main__":
    main()
