"""Core engine on small slices of the real data: models, data, trainer, run store, CLI."""
import json
import math
import subprocess
import sys
import threading
import time

import pytest
import torch

from tests.waiting import wait_until

from core.engine.config import TrainConfig, parse_hidden
from core.engine.data import DataUnavailableError, iterate_batches, load_dataset, normalize
from core.engine.models import build_model
from core.store.runs import RunStore, WeightsError, load_weights
from core.engine.torch_loop import evaluate
from core.engine.trainer import Trainer

TINY = dict(max_batches=20, epochs=2, batch_size=64)


def run_to_end(trainer: Trainer, timeout: float = 120) -> None:
    trainer.start().join(timeout)
    assert not trainer.alive, "trainer did not finish in time"


@pytest.mark.parametrize("bn", [False, True])
def test_output_shapes(bn):
    model = build_model(TrainConfig(batch_norm=bn))
    model.eval()
    assert model(torch.zeros(5, 1, 28, 28)).shape == (5, 10)
    assert model(torch.zeros(3, 784)).shape == (3, 10)
    sizes = [b[0].out_features for b in model.blocks]
    assert sizes == [512, 256, 128, 32] and model.out.out_features == 10
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules()) == bn


def test_double_softmax_only_as_option():
    x = torch.randn(4, 784)
    plain = build_model(TrainConfig())
    assert not torch.allclose(plain(x).sum(1), torch.ones(4))  # logits, not probabilities
    ds = build_model(TrainConfig(double_softmax=True))
    assert torch.allclose(ds(x).sum(1), torch.ones(4))


def test_same_seed_same_linear_weights_with_and_without_bn():
    a, b = build_model(TrainConfig(batch_norm=False, seed=3)), build_model(TrainConfig(batch_norm=True, seed=3))
    la = [m for m in a.modules() if isinstance(m, torch.nn.Linear)]
    lb = [m for m in b.modules() if isinstance(m, torch.nn.Linear)]
    assert all(torch.equal(x.weight, y.weight) and torch.equal(x.bias, y.bias) for x, y in zip(la, lb))


def test_data_in_memory_and_normalised(data_dir):
    d = load_dataset("mnist", data_dir)
    assert d.train_x.dtype == torch.uint8 and d.train_x.shape == (60000, 28, 28) and d.test_x.shape == (10000, 28, 28)
    assert load_dataset("mnist", data_dir) is d  # loaded once per process
    x = normalize(d.train_x[:2])
    assert x.shape == (2, 784) and x.min() >= -1 and x.max() <= 1
    from torchvision import transforms
    from PIL import Image
    ref = transforms.Normalize((0.5,), (0.5,))(transforms.ToTensor()(Image.fromarray(d.train_x[0].numpy())))
    assert torch.allclose(ref.flatten(), x[0], atol=1e-6)


def test_batches_are_seeded(data_dir):
    d = load_dataset("mnist", data_dir)
    first = lambda seed: next(iterate_batches(d.train_x, d.train_y, 8, torch.Generator().manual_seed(seed)))[1]
    assert torch.equal(first(1), first(1)) and not torch.equal(first(1), first(2))
    assert len(list(iterate_batches(d.train_x, d.train_y, 64, None, max_batches=5))) == 5


