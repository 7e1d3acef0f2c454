"""The course's Keras model next to the PyTorch trainer: backend choice, speed, equivalence, accuracy.

    .venv/bin/python benchmarks/bench_frameworks.py            # everything (accuracy: 10 epochs, seeds 0-2)
    .venv/bin/python benchmarks/bench_frameworks.py --quick    # each part small enough to prove it works
    .venv/bin/python benchmarks/bench_frameworks.py --part accuracy --seeds 3 --acc-epochs 10

Parts (--part, default all):
  backends     Keras' torch backend vs its JAX backend: the course's BN model in fit, ms per step after compiling
  speed        a Keras run's epoch (train + evaluation, through the Trainer and run store) vs the PyTorch trainer's,
               epoch 1 (Keras compiles) apart; then where Keras' extra time goes, measured inside one process
  equivalence  matched defaults, copied weights, the same batches: step-loss agreement over the first 50 steps,
               float32, with two controls: PyTorch against itself on 1 vs 2 threads, and both in float64
  accuracy     10 epochs, BN: PyTorch, the course's Keras recipe (Keras' own defaults), Keras with matched defaults

Every case runs in a fresh process (Keras' backend, XLA's flags and the thread policy are per process), cases of
a part one after another in alternating order, so ratios compare runs measured side by side.
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


# --- cases, each inside its own process ------------------------------------------------------------
def backend_case(steps: int, data_dir: str) -> dict:
    """The course's BN model (Keras' own defaults) in fit on whatever KERAS_BACKEND says, batch 64."""
    import core  # noqa: F401 - the thread policy first
    from core.engine.config import TrainConfig
    from core.engine.data import load_dataset
    from core.engine.keras_model import build_keras_model, load_keras

    keras = load_keras()
    d = load_dataset("mnist", data_dir)
    x, y = d.train_x.numpy()[: steps * 64], d.train_y.numpy()[: steps * 64]
    model = build_keras_model(TrainConfig(framework="keras", batch_norm=True))
    t0 = time.perf_counter()
    model.fit(x[:640], y[:640], batch_size=64, epochs=1, verbose=0, shuffle=False)  # compiles
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=64, epochs=1, verbose=0, shuffle=False)
    return {"ms_per_step": 1000 * (time.perf_counter() - t0) / steps, "first_10_steps_s": compile_s,
            "backend": keras.backend.backend()}


def trainer_case(framework: str, bn: bool, epochs: int, seed: int, data_dir: str, keras_defaults: str = "keras",
                 max_batches: int | None = None) -> dict:
    """One run through the run store, as the dashboard starts it; the seconds spent in the Keras bridge's hooks."""
    from core.engine.config import TrainConfig
    from core.engine.keras_trainer import FitBridge
    from core.store.runs import RunStore

    spent = {"bridge": 0.0}
    for name in ("on_epoch_begin", "on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin", "on_epoch_end"):
        def timed(*args, _f=getattr(FitBridge, name), **kw):
            t0 = time.perf_counter()
            try:
                return _f(*args, **kw)
            finally:
                spent["bridge"] += time.perf_counter() - t0
        setattr(FitBridge, name, timed)
    cfg = TrainConfig(framework=framework, keras_defaults=keras_defaults, batch_norm=bn, epochs=epochs, seed=seed,
                      max_batches=max_batches)
    with tempfile.TemporaryDirectory() as runs:
        store = RunStore(runs, data_dir)
        run = store.start(cfg)
        store.trainer(run.id).join()
        snap = store.get(run.id).snapshot
    assert snap.status == "finished", snap.error
    return {"times": [h.seconds for h in snap.history], "acc": [h.test_acc for h in snap.history],
            "steps": snap.step, "spent": spent}


