"""The Keras model against the PyTorch one: forward equivalence on copied weights, step losses with matched
defaults, the Keras run's place in the Trainer and the run store, and every number the Frameworks page shows."""
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from core.engine.config import KERAS_DEFAULTS, TrainConfig, config_columns, keras_matched
from core.engine.data import load_dataset, normalize
from core.engine.keras_model import (KERAS_ADAM_EPS, KERAS_BN_EPS, KERAS_BN_MOMENTUM, build_keras_model,
                                     copy_torch_weights, keras_settings, load_keras, torch_state_dict)
from core.engine.keras_trainer import batch_sizes, converted_mlp, seeded_batches
from core.engine.models import MLP, build_model
from core.engine.trainer import Trainer
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def keras():
    return load_keras()


def keras_probs(model, x_uint8: np.ndarray, training: bool) -> np.ndarray:
    out = np.array(model(x_uint8, training=training))
    return out if model.out.activation.__name__ == "softmax" else torch.softmax(torch.from_numpy(out), 1).numpy()


def torch_probs(mlp: MLP, x_uint8: np.ndarray, training: bool) -> np.ndarray:
    mlp.train(training)
    with torch.no_grad():
        return torch.softmax(mlp(normalize(torch.from_numpy(x_uint8))), 1).numpy()


# --- settings and constants -----------------------------------------------------------------------
def test_keras_constants_are_keras_defaults(keras):
    """The Keras defaults that core uses without loading Keras are Keras' own."""
    bn = keras.layers.BatchNormalization()
    assert (bn.momentum, bn.epsilon) == (KERAS_BN_MOMENTUM, KERAS_BN_EPS)
    assert keras.optimizers.Adam().epsilon == KERAS_ADAM_EPS
    assert keras.backend.backend() == "jax"
    mlp_bn = MLP(batch_norm=True).blocks[0][1]
    assert (mlp_bn.eps, mlp_bn.momentum) == (torch.nn.BatchNorm1d(1).eps, torch.nn.BatchNorm1d(1).momentum)


def test_keras_defaults_setting_names_what_is_matched():
    assert keras_matched("keras") == frozenset() and len(keras_matched("pytorch")) == 5
    for value in KERAS_DEFAULTS[2:]:
        assert len(keras_matched(value)) == 4 and value.removeprefix("pytorch-but-") not in keras_matched(value)
    s = keras_settings(TrainConfig(framework="keras", keras_defaults="pytorch"))
    assert s.torch_init and s.logits and (s.bn_momentum, s.bn_eps, s.adam_eps) == pytest.approx((0.9, 1e-5, 1e-8))
    assert keras_settings(TrainConfig(framework="keras")) == type(s)()  # Keras' own: nothing set


def test_framework_field_validates_and_shows_only_what_applies():
    for bad in (dict(optimizer="sgd"), dict(double_softmax=True), dict(precision="bf16")):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrainConfig(framework="keras", **bad)
    cols = config_columns(TrainConfig(framework="keras"))
    assert cols["Framework"] == "keras" and cols["Keras defaults"] == "keras"
    assert cols["Optimizer"] == cols["ε"] == cols["Arithmetic"] == "–"  # Keras' own ε (1e-7) is not the field's
    assert config_columns(TrainConfig(framework="keras", keras_defaults="pytorch"))["ε"] == "1e-08"
    assert config_columns(TrainConfig())["Keras defaults"] == "–"
    assert TrainConfig.from_dict({"batch_norm": True}).framework == "pytorch"  # runs saved before the field
    assert "keras" in TrainConfig(framework="keras").label()


def test_seeded_batches_are_the_pytorch_trainers_batches(data_dir):
    from core.engine.data import iterate_batches

    d = load_dataset("mnist", data_dir)
    x, y = d.test_x[:1000], d.test_y[:1000]
    gen = torch.Generator().manual_seed(3)
    ours = seeded_batches(x.numpy(), y.numpy(), 64, 3, max_batches=5)
    for _ in range(2):  # two epochs: one permutation each, from one generator
        for xb, yb in iterate_batches(x, y, 64, gen, 5):
            kx, ky = next(ours)
            assert np.array_equal(ky, yb.numpy()) and np.allclose(normalize(torch.from_numpy(kx)), xb)
    assert batch_sizes(1000, 64, None)[-1] == 1000 - 15 * 64 and len(batch_sizes(1000, 64, 5)) == 5


