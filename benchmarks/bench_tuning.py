"""Tuning benchmark: Optuna's own overhead per trial, and what a second worker process buys.

    .venv/bin/python benchmarks/bench_tuning.py            # 20-trial studies at the page's budget (3 x 100 batches)
    .venv/bin/python benchmarks/bench_tuning.py --quick    # 6 trials of 2 x 50 batches

1. Overhead. A study runs in a process of its own (journal storage, then SQLite), TPE sampler and median
   pruner, and every trial's wall time is split by marks taken around Optuna's calls: ask, tell, the storage
   reads and writes, suggest, report, should_prune, the budget checks (core/tuning/study.py TrialTiming).
   Then each trial's configuration runs twice more, alternating which goes first: as a trial of a second study
   (queued parameters, no pruning) and as a plain run of the store without Optuna. The median of those per-pair
   ratios is printed too: it also holds what the study adds besides Optuna, and the machine's noise (the split
   does not).
2. Workers. One study of N trials worked on by one `python -m core.search worker` process, then by two at
   once, on a journal file and on SQLite: wall time from launch to the last exit, and the span from the first
   trial's start to the last one's end. Checked each time: N results, no trial run twice, every result its run's.

Inside one process trials queue one at a time (one training thread; core/engine/cpu.py gives it one intra-op
thread), so a process uses one core for training; a second worker process is the way to use a second core.
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


def storage_url(kind: str, folder: Path) -> str:
    return str(folder / "runs" / "studies.journal") if kind == "journal" else f"sqlite:///{folder / 'studies.db'}"


# --- case 1, inside its own process ----------------------------------------------------------------------------
def overhead_case(kind: str, trials: int, epochs: int, batches: int, folder: Path) -> dict:
    import core  # noqa: F401 - the CPU policy first
    from core.engine.config import TrainConfig
    from core.store.runs import RunStore
    from core.tuning.study import create_study, make_spec, open_study, run_study, set_budget

    store = RunStore(folder / "runs", os.environ.get("DATA_DIR"))
    # The dataset loads once, before either timing, in a training thread that then ends (a long-lived thread
    # that has run torch work slows later training: core/engine/cpu.py).
    store.trainer(store.start(TrainConfig(epochs=1, max_batches=1)).id).join()
    url = storage_url(kind, folder)
    create_study(url, "bench", make_spec(trials, epochs, batches, pruner="median", sampler="tpe"))
    timings = run_study(store, url, "bench", seed=0).timings  # a study as the page and the CLI run one
    study, spec = open_study(url, "bench")
    walls, optuna = [t.wall for t in timings], [t.optuna for t in timings]
    # Pairs: each configuration once as a trial of a second study (queued, no pruning: the same epochs) and once
    # as a plain run of the store without Optuna, in alternating order so that load and warm caches favour
    # neither; what the study adds besides Optuna (starting the run, watching it) shows up here as well.
    create_study(url, "pairs", replace(spec, pruner="none", sampler="random"))
    pairs, _ = open_study(url, "pairs")
    ratios = []
    for i, t in enumerate(study.trials):
        def as_trial() -> float:
            pairs.enqueue_trial(t.params)
            set_budget(url, "pairs", len(pairs.trials))
            return run_study(store, url, "pairs", seed=i).timings[-1].wall

        def plain() -> float:
            t0 = time.perf_counter()
            info = store.start(spec.trial_config(t.params), allow_duplicate=True)
            store.trainer(info.id).join()
            return time.perf_counter() - t0

        a, b = (as_trial(), plain()) if i % 2 == 0 else (plain(), as_trial())[::-1]
        ratios.append(a / b)
    return {"kind": kind, "trials": len(timings), "pruned": sum(t.state.name == "PRUNED" for t in study.trials),
            "trial_wall_median": statistics.median(walls), "optuna_share": sum(optuna) / sum(walls),
            "optuna_per_trial_ms": 1000 * statistics.median(optuna),
            "optuna_share_worst": max(o / w for o, w in zip(optuna, walls)),
            "vs_plain_median": statistics.median(ratios), "pairs": len(ratios)}


# --- case 2: worker processes ----------------------------------------------------------------------------------
def workers_case(kind: str, n_workers: int, trials: int, epochs: int, batches: int, folder: Path) -> dict:
    import core  # noqa: F401
    from core.store.runs import RunStore
    from core.tuning import storage as S
    from core.tuning.study import create_study, make_spec, open_study

    url = storage_url(kind, folder)
    create_study(url, "shared", make_spec(trials, epochs, batches, pruner="none", sampler="random"))
    cmd = [sys.executable, "-m", "core.search", "worker", "--study", "shared", "--storage", url,
           "--runs-dir", str(folder / "runs")]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(n_workers)]
    errors = [p.communicate()[1] for p in procs]
    wall = time.perf_counter() - t0
    if any(p.returncode for p in procs):
        raise RuntimeError("a worker failed:\n" + "\n".join(errors))
    S._storages.clear()
    study, _ = open_study(url, "shared")
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    store = RunStore(folder / "runs", os.environ.get("DATA_DIR"))
    ids = [t.user_attrs["run"]["id"] for t in done]
    ok = (len(done) == trials and len(set(ids)) == trials and len(store.list()) == trials
          and all(store.get(i).snapshot.final.test_acc == t.value for i, t in zip(ids, done)))
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    return {"kind": kind, "workers": n_workers, "wall": wall, "span": span, "ok": ok,
            "extra_trials": len(study.trials) - trials}


# --- the invocation ----------------------------------------------------------------------------------------------
def run_case(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"case {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="6 trials of 2 x 50 batches per case")
    p.add_argument("--trials", type=int, default=None)
    p.add_argument("--skip-workers", action="store_true")
    p.add_argument("--rounds", type=int, default=None, help="rounds of the workers part (default 2, --quick 1)")
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--kind", default="journal", help=argparse.SUPPRESS)
    p.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--epochs", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--batches", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--folder", help=argparse.SUPPRESS)
    a = p.parse_args()
    trials = a.trials or (6 if a.quick else 20)
    a.rounds = a.rounds or (1 if a.quick else 2)
    epochs, batches = a.epochs or (2 if a.quick else 3), a.batches or (50 if a.quick else 100)
    if a.case == "overhead":
        print(json.dumps(overhead_case(a.kind, trials, epochs, batches, Path(a.folder))))
        return
    if a.case == "workers":
        print(json.dumps(workers_case(a.kind, a.workers, trials, epochs, batches, Path(a.folder))))
        return
    with open("/proc/loadavg") as f:
        print(f"load average before: {' '.join(f.read().split()[:3])}; {os.cpu_count()} CPUs")
    common = ["--trials", str(trials), "--epochs", str(epochs), "--batches", str(batches)]
    print(f"\n1. Optuna's overhead: {trials} trials of {epochs} epoch(s) x {batches} batches, TPE + median pruner")
    print(f"{'storage':8} {'trials':>6} {'pruned':>6} {'trial s':>8} {'Optuna ms/trial':>16} {'Optuna share':>13} "
          f"{'worst trial':>12} {'trial / plain run (median, pairs)':>34}")
    for kind in ("journal", "sqlite"):
        with tempfile.TemporaryDirectory() as d:
            r = run_case(["--case", "overhead", "--kind", kind, "--folder", d, *common])
        print(f"{kind:8} {r['trials']:>6} {r['pruned']:>6} {r['trial_wall_median']:>8.2f} "
              f"{r['optuna_per_trial_ms']:>16.1f} "
              f"{r['optuna_share']:>12.2%} {r['optuna_share_worst']:>12.2%} "
              f"{r['vs_plain_median']:>25.3f}x ({r['pairs']:>2})")
    if a.skip_workers:
        return
    print(f"\n2. Workers: one study of {trials} trials ({epochs} x {batches} batches, random sampler, no pruning), "
          f"median of {a.rounds} round(s)")
    print(f"{'storage':8} {'workers':>7} {'wall s':>8} {'trials span s':>14} {'speed-up (wall)':>16} "
          f"{'speed-up (span)':>16} {'all results, none twice':>24}")
    for kind in ("journal", "sqlite"):
        res: dict[int, list[dict]] = {1: [], 2: []}
        for r in range(a.rounds):  # 1 then 2 workers, then 2 then 1: the load's drift hits both alike
            for n in ((1, 2) if r % 2 == 0 else (2, 1)):
                with tempfile.TemporaryDirectory() as d:
                    res[n].append(run_case(["--case", "workers", "--kind", kind, "--workers", str(n), "--folder", d,
                                            *common]))
        for n, rs in res.items():
            wall, span = statistics.median(x["wall"] for x in rs), statistics.median(x["span"] for x in rs)
            up_wall = [one["wall"] / x["wall"] for one, x in zip(res[1], rs)]  # per round
            up_span = [one["span"] / x["span"] for one, x in zip(res[1], rs)]
            extra = sum(x["extra_trials"] for x in rs)
            ok = str(all(x["ok"] for x in rs)) + (f" (+{extra} unrun)" if extra else "")
            print(f"{kind:8} {n:>7} {wall:>8.1f} {span:>14.1f} {statistics.median(up_wall):>15.2f}x "
                  f"{statistics.median(up_span):>15.2f}x {ok:>24}   rounds (wall): "
                  + ", ".join(f"{u:.2f}" for u in up_wall))
    with open("/proc/loadavg") as f:
        print(f"\nload average after: {' '.join(f.read().split()[:3])}")


if __name__ == "__main__":
    main()