def keras_breakdown(bn: bool, data_dir: str) -> dict:
    """Where a Keras epoch's time goes, all in this process after compiling: the jitted training step alone on
    batches already on the device; the same with the host reading the loss after every step (what the bridge's
    per-batch hook costs); fit with no callback; fit with the bridge (the Keras run); evaluation of 10,000 images."""
    import core  # noqa: F401
    import jax
    import numpy as np

    from core.engine.config import TrainConfig
    from core.engine.data import load_dataset, num_batches
    from core.engine.keras_model import build_keras_model, load_keras
    from core.engine.keras_trainer import EVAL_BATCH, seeded_batches

    keras = load_keras()
    d = load_dataset("mnist", data_dir)
    x, y, tx, ty = d.train_x.numpy(), d.train_y.numpy(), d.test_x.numpy(), d.test_y.numpy()
    steps = num_batches(len(x), 64) - 1
    model = build_keras_model(TrainConfig(framework="keras", batch_norm=bn))
    batches = seeded_batches(x, y, 64, 0, steps)  # full batches only: one compiled shape
    model.fit(batches, steps_per_epoch=20, epochs=1, verbose=0, shuffle=False)  # compile
    model.evaluate(tx, ty, batch_size=EVAL_BATCH, verbose=0)
    out: dict[str, float] = {}

    def timed(name: str, fn) -> None:
        t0 = time.perf_counter()
        fn()
        out[name] = (time.perf_counter() - t0) / steps * 1000

    timed("fit, no callback", lambda: model.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False))
    sync = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: None)  # makes fit read logs each step
    timed("fit + a per-batch hook (host reads the loss)",
          lambda: model.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False, callbacks=[sync]))
    t0 = time.perf_counter()
    model.evaluate(tx, ty, batch_size=EVAL_BATCH, verbose=0)
    out["evaluation of the test set, s"] = time.perf_counter() - t0
    # Last, because the jitted step donates (and so deletes) the model's own weight buffers:
    xs = [jax.device_put(next(batches)) for _ in range(steps)]
    state = model._get_jax_state(trainable_variables=True, non_trainable_variables=True, optimizer_variables=True,
                                 metrics_variables=True)
    step = jax.jit(model.train_step, donate_argnums=0)
    logs, state = step(state, xs[0])
    jax.block_until_ready(state)

    def loop(read: bool) -> None:
        nonlocal state
        for b in xs:
            logs, state = step(state, b)
            if read:
                float(logs["loss"])
        jax.block_until_ready(state)

    timed("jitted train step, batches on the device", lambda: loop(False))
    timed("same, the host reading the loss each step", lambda: loop(True))
    out["steps"] = steps
    return out


def torch_breakdown(bn: bool, data_dir: str) -> dict:
    """The PyTorch trainer's step alone (its model, fused Adam, in-memory batches) and its evaluation."""
    import core  # noqa: F401
    import torch
    from torch.nn import functional as F

    from core.engine.config import TrainConfig
    from core.engine.data import iterate_batches, load_dataset
    from core.engine.models import build_model
    from core.engine.optimizers import build_optimizer
    from core.engine.torch_loop import evaluate

    torch.set_flush_denormal(True)
    d = load_dataset("mnist", data_dir)
    cfg = TrainConfig(batch_norm=bn)
    model = build_model(cfg)
    opt = build_optimizer(model.parameters(), cfg)
    batches = list(iterate_batches(d.train_x, d.train_y, 64, torch.Generator().manual_seed(0)))[:-1]
    for _ in range(2):
        t0 = time.perf_counter()
        for xb, yb in batches:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        ms = (time.perf_counter() - t0) / len(batches) * 1000
    t0 = time.perf_counter()
    evaluate(model, d.test_x, d.test_y)
    return {"train step, ms": ms, "evaluation of the test set, s": time.perf_counter() - t0}


def equivalence_case(bn: bool, steps: int, seed: int, data_dir: str) -> dict:
    """Step losses of the PyTorch trainer and of a Keras run with matched defaults (PyTorch's initial weights
    copied), the same batches, float32."""
    from core.engine.config import TrainConfig
    from core.engine.trainer import Trainer

    out = {}
    for fw in ("pytorch", "keras"):
        t = Trainer(TrainConfig(framework=fw, keras_defaults="pytorch", batch_norm=bn, epochs=1, max_batches=steps,
                                seed=seed), data_dir=data_dir, log_every=1)
        t.start().join()
        assert t.snapshot.status == "finished", t.snapshot.error
        out[fw] = [loss for _, loss in t.snapshot.step_losses]
    return out


def threads_case(bn: bool, steps: int, seed: int, data_dir: str) -> dict:
    """The PyTorch trainer's step losses with this process's CPU_THREADS (the spawner sets 1 or 2)."""
    from core.engine.config import TrainConfig
    from core.engine.trainer import Trainer

    t = Trainer(TrainConfig(batch_norm=bn, epochs=1, max_batches=steps, seed=seed), data_dir=data_dir, log_every=1)
    t.start().join()
    return {"losses": [loss for _, loss in t.snapshot.step_losses]}