def test_batches_are_the_seeded_permutation_sliced_in_order(data_dir):
    """Chunked normalisation changes nothing: batch b is rows order[b*B:(b+1)*B], normalised, for any B."""
    d = load_dataset("mnist", data_dir)
    x, y = d.test_x[:3000], d.test_y[:3000]
    for bs, max_batches in ((64, None), (100, None), (7, 300), (1000, None), (3000, None)):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(4))
        got = list(iterate_batches(x, y, bs, torch.Generator().manual_seed(4), max_batches))
        assert len(got) == (max_batches or -(-len(x) // bs))
        for b, (xb, yb) in enumerate(got):
            idx = order[b * bs:(b + 1) * bs]
            assert torch.equal(xb, normalize(x[idx])) and torch.equal(yb, y[idx]), (bs, b)
    assert sum(len(yb) for _, yb in iterate_batches(x, y, 64)) == 3000  # unshuffled: every row once


def test_offline_missing_data_message(tmp_path, monkeypatch):
    import torchvision.datasets.mnist as m

    def no_network(*a, **k):
        raise OSError("network is unreachable")
    monkeypatch.setattr(m, "download_and_extract_archive", no_network)
    monkeypatch.setattr(m, "download_url", no_network, raising=False)
    with pytest.raises(DataUnavailableError) as e:
        load_dataset("fashion-mnist", tmp_path / "empty")
    msg = str(e.value)
    assert str(tmp_path / "empty") in msg and "train-images-idx3-ubyte" in msg and "DATA_DIR" in msg
    with pytest.raises(DataUnavailableError, match="downloading is switched off"):
        load_dataset("mnist", tmp_path / "empty2", download=False)


@pytest.mark.parametrize("field,kw", [
    ("lr", dict(lr=0)), ("lr", dict(lr=-1e-3)), ("lr", dict(lr=math.nan)), ("lr", dict(lr=math.inf)),
    ("batch_size", dict(batch_size=0)), ("batch_size", dict(batch_size=60001)), ("batch_size", dict(batch_size=1.5)),
    ("epochs", dict(epochs=0)), ("hidden", dict(hidden=())), ("hidden", dict(hidden=(512, 0))),
    ("hidden", dict(hidden=(-3,))), ("dataset", dict(dataset="cifar")), ("seed", dict(seed=-1)),
    ("max_batches", dict(max_batches=0)), ("precision", dict(precision="fp16")),
])
def test_invalid_config_names_field(field, kw):
    with pytest.raises(ValueError, match=f"^{field}"):
        TrainConfig(**kw)


def test_parse_hidden():
    assert parse_hidden("512, 256,128,32") == (512, 256, 128, 32)
    for bad in ("", "a,b", "3,-1", "0", "512,,3", "1_000", "512 256", "٥١٢", "512,"):
        with pytest.raises(ValueError, match="^hidden"):
            parse_hidden(bad)


def test_loss_falls_and_metrics_recorded(data_dir):
    t = Trainer(TrainConfig(max_batches=60, epochs=2), data_dir=data_dir, log_every=5)
    run_to_end(t)
    s = t.snapshot
    assert s.status == "finished", s.error
    assert len(s.history) == 2 and s.epoch == 2 and s.step == 120
    assert s.history[1].train_loss < s.history[0].train_loss
    assert s.step_losses[-1][1] < s.step_losses[0][1]
    assert s.history[-1].test_acc > 0.8 and s.samples_per_sec > 0
    data, dev = load_dataset("mnist", data_dir), next(t.model.parameters()).device  # the trainer's device
    loss, acc = evaluate(t.model, data.test_x.to(dev), data.test_y.to(dev))
    assert acc == pytest.approx(s.history[-1].test_acc) and loss == pytest.approx(s.history[-1].test_loss, rel=1e-5)


def test_trainer_matches_a_plain_pytorch_loop(data_dir):
    """The trainer adds nothing to the maths: nn.Sequential + CrossEntropyLoss + torch.optim.Adam, from the same initial
    weights and the same batches, gives the same step losses, epoch loss and accuracy.

    Both sides use the same arithmetic: Adam's fused kernel (the trainer's FusedAdam is bit-identical to
    torch.optim.Adam(fused=True): test_fused_adam_equals_torch_adam_bit_for_bit), one CPU thread and denormals flushed
    to zero as the trainer's thread does. So the tolerance is not a guess at one CPU's rounding: comparing with Adam's
    default (foreach) path instead failed on an AMD EPYC (30 of 40 losses off by more than 1e-4 after Adam amplified
    last-bit differences), a difference of two valid float32 paths, not of the trainer. Catches a trainer that
    skips or repeats a batch, steps twice, zeroes gradients late, or reports a loss of another step."""
    from torch import nn

    cfg = TrainConfig(precision="fp32", max_batches=40, epochs=1, seed=5)
    t = Trainer(cfg, data_dir=data_dir, log_every=1)
    run_to_end(t)
    model = build_model(cfg)  # same seed: the trainer's initial weights
    plain = nn.Sequential(nn.Flatten(), *[layer for block in model.blocks for layer in block], model.out)
    opt, criterion = torch.optim.Adam(plain.parameters(), lr=cfg.lr, fused=True), nn.CrossEntropyLoss()
    data, losses, correct = load_dataset("mnist", data_dir), [], 0
    flush = torch.set_flush_denormal(True)  # as the trainer's thread does (True: this CPU can)
    try:
        for xb, yb in iterate_batches(data.train_x, data.train_y, 64, torch.Generator().manual_seed(cfg.seed), 40):
            out = plain(xb)
            loss = criterion(out, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            correct += (out.argmax(1) == yb).sum().item()
    finally:
        if flush:
            torch.set_flush_denormal(False)
    assert [loss for _, loss in t.snapshot.step_losses] == pytest.approx(losses, rel=1e-6)
    epoch = t.snapshot.history[0]  # 40 full batches of 64
    assert epoch.train_loss == pytest.approx(sum(losses) / len(losses), rel=1e-6)
    assert epoch.train_acc == correct / (40 * 64)


def test_fused_adam_equals_torch_adam_bit_for_bit():
    """FusedAdam is torch.optim.Adam(fused=True) without its bookkeeping: the same weights after many steps, BN included."""
    import torch.nn.functional as F

    from core.engine.optimizers import FusedAdam

    a, b = build_model(TrainConfig(batch_norm=True, seed=2)), build_model(TrainConfig(batch_norm=True, seed=2))
    ours, theirs = FusedAdam(a.parameters(), lr=1e-3), torch.optim.Adam(b.parameters(), lr=1e-3, fused=True)
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        x, y = torch.randn(16, 784, generator=g), torch.randint(0, 10, (16,), generator=g)
        for model, opt in ((a, ours), (b, theirs)):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name
    assert not torch.equal(a.out.weight, build_model(TrainConfig(batch_norm=True, seed=2)).out.weight)  # it moved


def test_precision_auto_resolves_and_old_configs_read_as_fp32():
    assert TrainConfig().precision == "fp32" and TrainConfig(precision="bf16").precision == "bf16"
    assert "bf16" in TrainConfig(precision="bf16").label() and "bf16" not in TrainConfig(precision="fp32").label()
    old = TrainConfig(precision="fp32").to_dict()
    del old["precision"]  # a run saved before the field existed trained in float32
    assert TrainConfig.from_dict(old).precision == "fp32"
    assert TrainConfig.from_dict(TrainConfig(precision="bf16").to_dict()).precision == "bf16"


def test_bf16_mixed_precision_trains_close_to_fp32(data_dir):
    """The bf16 run really computes in bf16 (its losses differ from float32) yet learns the same."""
    snaps = {}
    for precision in ("fp32", "bf16"):
        t = Trainer(TrainConfig(precision=precision, max_batches=60, epochs=2, seed=3), data_dir=data_dir)
        run_to_end(t)
        assert t.snapshot.status == "finished", t.snapshot.error
        assert all(p.dtype == torch.float32 for p in t.model.parameters())  # master weights stay float32
        snaps[precision] = t.snapshot
    a, b = (snaps[p].history[-1] for p in ("fp32", "bf16"))
    assert a.train_loss != b.train_loss
    assert b.train_loss == pytest.approx(a.train_loss, rel=0.1) and abs(a.test_acc - b.test_acc) < 0.02


@pytest.mark.parametrize("bn,precision", [(False, "fp32"), (True, "fp32"), (False, "bf16"), (True, "bf16")])
def test_deterministic(data_dir, bn, precision):
    snaps = []
    for _ in range(2):
        t = Trainer(TrainConfig(batch_norm=bn, seed=7, precision=precision, **TINY), data_dir=data_dir)
        run_to_end(t)
        snaps.append(t.snapshot)
    a, b = snaps
    assert a.step_losses == b.step_losses
    assert [(h.train_loss, h.test_acc, h.test_loss) for h in a.history] == [(h.train_loss, h.test_acc, h.test_loss) for h in b.history]


def test_pause_resume_stop(data_dir):
    t = Trainer(TrainConfig(epochs=50, batch_size=16), data_dir=data_dir, log_every=1).start()
    wait_until(lambda: t.snapshot.step >= 5, what="5 steps")
    t.pause()
    wait_until(lambda: t.snapshot.status == "paused", what="the pause")
    step = t.snapshot.step
    time.sleep(0.3)
    assert t.snapshot.step <= step + 1  # at most the batch in flight
    t.resume()
    wait_until(lambda: t.snapshot.step >= step + 5, what="5 more steps")
    assert t.snapshot.status == "running"
    t.stop()
    t.join(10)
    assert not t.alive and t.snapshot.status == "stopped"


def test_stop_while_paused(data_dir):
    t = Trainer(TrainConfig(epochs=50), data_dir=data_dir, log_every=1).start()
    wait_until(lambda: t.snapshot.step >= 2, what="2 steps")
    t.pause()
    wait_until(lambda: t.snapshot.status == "paused", what="the pause")
    t.stop()
    t.join(10)
    assert t.snapshot.status == "stopped"


def test_snapshots_readable_while_training(data_dir):
    t = Trainer(TrainConfig(max_batches=100, epochs=3), data_dir=data_dir, log_every=1).start()
    seen, errors = [], []

    def reader():
        try:
            while t.alive:
                s = t.snapshot
                assert len(s.history) == s.epoch
                assert all(a[0] < b[0] for a, b in zip(s.step_losses, s.step_losses[1:]))
                seen.append(len(s.step_losses))
                time.sleep(0.001)  # a spinning reader would starve the trainer of the GIL
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    readers = [threading.Thread(target=reader) for _ in range(3)]
    for r in readers:
        r.start()
    t.join(120)
    for r in readers:
        r.join()
    assert not errors and t.snapshot.status == "finished"
    assert len(set(seen)) > 1  # the readers saw the run progress


def test_failure_becomes_status(tmp_path, monkeypatch):
    import core.engine.trainer as tr

    def boom(*a, **k):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(tr, "load_dataset", boom)
    t = Trainer(TrainConfig(**TINY))
    run_to_end(t)
    assert t.snapshot.status == "failed" and "disk on fire" in t.snapshot.error


def test_store_persists_and_reloads(store, data_dir):
    run = store.start(TrainConfig(**TINY), name="first")
    store.trainer(run.id).join(120)
    live = store.get(run.id).snapshot
    assert live.status == "finished"
    again = RunStore(store.root, data_dir)  # as after a server restart
    info = again.get(run.id)
    assert info.name == "first" and info.config == run.config and info.snapshot.status == "finished"
    assert info.snapshot.history == live.history
    assert info.snapshot.step_losses == live.step_losses
    data = load_dataset("mnist", data_dir)  # the weights are the last epoch's: they give its test accuracy
    assert evaluate(again.load_model(run.id), data.test_x, data.test_y)[1] == live.history[-1].test_acc
    assert store.trainer(run.id).handle.model is None  # an ended run's model is not kept in memory
    again.rename(run.id, "renamed")
    assert RunStore(store.root, data_dir).get(run.id).name == "renamed"
    import io, zipfile
    z = zipfile.ZipFile(io.BytesIO(again.export_zip(run.id)))
    assert set(z.namelist()) == {"config.json", "metrics.csv", "weights.safetensors"}
    assert z.read("metrics.csv").decode().count("\n") == 3
    again.delete(run.id)
    assert not (store.root / run.id).exists() and run.id not in [r.id for r in again.list()]


def test_duplicate_live_run_refused(store):
    from core.store.runs import DuplicateRunError
    cfg = TrainConfig(epochs=50)
    run = store.start(cfg)
    with pytest.raises(DuplicateRunError):
        store.start(TrainConfig(epochs=50), name="other name")
    store.stop(run.id, wait=10)
    assert store.get(run.id).snapshot.status == "stopped"


def test_interrupted_run_and_torn_metrics_line(store, data_dir):
    run = store.start(TrainConfig(**TINY))
    store.trainer(run.id).join(120)
    d = store.root / run.id
    (d / "status.json").write_text(json.dumps({"status": "running", "error": None}))  # killed mid-run
    with open(d / "metrics.jsonl", "a") as f:
        f.write('{"step": 99, "lo')  # killed mid-write
    (d / ".weights.safetensors.abc.tmp").write_bytes(b"half")
    info = RunStore(store.root, data_dir).get(run.id)
    assert info.snapshot.status == "stopped" and "interrupted" in info.snapshot.error
    assert len(info.snapshot.history) == 2


def test_truncated_or_foreign_weights(store, tmp_path):
    run = store.start(TrainConfig(**TINY))
    store.trainer(run.id).join(120)
    path = store.root / run.id / "weights.safetensors"
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsError, match="damaged"):
        load_weights(bad, run.config)
    pickle = tmp_path / "model.pt"
    torch.save({"x": torch.zeros(2)}, pickle)
    with pytest.raises(WeightsError):
        load_weights(pickle, run.config)
    with pytest.raises(WeightsError, match="does not fit"):
        load_weights(path, TrainConfig(hidden=(64, 32)))
    with pytest.raises(WeightsError, match="No weights"):
        load_weights(tmp_path / "none.safetensors", run.config)


def test_no_core_module_imports_ui_or_heavy_frameworks():
    """Every module under core/, not only what core/__init__ imports: no streamlit, and keras, its backends and
    optuna only when a Keras run or a study starts (lazily)."""
    code = ("import importlib, pkgutil, sys, core\n"
            "names = [m.name for m in pkgutil.walk_packages(core.__path__, 'core.')]\n"
            "for n in names: importlib.import_module(n)\n"
            "bad = sorted(m for m in ('streamlit', 'keras', 'jax', 'tensorflow', 'optuna') if m in sys.modules)\n"
            "assert not bad, bad\n"
            "print(len(names))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=str(__import__('pathlib').Path(__file__).parent.parent))
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= 15  # it did walk the packages


def test_cli_json(tmp_path, data_dir):
    root = __import__("pathlib").Path(__file__).parent.parent
    out = subprocess.run([sys.executable, "-m", "core.train", "--epochs", "1", "--max-batches", "10", "--bn",
                          "--data-dir", data_dir, "--runs-dir", str(tmp_path), "--json"],
                         capture_output=True, text=True, cwd=root, timeout=120)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["status"] == "finished" and 0 < res["test_acc"] <= 1
    assert "epoch 1/1" in out.stderr
    assert RunStore(tmp_path, data_dir).get(res["run_id"]).config.batch_norm
    bad = subprocess.run([sys.executable, "-m", "core.train", "--lr", "-1"], capture_output=True, text=True, cwd=root)
    assert bad.returncode == 2 and "lr" in bad.stderr


def test_fetch_reports_without_crashing(tmp_path, monkeypatch, data_dir, capsys):
    import torchvision.datasets.mnist as m
    from core import fetch

    monkeypatch.setattr(m, "download_and_extract_archive", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "none"))
    assert fetch.main(["mnist"]) == 1
    assert "warning: The mnist dataset is not available" in capsys.readouterr().err
    monkeypatch.setenv("DATA_DIR", data_dir)
    assert fetch.main(["mnist"]) == 0
    assert "60000 training and 10000 test images" in capsys.readouterr().out
