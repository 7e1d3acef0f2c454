"""A run's life in the store: write order under a kill, one set of weights and one accuracy for a stopped run,
divergence, memory released at the end, the memory budget, an unusable runs folder, a damaged dataset file."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from core.engine.config import MEMORY_BUDGET, TrainConfig, memory_estimate
from core.engine.data import DataUnavailableError, load_dataset
from core.engine.models import build_model
from core.engine.torch_loop import evaluate
from core.store.runs import RunsFolderError, RunStore
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent


def weights_accuracy(store: RunStore, run_id: str, data_dir) -> float:
    """Test accuracy of the weights the store holds for a run, evaluated afresh."""
    data = load_dataset("mnist", data_dir)
    return evaluate(store.load_model(run_id), data.test_x, data.test_y)[1]


# --- write order -----------------------------------------------------------------------------------------
KILL = textwrap.dedent("""
    import os, sys
    import core
    from core.engine.config import TrainConfig
    from core.store import runs

    point = sys.argv[3]
    save, flush = runs.save_weights, runs._Persist._flush

    def save_weights(model, path, config, metrics=None):
        if point == "before weights" and metrics is not None and metrics.epoch == 2:
            os._exit(9)
        save(model, path, config, metrics)
        if point == "between weights and metrics" and metrics is not None and metrics.epoch == 2:
            os._exit(9)

    runs.save_weights = save_weights
    store = runs.RunStore(sys.argv[1], sys.argv[2])
    run = store.start(TrainConfig(max_batches=20, epochs=3))
    store.trainer(run.id).join(120)
""")


@pytest.mark.parametrize("point, epochs", [("before weights", 1), ("between weights and metrics", 2)])
def test_killed_between_writes_claims_what_its_weights_hold(tmp_path, data_dir, point, epochs):
    """The process dies at an epoch end, before or between the weights and metrics writes: what the run then
    claims (epochs, test accuracy) is what its weights give."""
    out = subprocess.run([sys.executable, "-c", KILL, str(tmp_path), data_dir, point], cwd=ROOT,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 9, out.stderr
    store = RunStore(tmp_path, data_dir)
    (run,) = store.list()
    assert run.snapshot.status == "stopped" and "interrupted" in run.snapshot.error
    assert len(run.snapshot.history) == epochs
    assert weights_accuracy(store, run.id, data_dir) == run.snapshot.final.test_acc
    if epochs == 2:
        assert any("recovered from the weights file" in p for p in run.problems)


# --- one run, one set of weights, one accuracy ---------------------------------------------------------------
def test_stopped_mid_epoch_keeps_last_completed_epoch(store, data_dir):
    run = store.start(TrainConfig(max_batches=300, epochs=3))
    trainer = store.trainer(run.id)
    wait_until(lambda: trainer.snapshot.epoch >= 1 and trainer.snapshot.epoch_step >= 20 or not trainer.alive,
               120, what="epoch 2 to be under way")
    store.stop(run.id, wait=60)
    snap = store.get(run.id).snapshot
    assert snap.status == "stopped" and snap.epoch == 1
    assert "its weights and numbers are those of epoch 1" in snap.error
    assert snap.step > snap.steps_per_epoch  # it trained into epoch 2: the loss curve shows those steps
    again = RunStore(store.root, data_dir).get(run.id)  # as every page reads it after a restart
    assert again.snapshot.history == snap.history and again.snapshot.status == "stopped"
    assert weights_accuracy(store, run.id, data_dir) == snap.final.test_acc == again.snapshot.final.test_acc


def test_stopped_in_first_epoch_has_no_weights(store):
    run = store.start(TrainConfig(epochs=2))
    trainer = store.trainer(run.id)
    wait_until(lambda: trainer.snapshot.epoch_step >= 10 or not trainer.alive, 120, what="the first steps")
    store.stop(run.id, wait=60)
    snap = store.get(run.id).snapshot
    assert snap.status == "stopped" and "no epoch was completed, so it has no weights" in snap.error
    assert not (store.root / run.id / "weights.safetensors").exists()


# --- divergence ------------------------------------------------------------------------------------------------
def test_large_learning_rate_diverges(store):
    run = store.start(TrainConfig(lr=10.0, optimizer="sgd", max_batches=50, epochs=2))
    store.trainer(run.id).join(120)
    snap = store.get(run.id).snapshot
    assert snap.status == "diverged", (snap.status, snap.error)
    assert "the training loss became nan at step" in snap.error and snap.history == ()
    assert all(torch.isfinite(torch.tensor(v)) for _, v in snap.step_losses)
    assert json.loads((store.root / run.id / "status.json").read_text())["status"] == "diverged"


def test_divergence_in_epoch_two_keeps_epoch_one(store, data_dir, monkeypatch):
    """The loss turns NaN at step 26 (epoch 2, 20 steps an epoch): the run stops there as diverged and keeps
    epoch 1's weights and numbers."""
    import core.engine.torch_loop as tr

    calls, real = {"n": 0}, tr.F.cross_entropy

    def poisoned(out, y, *a, **k):
        loss = real(out, y, *a, **k)
        if k.get("reduction") == "sum" or not out.requires_grad:
            return loss  # evaluation
        calls["n"] += 1
        return loss * float("nan") if calls["n"] >= 26 else loss
    with monkeypatch.context() as m:
        m.setattr(tr.F, "cross_entropy", poisoned)
        run = store.start(TrainConfig(max_batches=20, epochs=3))
        store.trainer(run.id).join(120)
    snap = store.get(run.id).snapshot
    assert snap.status == "diverged" and "at step 26 (epoch 2)" in snap.error
    assert "weights and numbers are those of epoch 1" in snap.error
    assert snap.epoch == 1 and snap.step == 26
    assert weights_accuracy(store, run.id, data_dir) == snap.final.test_acc


