"""Training speed and accuracy benchmark: the course's original pipeline vs this project's trainer.

    .venv/bin/python benchmarks/bench_train.py            # full: speed + accuracy (10 epochs, seeds 0-2)
    .venv/bin/python benchmarks/bench_train.py --quick    # 1 timed epoch per case, accuracy after 2 epochs, 1 seed

Every case runs in a fresh subprocess, one after another, in alternating order, so the ratios
compare runs measured side by side on the same machine in one invocation. The trainer runs twice: with its
default arithmetic (precision="auto": whichever of float32 and bf16 mixed precision trains faster on this machine,
measured once and kept, core/engine/precision.py), with precision="fp32" (what the original pipeline and the bare
loop compute in) and with precision="bf16": the speed part reports auto against the faster of the two.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# --- one case, inside its own process --------------------------------------------------
def course_network(bn: bool, softmax: bool):
    """The course's network as nn.Sequential (PyTorch's default init, Xavier-uniform output layer),
    optionally ending in the original code's nn.Softmax."""
    from torch import nn

    layers, d = [], 784
    for h in (512, 256, 128, 32):
        layers += [nn.Linear(d, h)] + ([nn.BatchNorm1d(h)] if bn else []) + [nn.ReLU()]
        d = h
    out = nn.Linear(d, 10)
    nn.init.xavier_uniform_(out.weight)
    return nn.Sequential(nn.Flatten(), *layers, out, *([nn.Softmax(dim=1)] if softmax else []))


def original_pipeline(bn: bool, epochs: int, seed: int, data_dir: str, max_batches: int | None = None,
                      device: str = "cpu") -> list[float]:
    """The course's code: DataLoader over datasets.MNIST with ToTensor + Normalize, softmax inside the model
    (on a GPU: the model there and each batch moved there, as the course's code would be adapted)."""
    import itertools

    import torch
    from torch import nn
    from torchvision import datasets, transforms

    torch.manual_seed(seed)
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    train_loader = torch.utils.data.DataLoader(datasets.MNIST(data_dir, train=True, download=True, transform=tf), batch_size=64, shuffle=True)
    test_loader = torch.utils.data.DataLoader(datasets.MNIST(data_dir, train=False, transform=tf), batch_size=64, shuffle=False)
    model = course_network(bn, softmax=True).to(device)
    criterion, opt = nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters(), lr=0.001)
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        model.train()
        for x, y in itertools.islice(train_loader, max_batches):
            x, y = x.to(device), y.to(device)
            opt.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            sum((model(x.to(device)).argmax(1) == y.to(device)).sum().item() for x, y in test_loader)  # timed, as the course evaluates
        times.append(time.perf_counter() - t0)
    return times


def time_methods(cls, names: list[str], bucket: dict[str, float], key: str) -> None:
    """Wrap methods of `cls` so the seconds spent in them add up in bucket[key] (this process only)."""
    for name in names:
        def timed(*args, _f=getattr(cls, name), **kw):
            t0 = time.perf_counter()
            try:
                return _f(*args, **kw)
            finally:
                bucket[key] = bucket.get(key, 0.0) + time.perf_counter() - t0
        setattr(cls, name, timed)


def project_trainer(bn: bool, epochs: int, seed: int, data_dir: str, poll: bool = False, probe: bool = False,
                    precision: str = "auto", max_batches: int | None = None) -> dict:
    """This project's Trainer with its run store (snapshots + persistence), optionally polled like the page
    or recording the BatchNorm lab's probe. Also returns the seconds spent in each of those, measured
    inside the same run: a ratio that does not depend on how busy the machine was."""
    from core.lessons.batchnorm import BNProbe
    from core.engine.config import TrainConfig
    from core.engine.control import RunControl
    from core.store.runs import RunStore, _Persist

    spent: dict[str, float] = {}
    time_methods(RunControl, ["publish"], spent, "snapshots")
    time_methods(_Persist, ["on_status", "on_steps", "on_epoch_end", "on_end"], spent, "persistence")
    time_methods(BNProbe, ["before_step", "_hook", "after_backward"], spent, "probe")

    # No torch work in this (main) thread: with libgomp, a second long-lived thread that has run
    # a parallel torch op makes the training thread's many small parallel regions about 2x slower.
    with tempfile.TemporaryDirectory() as runs:
        store = RunStore(runs, data_dir)
        t0 = time.perf_counter()
        run = store.start(TrainConfig(batch_norm=bn, epochs=epochs, seed=seed, precision=precision, max_batches=max_batches),
                          probe=BNProbe() if probe else None)
        trainer = store.trainer(run.id)
        if poll:
            spent["polling (CPU of the polling thread)"] = poll_like_page(trainer)
        trainer.join()
        wall = time.perf_counter() - t0  # from Start to finished, data loading included
        snap = trainer.snapshot
    assert snap.status == "finished", snap.error
    return {"times": [h.seconds for h in snap.history], "acc": [h.test_acc for h in snap.history], "wall": wall,
            "spent": spent}