# --- forward equivalence --------------------------------------------------------------------------
@pytest.mark.parametrize("bn", [False, True])
@pytest.mark.parametrize("keras_defaults", ["keras", "pytorch"])
def test_forward_equivalence_on_copied_weights(keras, data_dir, bn, keras_defaults):
    """A Keras model's weights in the PyTorch MLP give the same probabilities, in training mode (batch
    statistics) and inference mode (moving averages, after a few updates so they are not the initial 0 and 1)."""
    cfg = TrainConfig(framework="keras", keras_defaults=keras_defaults, batch_norm=bn, seed=4)
    model = build_keras_model(cfg)
    x = load_dataset("mnist", data_dir).test_x[:256].numpy()
    for i in range(3):
        model(x[64 * i:64 * (i + 1)], training=True)  # moves the BN moving averages
    mlp = converted_mlp(cfg, model, steps=3)
    for training in (True, False):
        assert np.abs(keras_probs(model, x[:128], training) - torch_probs(mlp, x[:128], training)).max() < 2e-5
    if bn:
        assert mlp.blocks[0][1].eps == (1e-5 if keras_defaults == "pytorch" else KERAS_BN_EPS)
        assert not torch.allclose(mlp.blocks[0][1].running_mean, torch.zeros(512))


def test_pytorch_weights_copied_into_keras(keras, data_dir):
    """The other direction (what 'match the defaults' does at the start): PyTorch's initial weights in Keras."""
    cfg = TrainConfig(framework="keras", keras_defaults="pytorch", batch_norm=True, seed=7)
    model, mlp = build_keras_model(cfg), build_model(replace(cfg, framework="pytorch"))
    back = torch_state_dict(model)
    assert all(torch.equal(back[k], v) for k, v in mlp.state_dict().items() if k in back and v.dtype == torch.float32)
    x = load_dataset("mnist", data_dir).test_x[:64].numpy()
    assert np.abs(keras_probs(model, x, True) - torch_probs(mlp, x, True)).max() < 2e-5
    copy_torch_weights(build_model(replace(cfg, framework="pytorch", seed=8)).state_dict(), model)
    assert not torch.equal(torch_state_dict(model)["out.weight"], back["out.weight"])


def test_torch_style_adam_is_pytorchs_adam(keras):
    """With matched defaults Keras' Adam takes PyTorch's ε and PyTorch's place for it: the same parameters after
    20 steps of the same gradients, including gradients as small as ε."""
    from core.engine.keras_model import torch_style_adam

    g = np.random.default_rng(0).normal(0, 1, (20, 50)).astype(np.float32) * np.logspace(-9, -1, 50, dtype=np.float32)
    p = torch.nn.Parameter(torch.zeros(50))
    opt = torch.optim.Adam([p], lr=1e-3)
    var = keras.Variable(np.zeros(50, np.float32))
    kopt = torch_style_adam(learning_rate=1e-3, epsilon=1e-8)
    plain = keras.Variable(np.zeros(50, np.float32))
    kplain = keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-8)  # Keras' own place for ε
    for step in g:
        p.grad = torch.from_numpy(step.copy())
        opt.step()
        kopt.apply([step], [var])
        kplain.apply([step], [plain])
    assert np.allclose(keras.ops.convert_to_numpy(var), p.detach().numpy(), rtol=1e-5, atol=1e-9)
    assert not np.allclose(keras.ops.convert_to_numpy(plain), p.detach().numpy(), rtol=1e-2, atol=1e-6)


# --- training: step losses -------------------------------------------------------------------------
def step_losses(cfg: TrainConfig, data_dir: str) -> list[float]:
    t = Trainer(cfg, data_dir=data_dir, log_every=1)
    t.start().join(240)
    assert t.snapshot.status == "finished", t.snapshot.error
    return [loss for _, loss in t.snapshot.step_losses]


