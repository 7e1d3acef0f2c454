"""Where one training step's time goes (batch 64, the course MLP), float32 vs bf16 mixed precision.

    .venv/bin/python benchmarks/bench_step.py [--repeats 5] [--data-dir DIR]

All in one process, the variants interleaved and repeated, medians reported, so the numbers compare
side by side. Parts: the layer-1 matrix multiply (64x784 by 784x512); one Adam update of all parameters,
by torch.optim.Adam(fused=True) and by the trainer's FusedAdam; the four BatchNorm layers forward +
backward; and whole training steps as the trainer computes them (forward, loss, backward, FusedAdam) for
no-BN and BN in both arithmetics; the same for the BatchNorm paper's network (784-100-100-100-10 sigmoid, plain SGD,
batch 60: the lab's paper mode), whose matrix products are 5x smaller, with the trainer's PlainSGD and with
torch.optim.SGD; and a 1,020-image chunk of the shuffled training set gathered as the batches are (index_select)
and by indexing (x[idx], what iterate_batches did before).
"""
from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.engine.config import TrainConfig  # noqa: E402
from core.engine.data import iterate_batches, load_dataset  # noqa: E402
from core.engine.models import build_model  # noqa: E402
from core.engine.optimizers import FusedAdam, build_optimizer  # noqa: E402


def per_call(fn, n: int) -> float:
    """Seconds per call of fn, after a short warm-up."""
    for _ in range(max(5, n // 10)):
        fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def matmul_case(bf16: bool):
    x, w = torch.randn(64, 784), torch.randn(512, 784)
    amp = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    def fn():
        with amp:
            F.linear(x, w)
    return fn


def adam_case(ours: bool):
    """One Adam update of all parameters: torch.optim.Adam(fused=True).step() or the trainer's FusedAdam.step()
    (the same kernel without torch.optim's bookkeeping)."""
    model = build_model(TrainConfig(batch_norm=True, precision="fp32"))
    params = list(model.parameters())
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    opt = FusedAdam(params, lr=1e-3) if ours else torch.optim.Adam(params, lr=1e-3, fused=True)
    return opt.step, sum(p.numel() for p in params)


def bn_case():
    layers = [torch.nn.BatchNorm1d(h) for h in (512, 256, 128, 32)]
    xs = [torch.randn(64, h, requires_grad=True) for h in (512, 256, 128, 32)]

    def fn():
        sum(bn(x).square().sum() for bn, x in zip(layers, xs)).backward()
    return fn


def steps_case(bn: bool, bf16: bool, batches, paper: bool = False, torch_sgd: bool = False):
    if paper:
        from core.lessons.bn_paper import pair_configs

        config = replace(pair_configs("paper")[0], batch_norm=bn, precision="fp32")
        model = build_model(config)
        opt = torch.optim.SGD(model.parameters(), lr=config.lr) if torch_sgd else build_optimizer(model.parameters(), config)
    else:
        model = build_model(TrainConfig(batch_norm=bn, precision="fp32"))
        opt = FusedAdam(model.parameters(), lr=1e-3)
    amp = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
    it = itertools.cycle(batches)

    def fn():
        xb, yb = next(it)
        with amp:
            loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return fn


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--data-dir", default=os.environ.get("DATA_DIR", str(ROOT / "data")))
    a = p.parse_args()
    torch.set_flush_denormal(True)
    data = load_dataset("mnist", a.data_dir)
    batches = list(iterate_batches(data.train_x, data.train_y, 64, torch.Generator().manual_seed(0), 200))
    batches60 = list(iterate_batches(data.train_x, data.train_y, 60, torch.Generator().manual_seed(0), 200))
    adam, n_params = adam_case(ours=False)
    fused, _ = adam_case(ours=True)
    cases = {
        "matmul 64x784x512, float32": (matmul_case(False), 2000),
        "matmul 64x784x512, bf16 autocast": (matmul_case(True), 2000),
        f"Adam update, {n_params:,} parameters, torch.optim": (adam, 1000),
        "the same, trainer's FusedAdam (one kernel call)": (fused, 1000),
        "4 BatchNorm layers, forward + backward": (bn_case(), 1000),
    }
    for bn in (False, True):
        for bf16 in (False, True):
            name = f"training step, {'BN' if bn else 'no-BN'}, {'bf16 mixed' if bf16 else 'float32'}"
            cases[name] = (steps_case(bn, bf16, batches), 200)
    for bn in (False, True):
        for bf16 in (False, True):
            name = f"paper network step, {'BN' if bn else 'no-BN'}, {'bf16 mixed' if bf16 else 'float32'}"
            cases[name] = (steps_case(bn, bf16, batches60, paper=True), 400)
        cases[f"paper network step, {'BN' if bn else 'no-BN'}, float32, torch.optim.SGD"] = (
            steps_case(bn, False, batches60, paper=True, torch_sgd=True), 400)
    rows = torch.randperm(len(data.train_x), generator=torch.Generator().manual_seed(0))[:1020]
    cases["gather 1,020 training images, index_select"] = (lambda: torch.index_select(data.train_x, 0, rows), 2000)
    cases["the same, x[idx]"] = (lambda: data.train_x[rows], 2000)
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(a.repeats):  # interleaved: a change in machine load hits every case alike
        for name, (fn, n) in cases.items():
            times[name].append(per_call(fn, n))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {a.repeats} interleaved repeats")
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, t in med.items():
        extra = f"   {2 * 64 * 784 * 512 / t / 1e9:.0f} GFLOP/s" if name.startswith("matmul") else ""
        print(f"  {name:<50}{t * 1e6:9.0f} µs{extra}")
    for net, prefix in (("course network", "training step"), ("paper network", "paper network step")):
        for arm in ("no-BN", "BN"):
            f32, b16 = med[f"{prefix}, {arm}, float32"], med[f"{prefix}, {arm}, bf16 mixed"]
            print(f"{net}, {arm}: a bf16 mixed precision step takes {b16 / f32:.2f}x the float32 one")
    for arm in ("no-BN", "BN"):
        ours, theirs = med[f"paper network step, {arm}, float32"], med[f"paper network step, {arm}, float32, torch.optim.SGD"]
        print(f"paper network, {arm}: a step with PlainSGD takes {ours / theirs:.2f}x one with torch.optim.SGD")
    print(f"gathering a chunk: index_select takes {med['gather 1,020 training images, index_select'] / med['the same, x[idx]']:.2f}x "
          "the time of x[idx]")


if __name__ == "__main__":
    main()
