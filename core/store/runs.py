"""The run registry: every run's config, metrics and weights, kept on disk and in memory.

Layout of one run, under the runs folder:
    <run_id>/config.json        the TrainConfig (+ name, created), written atomically
    <run_id>/status.json        status and error message, written atomically
    <run_id>/metrics.jsonl      append-only: {"step": s, "loss": l} and {"epoch": e, ...} lines
    <run_id>/weights.safetensors  replaced atomically at each epoch end and when a run stops
    <run_id>/probes.json        what a BatchNorm-lab probe recorded inside the network (lab runs only)
A process killed at any moment leaves at worst a half-written last line in metrics.jsonl
(skipped when read) and a stray *.tmp file (ignored); every other file loads.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import threading
import time
import uuid
import zipfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from core.engine.config import TrainConfig, config_from_dict
from core.engine.data import dataset_spec, num_batches
from core.engine.models import MLP
from core.engine.snapshot import LIVE_STATUSES, EpochMetrics, RunSnapshot
from core.engine.trainer import Trainer


class WeightsError(RuntimeError):
    """A weights file is missing, truncated, corrupt or belongs to another architecture."""


def resolve_runs_dir(runs_dir: str | os.PathLike | None = None) -> Path:
    return Path(runs_dir or os.environ.get("RUNS_DIR") or "./runs")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # atomic on POSIX and Windows: readers see the old file or the new one


def atomic_write_json(path: Path, obj: object) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1).encode())


def save_weights(model: MLP, path: Path, config: TrainConfig) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    save_file(state, str(tmp), metadata={"config": json.dumps(config.to_dict())})
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_weights(path: Path, config: TrainConfig, device: torch.device | str = "cpu") -> MLP:
    """Build the model for `config` and load weights from a safetensors file (never unpickles)."""
    from core.engine.models import build_model

    if not Path(path).exists():
        raise WeightsError(f"No weights file at {path}: the run saved none yet (it saves at each epoch end).")
    try:
        state = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"The weights file {path} is damaged or not a safetensors file ({e}).") from None
    model = build_model(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        diff = sorted(set(expected.items()) ^ set(found.items()))[:4]
        raise WeightsError(f"The weights file {path} does not fit a {config.label()} model "
                           f"(hidden {list(config.hidden)}); first differences: {diff}")
    model.load_state_dict(state)
    return model.to(device).eval()


@dataclass(frozen=True)
class RunInfo:
    id: str
    config: TrainConfig
    name: str
    created: float
    snapshot: RunSnapshot
    group: str | None = None  # runs started together (a BN / no-BN twin set, a learning-rate sweep)

    @property
    def live(self) -> bool:
        return self.snapshot.live


class _Persist:
    """RunListener that writes a run's progress to its folder (called in the training thread)."""

    def __init__(self, run_dir: Path, config: TrainConfig, probe=None) -> None:
        self.dir, self.config, self.probe = run_dir, config, probe
        self._pending: list[tuple[int, float]] = []

    def on_status(self, snap: RunSnapshot) -> None:
        atomic_write_json(self.dir / "status.json", {"status": snap.status, "error": snap.error})

    def on_steps(self, steps: list[tuple[int, float]]) -> None:
        self._pending.extend(steps)  # flushed with the epoch, so the loop does no I/O per step

    def _flush(self, epoch: EpochMetrics | None = None) -> None:
        lines = [json.dumps({"step": s, "loss": l}) for s, l in self._pending]
        if epoch is not None:
            lines.append(json.dumps(asdict(epoch)))
        self._pending = []
        if lines:
            with open(self.dir / "metrics.jsonl", "a") as f:
                f.write("\n".join(lines) + "\n")
                f.flush()
                os.fsync(f.fileno())

    def on_epoch_end(self, snap: RunSnapshot, model: MLP) -> None:
        self._flush(snap.history[-1])
        save_weights(model, self.dir / "weights.safetensors", self.config)

    def on_end(self, snap: RunSnapshot, model: MLP | None) -> None:
        self._flush()
        if snap.status == "stopped" and model is not None:  # keep what a stopped run learned
            save_weights(model, self.dir / "weights.safetensors", self.config)
        if self.probe is not None:
            atomic_write_json(self.dir / "probes.json", self.probe.to_dict())
        self.on_status(snap)