@pytest.mark.parametrize("bn", [False, True])
def test_fifty_step_losses_agree_with_matched_defaults(keras, data_dir, bn):
    """Matched defaults, copied weights, the same 50 batches, float32. The first step agrees to rounding. After
    it Adam turns rounding differences of near-zero gradients into step-sized ones, sooner with BN (a Linear bias
    and constant-pixel columns in front of BN have gradients that are zero in exact arithmetic): PyTorch on 1 vs
    2 threads differs as much (benchmarks/bench_frameworks.py). So: the first 15 steps without BN to 1e-4, and
    every step loosely; the float64 test below holds all 50 to 1e-12."""
    cfg = TrainConfig(batch_norm=bn, epochs=1, max_batches=50, seed=1, keras_defaults="pytorch")
    ref = step_losses(cfg, data_dir)
    got = step_losses(replace(cfg, framework="keras"), data_dir)
    rel = [abs(a - b) / a for a, b in zip(ref, got)]
    assert len(rel) == 50 and rel[0] < 1e-5 and max(rel) < 0.1
    if not bn:
        assert max(rel[:15]) < 1e-4
        # each matched default matters: Keras' own Adam ε (value and place) alone moves the losses at once
        own_eps = step_losses(replace(cfg, framework="keras", keras_defaults="pytorch-but-adam_eps"), data_dir)
        assert max(abs(a - b) / a for a, b in zip(ref[:15], own_eps)) > 1e-3