def float64_case(bn: bool, steps: int, seed: int, data_dir: str) -> dict:
    """Both frameworks in float64 (no BN: Keras' BatchNormalization computes in float32): the matched Keras model (train_on_batch) and the PyTorch MLP with
    torch.optim.Adam, the same initial weights and batches."""
    import core  # noqa: F401
    from dataclasses import replace

    import torch

    from core.engine.config import TrainConfig
    from core.engine.data import load_dataset
    from core.engine.keras_model import build_keras_model, load_keras
    from core.engine.keras_trainer import seeded_batches
    from core.engine.models import build_model

    keras = load_keras()
    import jax

    jax.config.update("jax_enable_x64", True)
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    d = load_dataset("mnist", data_dir)
    cfg = TrainConfig(framework="keras", keras_defaults="pytorch", batch_norm=bn, seed=seed, max_batches=steps)
    km = build_keras_model(cfg)
    tm = build_model(replace(cfg, framework="pytorch")).double()
    opt = torch.optim.Adam(tm.parameters(), lr=cfg.lr)
    gen = seeded_batches(d.train_x.numpy(), d.train_y.numpy(), 64, seed, steps)
    out = {"pytorch": [], "keras": []}
    for _ in range(steps):
        xb, yb = next(gen)
        x = torch.from_numpy(xb).flatten(1).double().div(255).sub(0.5).div(0.5)
        loss = torch.nn.functional.cross_entropy(tm(x), torch.from_numpy(yb))
        opt.zero_grad()
        loss.backward()
        opt.step()
        out["pytorch"].append(loss.item())
        out["keras"].append(float(km.train_on_batch(xb, yb, return_dict=True)["loss"]))
    return out


def run_case(a: argparse.Namespace) -> dict:
    if a.case == "backend":
        return backend_case(a.steps, a.data_dir)
    if a.case in ("pytorch", "keras"):
        return trainer_case(a.case, a.bn, a.epochs, a.seed, a.data_dir, a.keras_defaults, a.max_batches)
    if a.case == "keras-breakdown":
        return keras_breakdown(a.bn, a.data_dir)
    if a.case == "torch-breakdown":
        return torch_breakdown(a.bn, a.data_dir)
    if a.case == "equivalence":
        return equivalence_case(a.bn, a.steps, a.seed, a.data_dir)
    if a.case == "threads":
        return threads_case(a.bn, a.steps, a.seed, a.data_dir)
    if a.case == "float64":
        return float64_case(a.bn, a.steps, a.seed, a.data_dir)
    raise ValueError(a.case)