def test_cli_exit_status_for_a_diverged_run(tmp_path, data_dir):
    out = subprocess.run([sys.executable, "-m", "core.train", "--lr", "10", "--optimizer", "sgd", "--max-batches", "50",
                          "--epochs", "1", "--data-dir", data_dir, "--runs-dir", str(tmp_path), "--json"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 1, out.stderr
    assert json.loads(out.stdout.splitlines()[-1])["status"] == "diverged"
    assert "diverged: the training loss became nan" in out.stderr


# --- memory ----------------------------------------------------------------------------------------------------
def test_ended_runs_release_their_model(store):
    first = store.start(TrainConfig(max_batches=5, epochs=1))
    second = store.start(TrainConfig(max_batches=5, epochs=1, seed=1), after=first.id)
    t1, t2 = store.trainer(first.id), store.trainer(second.id)
    t2.join(120)
    assert t1.handle.model is None and t2.handle.model is None  # the weights are on disk; load_model reads them
    assert isinstance(store.load_model(second.id), torch.nn.Module)


def test_memory_estimate_counts_every_parameter():
    for cfg in (TrainConfig(), TrainConfig(batch_norm=True, hidden=(300, 100)), TrainConfig(dataset="fashion-mnist")):
        state = build_model(cfg).state_dict()
        n = sum(v.numel() for k, v in state.items() if not k.endswith("num_batches_tracked"))
        est = memory_estimate(cfg)
        assert est.parameters == n and est.weights == 4 * n and est.optimizer == 8 * n


def test_memory_budget_refuses_huge_networks_with_the_estimate(tmp_path):
    TrainConfig(hidden=(2000, 2000))  # the soak benchmark's network
    TrainConfig(hidden=(50_000,))
    TrainConfig(batch_size=60_000, batch_norm=True)  # the course network, one batch per epoch
    with pytest.raises(ValueError, match=r"^hidden, batch_size: this network needs about 1\.23 GB .*Adam state.*"
                                         r"more than the 1\.00 GB"):
        TrainConfig(hidden=(100_000,))
    assert memory_estimate(TrainConfig(hidden=(50_000,))).total < MEMORY_BUDGET
    out = subprocess.run([sys.executable, "-m", "core.train", "--hidden", "100000", "--runs-dir", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 2 and "needs about 1.23 GB" in out.stderr and "Traceback" not in out.stderr
    assert not any(tmp_path.iterdir())  # refused before anything was written


# --- an unusable runs folder -------------------------------------------------------------------------------------
def read_only_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write to: chmod where that binds, else a read-only system folder."""
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        return ro
    for candidate in (Path("/sys"), Path("/proc/self")):
        try:
            (candidate / ".probe").touch()
        except OSError:
            return candidate
    pytest.skip("no read-only folder available to a root process here")


def test_unusable_runs_folder_is_one_clear_message(tmp_path):
    a_file = tmp_path / "runs"
    a_file.write_text("not a folder")
    cases = [(a_file, "is a file, not a folder"), (read_only_folder(tmp_path), "is not writable"),
             (a_file / "below", "cannot be created")]
    for folder, why in cases:
        with pytest.raises(RunsFolderError) as e:
            RunStore(folder)
        assert str(folder) in str(e.value) and why in str(e.value) and "RUNS_DIR" in str(e.value)
        out = subprocess.run([sys.executable, "-m", "core.train", "--epochs", "1", "--runs-dir", str(folder)],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert out.stderr.strip().splitlines()[-1].startswith(f"error: The runs folder {folder}")


# --- a damaged dataset file -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage, why", [
    (lambda p: p.write_bytes(p.read_bytes()[:1_000_000]), "holds 1,000,000 bytes where the file has 47,040,016"),
    (lambda p: p.write_bytes(b"<html>404</html>" + bytes(47_040_000)), "does not start like the mnist file"),
])
def test_damaged_dataset_file_is_named(tmp_path, data_dir, damage, why):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (Path(data_dir) / "MNIST" / "raw").iterdir():
        (raw / f.name).symlink_to(f)
    bad = raw / "train-images-idx3-ubyte"
    bad.unlink()
    shutil.copy(Path(data_dir) / "MNIST" / "raw" / bad.name, bad)
    damage(bad)
    with pytest.raises(DataUnavailableError) as e:
        load_dataset("mnist", tmp_path)
    msg = str(e.value)
    assert str(bad) in msg and why in msg and "Delete it" in msg and "replace it" in msg
    assert "Connect to the internet" not in msg


# --- the process exits while runs train ----------------------------------------------------------------------------
EXIT_WHILE_TRAINING = textwrap.dedent("""
    import sys, time
    import core
    from core.engine.config import TrainConfig
    from core.store.runs import RunStore

    store = RunStore(sys.argv[1], sys.argv[2])
    run = store.start(TrainConfig(hidden=(2000, 2000), max_batches=30, epochs=200))
    while store.get(run.id).snapshot.epoch < 1:
        time.sleep(0.05)
    print(run.id, flush=True)
    sys.exit(0)  # the main thread ends with the training thread inside torch
""")


def test_exit_while_training_stops_and_records_the_run(tmp_path, data_dir):
    out = subprocess.run([sys.executable, "-c", EXIT_WHILE_TRAINING, str(tmp_path), data_dir], cwd=ROOT,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    assert "terminate called" not in out.stderr
    run_id = out.stdout.split()[-1]
    status = json.loads((tmp_path / run_id / "status.json").read_text())
    assert status["status"] == "stopped" and "shut down" in status["error"]
    store = RunStore(tmp_path, data_dir)
    info = store.get(run_id)
    assert not info.problems and info.snapshot.epoch >= 1
    assert isinstance(store.load_model(run_id), torch.nn.Module)