def test_fifty_steps_in_float64_agree_to_rounding(data_dir):
    """In float64 (no BN: Keras' BatchNormalization computes in float32) the matched Keras run and PyTorch agree
    at every one of 50 steps: nothing but float32 rounding separates them."""
    out = subprocess.run([sys.executable, "benchmarks/bench_frameworks.py", "--case", "float64", "--no-bn", "--steps",
                          "50", "--data-dir", data_dir], capture_output=True, text=True, cwd=ROOT, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(res["keras"]) == 50
    assert max(abs(a - b) / a for a, b in zip(res["pytorch"], res["keras"])) < 1e-12


# --- the run in the trainer and the store -----------------------------------------------------------
def test_keras_run_pauses_resumes_and_stops_within_a_batch(keras, data_dir):
    t = Trainer(TrainConfig(framework="keras", batch_norm=True, epochs=20, max_batches=200), data_dir=data_dir,
                log_every=1).start()
    wait_until(lambda: t.snapshot.step >= 5, 240, 0.02, "5 Keras steps")
    t.pause()
    wait_until(lambda: t.snapshot.status == "paused", 30, 0.02, "the pause")
    step = t.snapshot.step
    time.sleep(0.3)
    assert t.snapshot.step <= step + 1  # at most the batch in flight
    t.resume()
    wait_until(lambda: t.snapshot.step >= step + 5, 60, 0.02, "5 more steps")
    assert t.snapshot.status == "running"
    t.stop()
    t.join(60)
    assert not t.alive and t.snapshot.status == "stopped" and t.snapshot.epoch < 20
    assert t.model is not None  # what the stopped run learned, converted for the run store


def test_keras_run_stopped_while_paused_keeps_its_last_epoch(keras, store):
    """As every run: stopped during epoch 2, it keeps epoch 1's weights and numbers and says so."""
    run = store.start(TrainConfig(framework="keras", epochs=20, max_batches=60))
    wait_until(lambda: store.get(run.id).snapshot.step >= 70, 240, 0.02, "a Keras epoch and then some")
    store.pause(run.id)
    wait_until(lambda: store.get(run.id).snapshot.status == "paused", 30, 0.02, "the pause")
    store.stop(run.id, wait=60)
    snap = store.get(run.id).snapshot
    assert snap.status == "stopped" and snap.epoch == 1 and "epoch 1" in snap.error
    assert store.load_model(run.id).out.weight.shape == (10, 32)


def test_keras_run_diverges_like_any_run(keras, store, monkeypatch):
    """The loss turns NaN at step 26 (epoch 2 of 20-step epochs): the Keras run stops there as diverged and
    keeps epoch 1, as a PyTorch run does (tests/test_store_lifecycle.py)."""
    import core.engine.keras_trainer as kt

    real = kt.seeded_batches

    def poisoned(*args, **kw):
        for step, (x, y) in enumerate(real(*args, **kw), start=1):
            x = x.astype(np.float32)
            if step >= 26:
                x[0, 0, 0] = np.nan
            yield x, y
    monkeypatch.setattr(kt, "seeded_batches", poisoned)
    run = store.start(TrainConfig(framework="keras", max_batches=20, epochs=3))
    store.trainer(run.id).join(240)
    snap = store.get(run.id).snapshot
    assert snap.status == "diverged" and "the training loss became nan at step 26 (epoch 2)" in snap.error
    assert "weights and numbers are those of epoch 1" in snap.error and snap.epoch == 1 and snap.step == 26


def test_keras_run_stored_reloaded_and_drawn(keras, store, data_dir):
    """A finished Keras run: rebuilt from disk, its weights reload into the PyTorch MLP without loading Keras,
    evaluate to the accuracy Keras reported, and classify with the Draw page's predict function."""
    cfg = TrainConfig(framework="keras", batch_norm=True, epochs=1, max_batches=40)
    run = store.start(cfg)
    store.trainer(run.id).join(240)
    snap = store.get(run.id).snapshot
    assert snap.status == "finished", snap.error
    assert len(snap.step_losses) == 4 and snap.samples_per_sec > 0 and snap.history[0].seconds > 0
    code = ("import json, sys, core\n"
            "from core.store.runs import RunStore\n"
            "from core.engine.torch_loop import evaluate\n"
            "from core.engine.data import load_dataset, normalize\n"
            "from core.drawing.predict import predict_digit\n"
            f"store = RunStore({str(store.root)!r}, {data_dir!r})\n"
            f"info = store.get({run.id!r}); model = store.load_model({run.id!r})\n"
            f"d = load_dataset('mnist', {data_dir!r})\n"
            "loss, acc = evaluate(model, d.test_x, d.test_y)\n"
            "p = predict_digit(model, normalize(d.test_x[:1])[0].numpy())\n"
            "print(json.dumps({'framework': info.config.framework, 'acc': acc, 'loss': loss, 'top': p.top,"
            " 'sum': float(p.probs.sum()), 'keras': 'keras' in sys.modules or 'jax' in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    keras_epoch = snap.history[0]
    assert res["framework"] == "keras" and not res["keras"]
    assert abs(res["acc"] - keras_epoch.test_acc) <= 2e-4  # a tie may round the other way
    assert res["loss"] == pytest.approx(keras_epoch.test_loss, rel=1e-3)  # Keras clips probabilities at 1e-7
    assert res["sum"] == pytest.approx(1.0, abs=1e-5) and 0 <= res["top"] <= 9


def test_keras_and_cli(tmp_path, data_dir):
    """python -m core.train --framework keras, and the CPU policy reaching XLA: one thread unless told otherwise."""
    env = {k: v for k, v in os.environ.items() if k not in ("CPU_THREADS", "XLA_FLAGS")}
    out = subprocess.run([sys.executable, "-m", "core.train", "--framework", "keras", "--keras-defaults", "pytorch",
                          "--epochs", "1", "--max-batches", "10", "--bn", "--data-dir", data_dir, "--runs-dir",
                          str(tmp_path), "--json"], capture_output=True, text=True, cwd=ROOT, timeout=240, env=env)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["status"] == "finished" and 0 < res["test_acc"] <= 1 and "keras on jax" in res["device"]
    from core.store.runs import RunStore

    assert RunStore(tmp_path, data_dir).get(res["run_id"]).config.keras_defaults == "pytorch"
    code = ("import os, core\nfrom core.engine.keras_model import load_keras\nload_keras()\n"
            "import jax\nprint(os.environ['XLA_FLAGS'], jax.default_backend())")
    flags = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, env=env)
    assert flags.returncode == 0, flags.stderr
    assert "--xla_cpu_multi_thread_eigen=false" in flags.stdout and "cpu" in flags.stdout


# --- the numbers the Frameworks page shows ----------------------------------------------------------
def test_live_defaults_and_what_the_table_says(keras):
    from core.lessons.frameworks import defaults_table, read_live_defaults

    d = read_live_defaults()
    assert d.torch_init_call == "kaiming_uniform_(a=math.sqrt(5))"
    # the weights are float32: a draw can be the bound itself rounded to float32, a few 1e-9 above it
    f32 = lambda x: float(np.float32(x))  # noqa: E731
    assert 0.99 / math.sqrt(784) < d.torch_weight_max <= f32(1 / math.sqrt(784))
    glorot = math.sqrt(6 / (784 + 512))
    assert 0.99 * glorot < d.keras_weight_max <= f32(glorot) and d.keras_bias_max == 0 and d.torch_bias_max > 0
    assert (d.keras_kernel_init, d.keras_bias_init) == ("GlorotUniform", "Zeros")
    assert d.running_var_ratio == pytest.approx(64 / 63, rel=1e-5)
    assert d.torch_adam_eps_step1 == pytest.approx(1e-8, rel=1e-2)
    assert d.keras_adam_eps_step1 == pytest.approx(1e-7 / math.sqrt(1 - 0.999), rel=1e-2)
    assert d.keras_output_activation == "softmax" and d.keras_from_logits is False and d.torch_outputs_logits
    assert d.input_range_torch == d.input_range_keras == (-1.0, 1.0) and d.input_max_diff < 2e-7
    rows = {r.name: r for r in defaults_table(d)}
    assert "Keras 0.99 = PyTorch 0.01; PyTorch 0.1 = Keras 0.9" in rows["BatchNorm momentum"].note
    assert "31.6x" in rows["Where Adam's ε sits"].note


def test_bn_momentum_conventions_are_equivalent(keras):
    """Keras' momentum m is PyTorch's 1 - m: the same running mean after several batches (the variance differs
    by the n/(n-1) PyTorch applies, which the table shows)."""
    rng = np.random.default_rng(1)
    batches = [rng.normal(2.0, 3.0, (64, 5)).astype(np.float32) for _ in range(6)]
    for keras_m in (0.99, 0.9):
        tbn = torch.nn.BatchNorm1d(5, momentum=1 - keras_m)
        kbn = keras.layers.BatchNormalization(momentum=keras_m)
        for b in batches:
            tbn(torch.from_numpy(b))
            kbn(b, training=True)
        assert np.allclose(tbn.running_mean.numpy(), keras.ops.convert_to_numpy(kbn.moving_mean), rtol=1e-5)
        start = keras_m ** len(batches)  # what is left of the initial variance 1 in both
        assert np.allclose(tbn.running_var.numpy(), start + (keras.ops.convert_to_numpy(kbn.moving_variance) - start) * 64 / 63,
                           rtol=1e-5)


def test_listing_notes_point_at_their_lines():
    from core.lessons.frameworks import keras_listing, pytorch_listing
    from core.lessons.softmax import double_softmax_floor

    py, ks = pytorch_listing(), keras_listing()
    lines = py.code.splitlines()
    assert any("double_softmax" in lines[n - 1] and "softmax" in lines[n - 1] for n, _ in py.notes)
    assert f"{double_softmax_floor(10):.3f}" in " ".join(t for _, t in py.notes)
    assert "class MLP" in py.code and "class CourseModel(keras.Model)" in ks.code and "model.fit(" in ks.code
    for n, note in ks.notes:
        line = ks.code.splitlines()[n - 1]
        assert ("softmax" in line or "Rescaling" in line or "SparseCategoricalCrossentropy" in line), (n, note)


# --- the course-style listings, the yardstick ---------------------------------------------------------------
def test_pytorch_course_listing_computes_what_the_module_does():
    """The short listing is generated from the model the trainer builds: run as code, with the real model's
    weights copied in order, it gives the same outputs in train and eval mode, and its one training step runs.
    Catches a hand-typed listing that drifts (BN after ReLU, a missing layer, another optimizer or learning rate)."""
    from torch import nn
    from torch.nn import functional as F

    from core.lessons.frameworks import COURSE_STYLE, pytorch_course_listing
    code = pytorch_course_listing()
    g = torch.Generator().manual_seed(0)
    ns = {"nn": nn, "torch": torch, "F": F, "x": torch.randn(16, 784, generator=g),
          "y": torch.randint(0, 10, (16,), generator=g)}
    exec(code, ns)
    listed, real = ns["model"], build_model(COURSE_STYLE)
    assert isinstance(ns["optimizer"], torch.optim.Adam) and ns["optimizer"].defaults["lr"] == COURSE_STYLE.lr
    real_state = real.state_dict()
    assert [v.shape for v in listed.state_dict().values()] == [v.shape for v in real_state.values()]
    listed.load_state_dict(dict(zip(listed.state_dict(), real_state.values())))
    x = torch.randn(32, 784, generator=g)
    for train in (True, False):
        listed.train(train), real.train(train)
        with torch.no_grad():
            torch.testing.assert_close(listed(x), real(x))
    assert "nn.BatchNorm1d(512)" in code and "nn.Softmax" not in code  # logits out: the loss applies log-softmax


def test_keras_course_listing_computes_what_the_module_does(keras):
    """The Keras short listing, run as code (compile and a short fit included), then given the real model's weights
    in order: the same probabilities as the CourseModel a Keras run builds. Catches drift in the listing (the
    output activation, the rescaling, the loss or optimizer) that a hand-typed listing would allow."""
    from keras import layers

    from core.lessons.frameworks import COURSE_STYLE, keras_course_listing
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 28, 28), dtype=np.uint8)
    ns = {"keras": keras, "layers": layers, "x_train": x, "y_train": rng.integers(0, 10, 64), "x_test": x[:16],
          "y_test": rng.integers(0, 10, 16)}
    code = keras_course_listing().replace("epochs=10", "epochs=1")  # one pass is enough to prove it runs
    exec(code, ns)
    listed, real = ns["model"], build_keras_model(replace(COURSE_STYLE, framework="keras"))
    assert type(listed.optimizer).__name__ == "Adam" and type(listed.loss).__name__ == "SparseCategoricalCrossentropy"
    in_order = [real.dense[i // 2] if i % 2 == 0 else real.norm[i // 2] for i in range(8)] + [real.out]
    real_weights = [w for layer in in_order for w in layer.get_weights()]
    listed.set_weights(real_weights)
    np.testing.assert_allclose(np.asarray(listed(x[:8], training=False)), np.asarray(real(x[:8], training=False)),
                               rtol=1e-5, atol=1e-6)
    # where precision "auto" measures bf16 faster, the page still lists the Keras run (which is float32 always);
    # the tests pin auto to fp32, which hid this once
    assert keras_course_listing(replace(COURSE_STYLE, precision="bf16")) == keras_course_listing()


def test_replay_is_the_pytorch_trainers_run(data_dir):
    """The yardstick replays the PyTorch twin outside the trainer: in float32 it must be the trainer's run itself,
    logged loss for logged loss, and its test accuracy (else the float64 row would measure the replay, not rounding).
    Catches another batch order, another initial weights or another loss logging."""
    from core.lessons.frameworks import replay
    cfg = TrainConfig(batch_norm=True, epochs=2, max_batches=20, seed=3)
    t = Trainer(cfg, data_dir=data_dir)
    t.start().join(240)
    r32 = replay(cfg, data_dir, torch.float32)
    assert [s for s, _ in r32.step_losses] == [s for s, _ in t.snapshot.step_losses]
    np.testing.assert_allclose([v for _, v in r32.step_losses], [v for _, v in t.snapshot.step_losses], rtol=1e-6)
    assert r32.test_acc == pytest.approx(t.snapshot.final.test_acc, abs=1e-4)
    r64 = replay(cfg, data_dir)
    assert r64.dtype == "float64" and r64.step_losses[0][1] == pytest.approx(r32.step_losses[0][1], rel=1e-3)
    with pytest.raises(ValueError, match="replay"):
        replay(replace(cfg, robust=True), data_dir)


def test_loss_agreement_by_hand():
    """agree_until / parted_at / the moving mean on made-up curves: catches an off-by-one at the parting point and
    a moving mean that is not over 50 steps (5 logged points of 10 steps)."""
    from core.lessons.frameworks import loss_agreement, yardstick_words
    a = [(10 * i, 1.0) for i in range(1, 11)]
    b = [(10 * i, 1.0 if i < 4 else (1.05 if i % 2 else 0.95)) for i in range(1, 11)]
    ag = loss_agreement(a, b, 0.95, 0.94)
    assert (ag.points, ag.agree_until, ag.parted_at) == (10, 30, 40)
    assert ag.max_rel == pytest.approx(0.05) and ag.acc_gap == pytest.approx(0.01)
    assert ag.max_rel_smoothed == pytest.approx(0.01)  # (0.95 + 1.05 + 0.95 + 1.05 + 0.95) / 5, steps 40-80
    same = loss_agreement(a, a)
    assert same.parted_at is None and same.agree_until == 100 and same.max_rel == 0
    wide = loss_agreement(a, [(s, v * 1.1) for s, v in a])
    assert "20.0× the yardstick's" in yardstick_words(wide, ag.__class__(10, 30, 40, 0.05, 0.005, None))
    assert "the size rounding alone makes" in yardstick_words(ag, ag)


def test_replay_duration_is_its_steps_at_float64_pace_plus_the_rest():
    """The yardstick's stated duration: the run's steps at a float64 step's measured cost, plus what the run spent
    outside its steps (evaluation). Catches a duration scaled from the whole run (evaluation included) by a ratio."""
    from core.lessons.frameworks import replay_seconds, step_seconds
    t = step_seconds()
    assert t["float64"] > 0 and t["float32"] > 0
    assert replay_seconds(1.0 + 400 * t["float32"], 400) == pytest.approx(1.0 + 400 * t["float64"])
    assert replay_seconds(0.0, 400) == pytest.approx(400 * t["float64"])