def poll_like_page(trainer) -> float:
    """What the Train page's fragment does once a second: read the snapshot and build the figures.
    Returns the CPU seconds this polling thread used."""
    from ui.figures import loss_figure, accuracy_figure

    cpu = 0.0
    while trainer.alive:
        t0 = time.thread_time()
        snap = trainer.snapshot
        loss_figure([("run", snap)]).to_json()
        accuracy_figure([("run", snap)]).to_json()
        cpu += time.thread_time() - t0
        time.sleep(1.0)
    return cpu


def bare_loop(bn: bool, epochs: int, seed: int, data_dir: str) -> list[float]:
    """The same training and evaluation as the trainer, with no snapshots, no thread and no persistence."""
    import torch
    import torch.nn.functional as F
    from core.engine.config import TrainConfig
    from core.engine.data import iterate_batches, load_dataset
    from core.engine.models import build_model
    from core.engine.torch_loop import evaluate

    torch.set_flush_denormal(True)
    data = load_dataset("mnist", data_dir)
    model = build_model(TrainConfig(batch_norm=bn, seed=seed))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    gen = torch.Generator().manual_seed(seed)
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        model.train()
        for xb, yb in iterate_batches(data.train_x, data.train_y, 64, gen):
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        evaluate(model, data.test_x, data.test_y)
        times.append(time.perf_counter() - t0)
    return times


