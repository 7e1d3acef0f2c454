"""Three CPU effects the trainer and the dashboard work around, measured side by side in one invocation.

    .venv/bin/python benchmarks/bench_cpu_effects.py [--epochs 3] [--data-dir DIR]

1. Denormal floats: bare no-BN training epochs with and without torch.set_flush_denormal(True), and a BN
   run, each with the share of Adam's first moments (layer 1 weights) that are denormal at the end. ReLU
   units that never fire get zero gradients, and Adam's moment for them shrinks by 0.9 a step into the
   denormal range; BN keeps every unit firing for part of each batch. How much a denormal costs depends on
   the CPU.
2. A second long-lived thread that has run torch: the same training in a worker thread, with an idle main
   thread, after the main thread ran one forward pass of a batch of 64 (a batch of one is too small to
   start OpenMP threads and changes nothing), and after the main thread loaded the dataset.
3. A full garbage collection every second in another thread, as Streamlit does after every script run unless
   runner.postScriptGC is false (the Train page reruns once a second while a run is live). With torch,
   plotly and pandas imported, gc.collect() walks a few hundred thousand objects while holding the GIL, and the
   training thread waits for it. Both cases import the same modules.
Each case runs in a fresh process; the cases alternate, twice; the last epoch of each process is compared.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def train_epochs(epochs: int, data_dir: str, batch_norm: bool, flush: bool) -> dict:
    import torch
    import torch.nn.functional as F
    from core.engine.config import TrainConfig
    from core.engine.data import iterate_batches, load_dataset
    from core.engine.models import build_model

    torch.set_flush_denormal(flush)  # per thread: set where the training runs
    data = load_dataset("mnist", data_dir)
    model = build_model(TrainConfig(batch_norm=batch_norm))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    gen = torch.Generator().manual_seed(0)
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        for xb, yb in iterate_batches(data.train_x, data.train_y, 64, gen):
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    m = opt.state[model.blocks[0][0].weight]["exp_avg"]
    denormal = ((m != 0) & (m.abs() < torch.finfo(m.dtype).tiny)).float().mean().item()
    return {"times": times, "denormal": denormal}


def run_case(case: str, epochs: int, data_dir: str) -> dict:
    if case.startswith("denormals"):
        return train_epochs(epochs, data_dir, batch_norm=case.endswith("bn"), flush=case == "denormals-flushed")
    if case.startswith("main-thread"):
        import pandas, plotly.graph_objects, streamlit  # noqa: F401 - the dashboard's heap, for every thread case
    if case == "main-thread-loaded-data":
        from core.engine.data import load_dataset
        load_dataset("mnist", data_dir)  # the worker then finds it in the per-process cache
    if case == "main-thread-used":
        import torch
        from core.engine.config import TrainConfig
        from core.engine.models import build_model
        build_model(TrainConfig())(torch.zeros(64, 784))  # one forward pass in the main thread
    out: dict = {}
    worker = threading.Thread(target=lambda: out.update(train_epochs(epochs, data_dir, False, True)))
    worker.start()
    gc_ms = []
    while worker.is_alive():
        if case == "main-thread-gc":
            t0 = time.perf_counter()
            gc.collect()
            gc_ms.append((time.perf_counter() - t0) * 1000)
        worker.join(1.0)
    return dict(out, gc_ms=statistics.median(gc_ms) if gc_ms else 0.0)


CASES = {"denormals-kept": "no BN, denormals kept",
         "denormals-flushed": "no BN, denormals flushed to zero",
         "denormals-kept-bn": "BN, denormals kept",
         "main-thread-idle": "training thread, main thread idle",
         "main-thread-used": "training thread, main thread ran a forward pass",
         "main-thread-loaded-data": "training thread, main thread loaded the dataset",
         "main-thread-gc": "training thread, main thread gc.collect() every 1 s"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--data-dir", default=os.environ.get("DATA_DIR", str(ROOT / "data")))
    p.add_argument("--case", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.case:
        print(json.dumps(run_case(a.case, a.epochs, a.data_dir)))
        return
    times: dict[str, list[float]] = {c: [] for c in CASES}
    share: dict[str, float] = {}
    gc_ms: list[float] = []
    for rnd in range(2):
        for case in CASES if rnd == 0 else list(CASES)[::-1]:
            out = subprocess.run([sys.executable, __file__, "--case", case, "--epochs", str(a.epochs), "--data-dir",
                                  a.data_dir], capture_output=True, text=True, cwd=ROOT, check=True)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            times[case].append(res["times"][-1])  # the last epoch
            share[case] = res["denormal"]
            gc_ms += [res["gc_ms"]] if res.get("gc_ms") else []
    med = {c: statistics.median(v) for c, v in times.items()}
    print(f"seconds for training epoch {a.epochs} (batch 64), median of 2 processes per case:")
    for c, label in CASES.items():
        extra = f"   Adam moments of layer 1 denormal: {share[c]:.1%}" if c.startswith("denormals") else ""
        extra = f"   one gc.collect(): {statistics.median(gc_ms):.0f} ms" if c == "main-thread-gc" else extra
        print(f"  {label:<53}{med[c]:6.2f} s{extra}")
    print(f"no-BN vs BN with denormals kept: {med['denormals-kept'] / med['denormals-kept-bn']:.2f}x; "
          f"keeping denormals costs {med['denormals-kept'] / med['denormals-flushed']:.2f}x; "
          f"a main thread that ran torch costs {med['main-thread-used'] / med['main-thread-idle']:.2f}x "
          f"(a forward pass), {med['main-thread-loaded-data'] / med['main-thread-idle']:.2f}x (loading the data); "
          f"a gc.collect() every second costs {med['main-thread-gc'] / med['main-thread-idle']:.2f}x")


if __name__ == "__main__":
    main()