# --- the orchestrator ------------------------------------------------------------------------------
def spawn(case: str, data_dir: str, env: dict | None = None, **kw) -> dict:
    cmd = [sys.executable, __file__, "--case", case, "--data-dir", data_dir]
    for k, v in kw.items():
        if isinstance(v, bool):
            cmd.append(f"--{k.replace('_', '-')}" if v else f"--no-{k.replace('_', '-')}")
        elif v is not None:
            cmd += [f"--{k.replace('_', '-')}", str(v)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **(env or {})})
    if out.returncode:
        raise RuntimeError(f"{case} {kw} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def mean_sd(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.2%} ± {statistics.stdev(xs):.2%}" if len(xs) > 1 else f"{xs[0]:.2%}"


def backends(data_dir: str, rounds: int, steps: int) -> None:
    print(f"\n## Keras backend: the course's BN model in fit, batch 64, ms per step over {steps} steps after the "
          f"first 10 (which compile); {rounds} round(s), the order alternating, each case its own process")
    res: dict[str, list[float]] = {"jax": [], "torch": []}
    first: dict[str, list[float]] = {"jax": [], "torch": []}
    for rnd in range(rounds):
        for b in ("jax", "torch") if rnd % 2 == 0 else ("torch", "jax"):
            out = spawn("backend", data_dir, env={"KERAS_BACKEND": b}, steps=steps)
            res[b].append(out["ms_per_step"])
            first[b].append(out["first_10_steps_s"])
    for b in res:
        print(f"{b:<6} {statistics.median(res[b]):6.2f} ms/step (rounds: {', '.join(f'{v:.2f}' for v in res[b])}); "
              f"first 10 steps incl. compiling {statistics.median(first[b]):.1f} s")
    print(f"torch backend / JAX backend: {statistics.median(res['torch']) / statistics.median(res['jax']):.2f}x")


def speed(data_dir: str, rounds: int, epochs: int) -> None:
    print(f"\n## Speed: seconds per epoch (training + evaluation of the 10,000 test images), each run through the "
          f"Trainer and run store as the dashboard starts it; {rounds} round(s) x {epochs} epochs, the order "
          "alternating; epoch 1 apart (Keras compiles its steps there)")
    for bn in (True, False):
        arm = "BN   " if bn else "no-BN"
        later: dict[str, list[float]] = {"pytorch": [], "keras": []}
        first: dict[str, list[float]] = {"pytorch": [], "keras": []}
        ratios, bridge = [], []
        for rnd in range(rounds):
            this = {}
            for fw in ("pytorch", "keras") if rnd % 2 == 0 else ("keras", "pytorch"):
                out = spawn(fw, data_dir, bn=bn, epochs=epochs)
                first[fw].append(out["times"][0])
                later[fw] += out["times"][1:]
                this[fw] = statistics.median(out["times"][1:])
                if fw == "keras":
                    bridge.append(out["spent"]["bridge"] / sum(out["times"]))
            ratios.append(this["keras"] / this["pytorch"])
        for fw in ("pytorch", "keras"):
            print(f"{arm} {fw:<8} epoch 1: {statistics.median(first[fw]):5.2f} s   later epochs: "
                  f"{statistics.median(later[fw]):5.2f} s (each: {', '.join(f'{v:.2f}' for v in later[fw])})")
        print(f"{arm} Keras epoch / PyTorch epoch (later epochs, per round): {statistics.median(ratios):.2f}x "
              f"({', '.join(f'{r:.2f}' for r in ratios)}); target at most 2x. Time inside the bridge's hooks: "
              f"{statistics.mean(bridge):.1%} of the Keras run")
    print("\nWhere a Keras epoch's time goes (BN, ms per training step, one process each, after compiling):")
    k = spawn("keras-breakdown", data_dir, bn=True)
    t = spawn("torch-breakdown", data_dir, bn=True)
    for name, v in k.items():
        if name != "steps" and not name.endswith(", s"):
            print(f"  Keras {name:<48} {v:6.2f}")
    print(f"  PyTorch trainer's step (model + fused Adam)             {t['train step, ms']:6.2f}")
    print(f"  evaluation of the test set: Keras {k['evaluation of the test set, s']:.2f} s, PyTorch "
          f"{t['evaluation of the test set, s']:.2f} s")
    xla, fit = k["jitted train step, batches on the device"], k["fit, no callback"]
    print(f"  so of Keras' step: XLA's computation + dispatch {xla:.2f} ms ({xla / t['train step, ms']:.2f}x PyTorch's "
          f"step), fit's own loop {fit - xla:+.2f} ms, the bridge's per-step read of the loss "
          f"{k['fit + a per-batch hook (host reads the loss)'] - fit:+.2f} ms")


def rel_diffs(a: list[float], b: list[float]) -> list[float]:
    return [abs(x - y) / abs(x) for x, y in zip(a, b)]


def describe(rel: list[float]) -> str:
    within = next((i for i, r in enumerate(rel) if r >= 1e-3), len(rel))
    return (f"step 1 {rel[0]:.1e}, max over {len(rel)} {max(rel):.1e}, median {statistics.median(rel):.1e}; "
            f"within 1e-3 for the first {within} steps")


def equivalence(data_dir: str, seeds: int, steps: int = 50) -> None:
    print(f"\n## Equivalence: relative difference of the step losses, PyTorch trainer vs Keras with matched "
          f"defaults (PyTorch's initial weights, BN momentum and ε, Adam ε in PyTorch's place, logits), the same "
          f"batches, seeds 0..{seeds - 1}; targets: step 1 within 1e-5, the first {steps} within 1e-3. Controls "
          "(seed 0): PyTorch against itself on 1 vs 2 threads, and both frameworks in float64")
    for bn in (False, True):
        arm = "BN   " if bn else "no-BN"
        met = 0
        for seed in range(seeds):
            f32 = spawn("equivalence", data_dir, bn=bn, steps=steps, seed=seed)
            rel = rel_diffs(f32["pytorch"], f32["keras"])
            met += max(rel) < 1e-3
            print(f"{arm} float32, Keras vs PyTorch, seed {seed}:  {describe(rel)}")
        print(f"{arm} all {steps} steps within 1e-3 in {met} of {seeds} seeds")
        one, two = (spawn("threads", data_dir, env={"CPU_THREADS": n}, bn=bn, steps=steps, seed=0)["losses"]
                    for n in ("1", "2"))
        print(f"{arm} float32, PyTorch 1 vs 2 threads:    {describe(rel_diffs(one, two))}")
        if bn:  # keras.backend.result_type("float64", "float32") is float32: its BatchNormalization rounds to float32
            print(f"{arm} float64: no control, Keras' BatchNormalization computes in float32 whatever its input")
            continue
        f64 = spawn("float64", data_dir, bn=bn, steps=steps, seed=0)
        print(f"{arm} float64, Keras vs PyTorch:          {describe(rel_diffs(f64['pytorch'], f64['keras']))}")


def accuracy(data_dir: str, epochs: int, seeds: int, max_batches: int | None) -> None:
    print(f"\n## Accuracy: final test accuracy after {epochs} epochs, BN, seeds 0..{seeds - 1}"
          + (f", {max_batches} batches per epoch" if max_batches else ""))
    cases = [("pytorch", "keras", "PyTorch trainer"), ("keras", "keras", "Keras, its own defaults (the course's recipe)"),
             ("keras", "pytorch", "Keras, PyTorch's defaults matched")]
    accs: dict[str, list[float]] = {}
    for fw, kd, label in cases:
        accs[label] = [spawn(fw, data_dir, bn=True, epochs=epochs, seed=s, keras_defaults=kd,
                             max_batches=max_batches)["acc"][-1] for s in range(seeds)]
        print(f"{label:<48} {mean_sd(accs[label])}  (each: {', '.join(f'{x:.2%}' for x in accs[label])})")
    torch_accs, matched = accs[cases[0][2]], accs[cases[2][2]]
    diffs = [(b - a) * 100 for a, b in zip(torch_accs, matched)]
    print(f"matched Keras - PyTorch, same seed: {', '.join(f'{d:+.2f}' for d in diffs)} points "
          f"(mean {statistics.mean(diffs):+.2f})")
    if len(torch_accs) > 1:
        sd_t, sd_k = statistics.stdev(torch_accs) * 100, statistics.stdev(matched) * 100
        pooled = ((sd_t ** 2 + sd_k ** 2) / 2) ** 0.5
        print(f"seed-to-seed sd: PyTorch {sd_t:.2f}, matched Keras {sd_k:.2f}, pooled {pooled:.2f} points; the mean "
              f"difference is {'below' if abs(statistics.mean(diffs)) < pooled else 'NOT below'} the pooled spread, "
              f"{sum(abs(d) < pooled for d in diffs)} of {len(diffs)} single-seed differences are. (With BN the twins "
              "part ways within a few steps, so a same-seed pair differs like two seeds: about 1.4x the sd.)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small versions of every part")
    p.add_argument("--part", choices=("all", "backends", "speed", "equivalence", "accuracy"), default="all")
    p.add_argument("--rounds", type=int, default=None, help="rounds of backends and speed (default 3, quick 1)")
    p.add_argument("--acc-epochs", type=int, default=None, help="epochs of the accuracy runs (default 10, quick 2)")
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 for accuracy (default 3, quick 1)")
    p.add_argument("--data-dir", default=os.environ.get("DATA_DIR", str(ROOT / "data")))
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--bn", action=argparse.BooleanOptionalAction, default=True, help=argparse.SUPPRESS)
    p.add_argument("--epochs", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=50, help=argparse.SUPPRESS)
    p.add_argument("--keras-defaults", default="keras", help=argparse.SUPPRESS)
    p.add_argument("--max-batches", type=int, default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.case:  # worker process
        print(json.dumps(run_case(a)))
        return
    rounds = a.rounds or (1 if a.quick else 3)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}; "
          f"CPU_THREADS={os.environ.get('CPU_THREADS', 'auto')}; data: {a.data_dir}")
    if a.part in ("all", "backends"):
        backends(a.data_dir, rounds, 200 if a.quick else 900)
    if a.part in ("all", "speed"):
        speed(a.data_dir, rounds, 2 if a.quick else 3)
    if a.part in ("all", "equivalence"):
        equivalence(a.data_dir, 2 if a.quick else 5)
    if a.part in ("all", "accuracy"):
        accuracy(a.data_dir, a.acc_epochs or (2 if a.quick else 10), a.seeds or (1 if a.quick else 3),
                 200 if a.quick else None)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
