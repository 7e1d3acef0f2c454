"""Training speed on a CUDA GPU: the course pipeline, the trainer's eager path, its CUDA-graph path and the
floor (the bare step captured once and replayed, nothing else), side by side in one invocation.

    python3 benchmarks/bench_gpu.py --data-dir DIR [--epochs 3]     # on a machine with CUDA

Each case runs in its own process, BN and no-BN, float32; the figure is the median seconds per epoch
(938 training steps of batch 64 + the test evaluation). scripts/gpu_check.sh runs this with the GPU tests.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def trainer(bn: bool, epochs: int, data_dir: str, graph: bool) -> list[float]:
    import core  # noqa: F401 - the CPU threading policy, before torch
    import torch

    from core.engine.config import TrainConfig
    from core.engine.trainer import Trainer

    torch.backends.cuda.matmul.allow_tf32 = False
    t = Trainer(TrainConfig(batch_norm=bn, epochs=epochs, precision="fp32"), data_dir=data_dir,
                device=torch.device("cuda"), cuda_graph=graph, keep_model=False).start()
    t.join()
    snap = t.snapshot
    assert snap.status == "finished", snap.error
    print(f"engine: {snap.engine}", file=sys.stderr)
    return [h.seconds for h in snap.history]


def floor(bn: bool, epochs: int, data_dir: str) -> list[float]:
    """The step alone: data on the GPU, shuffled there, each batch copied into static buffers, forward + loss
    + backward + capturable fused Adam replayed from one CUDA graph; the test set evaluated in one batch."""
    import core  # noqa: F401
    import torch
    import torch.nn.functional as F

    from bench_train import course_network
    from core.engine.data import load_dataset, normalize

    torch.backends.cuda.matmul.allow_tf32 = False
    data = load_dataset("mnist", data_dir)
    x, y = normalize(data.train_x).cuda(), data.train_y.cuda()
    tx, ty = normalize(data.test_x).cuda(), data.test_y.cuda()
    torch.manual_seed(0)
    model = course_network(bn, softmax=False).cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True, capturable=True)
    sx, sy = x[:64].clone(), y[:64].clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(sx), sy).backward()
            opt.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        loss = F.cross_entropy(model(sx), sy)
        loss.backward()
        opt.step()
    gen = torch.Generator(device="cuda").manual_seed(0)
    times = []
    for _ in range(epochs):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        order = torch.randperm(len(y), device="cuda", generator=gen)
        for i in range(len(y) // 64):  # full batches only: the graph has one shape
            idx = order[i * 64:(i + 1) * 64]
            sx.copy_(x[idx])
            sy.copy_(y[idx])
            graph.replay()
        model.eval()
        with torch.no_grad():
            (model(tx).argmax(1) == ty).sum().item()
        model.train()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def run_case(case: str, bn: bool, epochs: int, data_dir: str) -> list[float]:
    if case == "course":
        from bench_train import original_pipeline

        return original_pipeline(bn, epochs, 0, data_dir, device="cuda")
    if case == "floor":
        return floor(bn, epochs, data_dir)
    return trainer(bn, epochs, data_dir, graph=case == "graph")


NAMES = {"course": "course pipeline on cuda (DataLoader + ToTensor/Normalize)", "eager": "project trainer, eager",
         "graph": "project trainer, CUDA graph (default on a GPU)", "floor": "floor: the bare step as one CUDA graph"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=os.environ.get("DATA_DIR", str(ROOT / "data")))
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--bn", action=argparse.BooleanOptionalAction, default=True, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.case:
        print(json.dumps(run_case(a.case, a.bn, a.epochs, a.data_dir)))
        return
    import torch

    if not torch.cuda.is_available():
        sys.exit("no CUDA device: nothing to measure")
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}; median seconds per epoch over {a.epochs} "
          "epochs (938 steps of batch 64 + test evaluation), float32, each case in its own process")
    med = {}
    for case in NAMES:
        for bn in (False, True):
            out = subprocess.run([sys.executable, __file__, "--case", case, "--bn" if bn else "--no-bn", "--epochs",
                                  str(a.epochs), "--data-dir", a.data_dir], capture_output=True, text=True, cwd=ROOT)
            if out.returncode:
                print(f"{case} {'BN' if bn else 'no-BN'} failed:\n{out.stderr[-2000:]}")
                continue
            times = json.loads(out.stdout.strip().splitlines()[-1])
            med[(case, bn)] = statistics.median(times)
            engine = [x for x in out.stderr.splitlines() if x.startswith("engine:")]
            print(f"{NAMES[case]:<58} {'BN   ' if bn else 'no-BN'} {med[(case, bn)]:7.3f} s  "
                  f"(epochs: {', '.join(f'{t:.3f}' for t in times)}) {engine[-1] if engine else ''}")
    for bn in (False, True):
        if ("course", bn) in med and ("graph", bn) in med:
            print(f"{'BN   ' if bn else 'no-BN'}: graph trainer {med[('course', bn)] / med[('graph', bn)]:.1f}x faster than "
                  f"the course pipeline; eager trainer / graph trainer {med.get(('eager', bn), 0) / med[('graph', bn)]:.1f}x")


if __name__ == "__main__":
    main()
