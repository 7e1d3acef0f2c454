"""Memory of a long-lived process that starts and stops many runs, as the dashboard's server does.

    .venv/bin/python benchmarks/soak_memory.py            # 30 start/stop cycles per case
    .venv/bin/python benchmarks/soak_memory.py --quick    # 8 cycles per case

One cycle: RunStore.start a 784-2000-2000-10 network (about 87 MB with its Adam state), let it complete one
epoch (a few batches and the test evaluation, which saves weights) and take a step into the next, stop it,
wait until it has ended. Each case runs in its own process, both in one invocation:
  release  the store as it is: an ended run's trainer drops its model (RunStore.load_model reads the weights)
  keep     the same with every trainer keeping its model, as the store did before
The process's resident memory (RSS, /proc/self/status) is printed after the first and the last cycle; the
target is a growth within 150 MB for `release`.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_MB = 150


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def soak(case: str, cycles: int, data_dir: str | None) -> dict:
    """Run `cycles` start/stop cycles in this process; RSS after each."""
    sys.path.insert(0, str(ROOT))
    import core  # noqa: F401 - the CPU threading policy first, as every entry point does
    from core.engine.config import TrainConfig
    from core.store import runs

    if case == "keep":  # the store before this change: every trainer kept its model after the run ended
        from core.engine.executor import InProcessExecutor
        from core.engine.trainer import Trainer

        InProcessExecutor.launch = lambda self, config, listener, probe=None: Trainer(
            config, data_dir=self.data_dir, listener=listener, probe=probe, keep_model=True).start()
    config = TrainConfig(hidden=(2000, 2000), max_batches=4, epochs=3)
    rss = []
    with tempfile.TemporaryDirectory() as tmp:
        store = runs.RunStore(tmp, data_dir)
        for i in range(cycles):
            run = store.start(config, allow_duplicate=True, name=f"soak {i}")
            trainer = store.trainer(run.id)
            deadline = time.monotonic() + 300
            while trainer.alive and not (trainer.snapshot.epoch >= 1 and trainer.snapshot.epoch_step >= 1):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"cycle {i}: no epoch in 300 s")
                time.sleep(0.01)
            store.stop(run.id, wait=300)
            assert not trainer.alive and store.get(run.id).snapshot.status in ("stopped", "finished")
            rss.append(rss_mb())
        store.load_model(run.id)  # the last run's weights are still there to use
    return {"case": case, "rss": rss}


def run_case(case: str, cycles: int, data_dir: str | None) -> dict:
    cmd = [sys.executable, __file__, "--case", case, "--cycles", str(cycles)]
    cmd += ["--data-dir", data_dir] if data_dir else []
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=3600)
    if out.returncode:
        raise RuntimeError(f"{case} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="8 cycles per case instead of 30")
    p.add_argument("--cycles", type=int, default=None)
    p.add_argument("--case", choices=("release", "keep"), help="(internal) run one case in this process")
    p.add_argument("--data-dir", default=os.environ.get("DATA_DIR"))
    args = p.parse_args()
    cycles = args.cycles or (8 if args.quick else 30)
    if args.case:
        print(json.dumps(soak(args.case, cycles, args.data_dir)))
        return 0
    print(f"{cycles} start/stop cycles of a 784-2000-2000-10 network per case, each case in its own process")
    results = {case: run_case(case, cycles, args.data_dir) for case in ("release", "keep")}
    print(f"{'case':<8} {'RSS after cycle 1':>18} {'after cycle ' + str(cycles):>18} {'growth':>9} {'per cycle':>10}")
    for case, r in results.items():
        first, last = r["rss"][0], r["rss"][-1]
        per = (last - first) / max(cycles - 1, 1)
        print(f"{case:<8} {first:>15.0f} MB {last:>15.0f} MB {last - first:>6.0f} MB {per:>7.1f} MB")
    growth = results["release"]["rss"][-1] - results["release"]["rss"][0]
    verdict = "met" if growth <= TARGET_MB else "MISSED"
    print(f"release: growth {growth:.0f} MB, target within {TARGET_MB} MB: {verdict}")
    print("RSS after each cycle (release):", " ".join(f"{v:.0f}" for v in results["release"]["rss"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