def reference_loop(bn: bool, epochs: int, seed: int, data_dir: str, fused: bool = False) -> dict:
    """The course's recipe as a PyTorch user would write it, defect fixed (logits to the loss), seeded the usual
    way: torch.manual_seed, nn.Sequential with PyTorch's default init and a Xavier output layer, torch.randperm
    shuffling, Adam 0.001, batch 64, float32. The same recipe as the trainer, other random numbers: its test
    accuracy is the yardstick for the trainer's. `fused` switches Adam to its fused kernel, which computes the
    same update with different rounding: how far that alone moves the result shows the size of the noise."""
    import torch
    import torch.nn.functional as F
    from core.engine.data import load_dataset, normalize
    from core.engine.torch_loop import evaluate

    torch.set_flush_denormal(True)
    data = load_dataset("mnist", data_dir)
    torch.manual_seed(seed)
    model = course_network(bn, softmax=False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)
    accs = []
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(data.train_y))
        for i in range(0, len(perm), 64):
            idx = perm[i:i + 64]
            loss = F.cross_entropy(model(normalize(data.train_x[idx])), data.train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        accs.append(evaluate(model, data.test_x, data.test_y)[1])
    return {"acc": accs}


def run_case(case: str, bn: bool, epochs: int, seed: int, data_dir: str, max_batches: int | None = None) -> dict:
    if case == "original":
        return {"times": original_pipeline(bn, epochs, seed, data_dir, max_batches)}
    if case == "bare":
        return {"times": bare_loop(bn, epochs, seed, data_dir)}
    if case in ("reference", "reference-fused"):
        return reference_loop(bn, epochs, seed, data_dir, fused=case == "reference-fused")
    if case == "twins":
        return twin_pair(epochs, seed, data_dir)
    return project_trainer(bn, epochs, seed, data_dir, poll=(case == "polled"), probe=(case == "probed"),
                           precision={"trainer-fp32": "fp32", "trainer-bf16": "bf16"}.get(case, "auto"),
                           max_batches=max_batches)


def twin_pair(epochs: int, seed: int, data_dir: str) -> dict:
    """Wall time of the BatchNorm lab's twin pair (BN then no-BN, with probes), from click to both finished."""
    from core.lessons.batchnorm import group_runs, start_twins
    from core.engine.config import TrainConfig
    from core.store.runs import RunStore

    with tempfile.TemporaryDirectory() as runs:
        store = RunStore(runs, data_dir)
        t0 = time.perf_counter()
        group = start_twins(store, TrainConfig(epochs=epochs), [seed])
        for r in group_runs(store, group):
            store.trainer(r.id).join()
        wall = time.perf_counter() - t0
        assert all(r.snapshot.status == "finished" for r in group_runs(store, group))
    return {"times": [wall]}


# --- the orchestrator -------------------------------------------------------------------
def spawn(case: str, bn: bool, epochs: int, seed: int, data_dir: str, root: Path = ROOT) -> dict:
    """A case in a fresh process, of this checkout or of another one (`root`, for --compare)."""
    cmd = [sys.executable, str(root / "benchmarks" / "bench_train.py"), "--case", case, "--bn" if bn else "--no-bn",
           "--epochs", str(epochs), "--seed", str(seed), "--data-dir", data_dir]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
    if out.returncode:
        raise RuntimeError(f"{case} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def mean_sd(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.2%} ± {statistics.stdev(xs):.2%}" if len(xs) > 1 else f"{xs[0]:.2%}"


def speed(data_dir: str, speed_epochs: int, auto: str, rounds: int, compare: Path | None = None) -> None:
    print(f"\n## Speed: seconds per epoch (training + test evaluation, batch 64), median over {rounds} rounds x "
          f"{speed_epochs} epoch(s) per case; each round runs every case once in a fresh process, the order "
          "reversed every other round, the original pipeline next to the trainer; the first epoch of each process "
          "is included")
    cases = ["original", "trainer", "trainer-fp32", "trainer-bf16", "bare", "polled", "probed"]
    cases += ["compared-fp32"] if compare else []  # the same case in the other checkout, in the same rounds
    res: dict[tuple[str, bool], list[float]] = {(c, bn): [] for c in cases for bn in (False, True)}
    per_round: list[dict[tuple[str, bool], float]] = []
    spent: dict[tuple[str, bool], dict[str, float]] = {}  # seconds inside snapshots, persistence, probe, polling
    walls: dict[bool, list[float]] = {False: [], True: []}
    for rnd in range(rounds):  # alternating order: a drift in machine load hits every case alike
        this: dict[tuple[str, bool], float] = {}
        for case in cases if rnd % 2 == 0 else cases[::-1]:
            for bn in (False, True):
                out = (spawn("trainer-fp32", bn, speed_epochs, 0, data_dir, compare) if case == "compared-fp32"
                       else spawn(case, bn, speed_epochs, 0, data_dir))
                res[(case, bn)] += out["times"]
                this[(case, bn)] = statistics.median(out["times"])
                for k, v in out.get("spent", {}).items():
                    spent.setdefault((case, bn), {})[k] = spent.get((case, bn), {}).get(k, 0.0) + v
                if case == "probed":
                    walls[bn].append(out["wall"])
        per_round.append(this)
    print(f"{'case':<42}{'no-BN':>10}{'BN':>10}")
    names = {"original": "original pipeline (course code)", "bare": "bare in-memory loop (float32)",
             "trainer": f"project trainer + run store (auto: {auto})", "trainer-fp32": "project trainer, precision=fp32",
             "trainer-bf16": "project trainer, precision=bf16",
             "polled": "trainer, polled like the Train page",
             "probed": "trainer + BatchNorm-lab probe", "compared-fp32": "--compare's trainer, precision=fp32"}
    med = {k: statistics.median(v) for k, v in res.items()}
    for case in cases:
        print(f"{names[case]:<42}{med[(case, False)]:>9.2f}s{med[(case, True)]:>9.2f}s")
    for bn in (False, True):
        arm = "BN   " if bn else "no-BN"
        for case, arith in (("trainer", f"auto = {auto}"), ("trainer-fp32", "fp32"), ("trainer-bf16", "bf16")):
            ratios = [r[("original", bn)] / r[(case, bn)] for r in per_round]
            print(f"{arm}: speed-up of the trainer ({arith}) over the original: {statistics.median(ratios):.2f}x "
                  f"(median of the rounds: {', '.join(f'{x:.2f}' for x in ratios)})")
        auto_vs_best = [r[("trainer", bn)] / min(r[("trainer-fp32", bn)], r[("trainer-bf16", bn)]) for r in per_round]
        print(f"{arm}: auto's epoch against the faster of fp32 / bf16 in the same round: "
              f"{statistics.median(auto_vs_best):.2f}x (rounds: {', '.join(f'{x:.2f}' for x in auto_vs_best)}; "
              "target at most 1.05x)")
        if compare:
            ratios = [r[("trainer-fp32", bn)] / r[("compared-fp32", bn)] for r in per_round]
            print(f"{arm}: this checkout's epoch (fp32) against {compare}'s in the same round: "
                  f"{statistics.median(ratios):.2f}x (rounds: {', '.join(f'{x:.2f}' for x in ratios)})")
        print(f"{arm}: trainer (fp32) vs bare loop: {med[('trainer-fp32', bn)] / med[('bare', bn)] - 1:+.1%}; "
              f"page polling vs trainer alone: {med[('polled', bn)] / med[('trainer', bn)] - 1:+.1%}; "
              f"BN-lab probe vs trainer alone: {med[('probed', bn)] / med[('trainer', bn)] - 1:+.1%}")
    print("\nMeasured inside the same runs (seconds spent there / training + evaluation time):")
    for bn in (False, True):
        def share(case: str, *keys: str) -> float:
            return sum(spent[(case, bn)].get(k, 0.0) for k in keys) / sum(res[(case, bn)])
        print(f"{'BN   ' if bn else 'no-BN'}: snapshots + persistence {share('trainer', 'snapshots', 'persistence'):.1%}; "
              f"BN-lab probe {share('probed', 'probe'):.1%}; "
              f"page polling {share('polled', 'polling (CPU of the polling thread)'):.1%} of a core")
    pair = spawn("twins", True, speed_epochs, 0, data_dir)["times"][0]
    one = statistics.mean(statistics.median(w) for w in walls.values())
    print(f"twin pair (BN + no-BN, probed, {speed_epochs} epoch(s) each): {pair:.1f} s from start to finished = "
          f"{pair / one:.2f}x one probed run ({one:.1f} s, mean of BN and no-BN, measured the same way)")


def accuracy(data_dir: str, acc_epochs: int, seeds: int, auto: str) -> None:
    print(f"\n## Accuracy: final test accuracy after {acc_epochs} epochs, seeds 0..{seeds - 1}: the project trainer, "
          "and a plain PyTorch loop of the same recipe seeded with torch.manual_seed (float32) as the yardstick")
    cases = [("trainer", auto)] + ([("trainer-fp32", "fp32")] if auto != "fp32" else []) + [
        ("reference", "plain loop"), ("reference-fused", "plain loop, fused Adam")]
    for case, arith in cases:
        for bn in (False, True):
            accs = [spawn(case, bn, acc_epochs, s, data_dir)["acc"][-1] for s in range(seeds)]
            print(f"{'BN   ' if bn else 'no-BN'} {arith}: {mean_sd(accs)}  (each: {', '.join(f'{x:.2%}' for x in accs)})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="shorter: fewer timed epochs, a 2-epoch single-seed accuracy check")
    p.add_argument("--speed-epochs", type=int, default=None, help="timed epochs per case and process (default 2, quick 1)")
    p.add_argument("--rounds", type=int, default=None, help="rounds of the speed part (default 3, quick 2)")
    p.add_argument("--acc-epochs", type=int, default=None, help="epochs of the accuracy runs (default 10, quick 2)")
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 for accuracy (default 3, quick 1)")
    p.add_argument("--speed-only", action="store_true", help="skip the accuracy runs")
    p.add_argument("--accuracy-only", action="store_true", help="skip the speed runs")
    p.add_argument("--data-dir", default=os.environ.get("DATA_DIR", str(ROOT / "data")))
    p.add_argument("--compare", type=Path, help="another checkout of this project (a git worktree of an earlier "
                   "commit, with the same benchmark cases): its trainer (fp32) timed in the same rounds")
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--bn", action=argparse.BooleanOptionalAction, default=False, help=argparse.SUPPRESS)
    p.add_argument("--epochs", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--max-batches", type=int, default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.case:  # worker process
        print(json.dumps(run_case(a.case, a.bn, a.epochs, a.seed, a.data_dir, a.max_batches)))
        return
    speed_epochs = a.speed_epochs or (1 if a.quick else 2)
    acc_epochs = a.acc_epochs or (2 if a.quick else 10)
    seeds = a.seeds or (1 if a.quick else 3)
    import torch
    from core.engine.precision import auto_precision, cpu_model

    print(f"CPU: {cpu_model()}")
    choice = auto_precision()
    auto = choice.precision
    print(f"precision='auto' here: {choice.describe()} ({choice.how})")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device of the trainer: "
          f"{'cuda' if torch.cuda.is_available() else 'cpu'}; data: {a.data_dir}")
    print(f"the trainer's default arithmetic here (precision='auto'): {auto}; the original pipeline and the bare "
          "loop use float32")
    if not a.accuracy_only:
        speed(a.data_dir, speed_epochs, auto, a.rounds or (2 if a.quick else 3), a.compare)
    if not a.speed_only:
        accuracy(a.data_dir, acc_epochs, seeds, auto)


if __name__ == "__main__":
    main()