class RunStore:
    """Thread-safe registry of runs: live ones train in background threads, all are on disk."""

    def __init__(self, runs_dir: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None) -> None:
        self.root = resolve_runs_dir(runs_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self._lock = threading.RLock()
        self._runs: dict[str, RunInfo] = {}  # finished runs, as loaded from disk
        self._trainers: dict[str, Trainer] = {}  # runs started by this process
        for d in sorted(self.root.iterdir()):
            if d.is_dir() and (d / "config.json").exists():
                try:
                    self._runs[d.name] = self._read_run(d)
                except (ValueError, OSError, KeyError, TypeError):
                    continue  # a foreign or damaged folder is not a run; leave it alone

    # --- reading ----------------------------------------------------------------------
    def _read_run(self, d: Path) -> RunInfo:
        meta = json.loads((d / "config.json").read_text())
        config = config_from_dict(meta["config"])
        status, error = "stopped", None
        if (d / "status.json").exists():
            st = json.loads((d / "status.json").read_text())
            status, error = st["status"], st.get("error")
        if status in LIVE_STATUSES:  # its process died while it trained
            status, error = "stopped", "interrupted: the server stopped while this run was training"
        steps, history = read_metrics(d / "metrics.jsonl")
        steps_per_epoch = num_batches(dataset_spec(config.dataset).train_size, config.batch_size, config.max_batches)
        snap = RunSnapshot(status=status, error=error, epoch=len(history), epochs=config.epochs,
                           step=steps[-1][0] if steps else 0, steps_per_epoch=steps_per_epoch,
                           step_losses=tuple(steps), history=tuple(history),
                           elapsed=sum(h.seconds for h in history))
        return RunInfo(d.name, config, meta.get("name") or config.label(), meta.get("created", 0.0), snap,
                       meta.get("group"))

    def _info(self, run_id: str) -> RunInfo:
        info = self._runs[run_id]
        trainer = self._trainers.get(run_id)
        return replace(info, snapshot=trainer.snapshot) if trainer else info

    def list(self) -> list[RunInfo]:
        """All runs, newest first."""
        with self._lock:
            return sorted((self._info(r) for r in self._runs), key=lambda r: r.created, reverse=True)

    def get(self, run_id: str) -> RunInfo:
        with self._lock:
            if run_id not in self._runs:
                raise KeyError(f"No run {run_id!r}")
            return self._info(run_id)

    def live_runs(self) -> list[RunInfo]:
        return [r for r in self.list() if r.live]

    def find_live(self, config: TrainConfig) -> RunInfo | None:
        """A live run with the same training settings, if any (to refuse silent duplicates)."""
        return next((r for r in self.live_runs() if r.config == config), None)

    # --- starting and controlling ---------------------------------------------------------
    def start(self, config: TrainConfig, name: str | None = None, allow_duplicate: bool = False,
              group: str | None = None, after: str | None = None, probe=None) -> RunInfo:
        """Start a run in a background thread. `after`: a run id to queue behind; `probe`: a StepProbe."""
        config.validate()
        with self._lock:
            if not allow_duplicate and (dup := self.find_live(config)):
                raise DuplicateRunError(f"An identical run is already training: {dup.name} ({dup.id}).")
            run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
            d = self.root / run_id
            d.mkdir()
            created = time.time()
            name = name or config.label()
            atomic_write_json(d / "config.json", {"config": config.to_dict(), "name": name, "created": created,
                                                  "group": group})
            trainer = Trainer(config, data_dir=self.data_dir, listener=_Persist(d, config, probe), probe=probe,
                              after=self._trainers.get(after) if after else None)
            self._runs[run_id] = RunInfo(run_id, config, name, created, trainer.snapshot, group)
            self._trainers[run_id] = trainer
            atomic_write_json(d / "status.json", {"status": "queued", "error": None})
        trainer.start()
        return self.get(run_id)

    def trainer(self, run_id: str) -> Trainer | None:
        with self._lock:
            return self._trainers.get(run_id)

    def pause(self, run_id: str) -> None:
        if t := self.trainer(run_id):
            t.pause()

    def resume(self, run_id: str) -> None:
        if t := self.trainer(run_id):
            t.resume()

    def stop(self, run_id: str, wait: float | None = None) -> None:
        if t := self.trainer(run_id):
            t.stop()
            if wait:
                t.join(wait)

    def stop_all(self, wait: float | None = 10) -> None:
        for run_id in list(self._trainers):
            self.stop(run_id, wait)

    # --- editing ------------------------------------------------------------------------
    def rename(self, run_id: str, name: str) -> None:
        name = name.strip()
        if not name:
            raise ValueError("name: a run's name cannot be empty")
        with self._lock:
            info = self._runs[run_id]
            atomic_write_json(self.root / run_id / "config.json",
                              {"config": info.config.to_dict(), "name": name, "created": info.created, "group": info.group})
            self._runs[run_id] = replace(info, name=name)

    def delete(self, run_id: str) -> None:
        with self._lock:
            if (t := self._trainers.get(run_id)) and t.alive:
                raise RuntimeError("Stop this run before deleting it.")
            self._runs.pop(run_id, None)
            self._trainers.pop(run_id, None)
            shutil.rmtree(self.root / run_id, ignore_errors=True)

    def probes(self, run_id: str) -> dict | None:
        """What a probe recorded: live from memory while the run trains, else from probes.json."""
        trainer = self.trainer(run_id)
        if trainer is not None and trainer.probe is not None:
            return trainer.probe.to_dict()
        path = self.root / run_id / "probes.json"
        try:
            return json.loads(path.read_text()) if path.exists() else None
        except (OSError, json.JSONDecodeError):
            return None

    def load_model(self, run_id: str, device: torch.device | str = "cpu") -> MLP:
        info = self.get(run_id)
        return load_weights(self.root / run_id / "weights.safetensors", info.config, device)

    def export_zip(self, run_id: str) -> bytes:
        """config.json + metrics.csv + weights.safetensors of one run, as a zip archive."""
        info = self.get(run_id)
        d = self.root / run_id
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("config.json", json.dumps({"name": info.name, "config": info.config.to_dict()}, indent=1))
            z.writestr("metrics.csv", metrics_csv(info.snapshot))
            if (d / "weights.safetensors").exists():
                z.write(d / "weights.safetensors", "weights.safetensors")
        return buf.getvalue()


class DuplicateRunError(RuntimeError):
    """A run with identical settings is already training."""


def read_metrics(path: Path) -> tuple[list[tuple[int, float]], list[EpochMetrics]]:
    steps: list[tuple[int, float]] = []
    history: list[EpochMetrics] = []
    if not path.exists():
        return steps, history
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        if "step" in rec:
            steps.append((int(rec["step"]), float(rec["loss"])))
        elif "epoch" in rec:
            history.append(EpochMetrics(**rec))
    return steps, history


def metrics_csv(snap: RunSnapshot) -> str:
    rows = ["epoch,train_loss,train_acc,test_loss,test_acc,seconds"]
    rows += [f"{h.epoch},{h.train_loss},{h.train_acc},{h.test_loss},{h.test_acc},{h.seconds}" for h in snap.history]
    return "\n".join(rows) + "\n"
