"""The run registry: every run's config, metrics and weights, kept on disk and in memory.

Layout of one run, under the runs folder (a run id is always of the form 20260101-120000-1a2b3c):
    <run_id>/config.json        the TrainConfig (+ name, created, group, tags), written atomically
    <run_id>/status.json        status and message, written atomically
    <run_id>/weights.safetensors  the weights of the last completed epoch, with that epoch's metrics in its
                                header; replaced atomically at each epoch end
    <run_id>/metrics.jsonl      append-only: {"step": s, "loss": l} and {"epoch": e, ...} lines
    <run_id>/probes.json        what a BatchNorm-lab probe recorded inside the network (lab runs only)

One run, one set of weights, one accuracy: a run's weights are always those of its last completed epoch, and
the numbers shown for it are that epoch's. A run that ends during an epoch (stopped, diverged, failed, pruned)
keeps the previous epoch's weights and says so; the steps it trained after them are in the loss curve only.
At an epoch end the weights (which carry the epoch's metrics) are written before the metrics line, so a
process killed between the two leaves a run whose metrics line can be recovered from its weights, never one
that claims more than its weights hold. A process killed at any moment leaves at worst a half-written last
metrics line (skipped, and reported, when read) and a stray .*.tmp file (ignored); every other file loads.

Every value read from disk is checked (core/store/records.py); every path is checked (core/store/files.py).
"""
from __future__ import annotations

import io
import json
import os
import threading
import time
import zipfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors, save as save_safetensors

import core.shutdown as _shutdown
from core.engine.backends import model_for
from core.engine.config import TrainConfig, memory_estimate
from core.engine.control import StepProbe
from core.engine.data import dataset_spec, num_batches
from core.engine.executor import Executor, RunHandle, make_executor
from core.engine.models import MLP
from core.engine.snapshot import LIVE_STATUSES, EpochMetrics, RunSnapshot
from core.store import scheduler
from core.store.scheduler import EVERYONE, AdmissionError, Job, Limits  # noqa: F401
from core.store.files import (RunsFolderError, StoreFileError, StoreFileMissing, UnknownRunError,  # noqa: F401
                              append_lines, atomic_write_bytes, atomic_write_json, check_run_id, check_runs_folder,
                              created_from_id, is_run_id, new_run_id, open_regular, read_file, remove_run_dir, run_dir)
from core.store.records import (DamagedRunError, check_name, parse_meta, parse_metrics,  # noqa: F401
                                parse_status, weights_header, weights_header_size)

MAX_METRICS = 512 << 20  # bytes of metrics.jsonl: 200 epochs at batch size 1 write about 60 MB
MAX_PROBES = 256 << 20
MAX_WEIGHTS = 4 << 30  # above the largest model the memory budget allows (core/engine/config.py)
SHUTDOWN_WAIT = 60.0  # seconds the process waits at exit for its runs to stop and save
QUEUED_INTERRUPTED = "queued and interrupted: the program stopped while this run waited for a slot; queue it again"


class WeightsError(RuntimeError):
    """A weights file is missing, truncated, corrupt, a link, or belongs to another architecture."""


class DuplicateRunError(RuntimeError):
    """A run with identical settings is already training."""


class RunDeleteError(RuntimeError):
    """A run (or several) could not be deleted; the message names each and why."""


class RunPermissionError(PermissionError):
    """A learner acted on a run that is not theirs (class mode: only its owner or the teacher may)."""


def resolve_runs_dir(runs_dir: str | Path | None = None) -> Path:
    return Path(runs_dir or os.environ.get("RUNS_DIR") or "./runs")


# --- weights -------------------------------------------------------------------------------------------
def save_weights(model: MLP, path: Path, config: TrainConfig, metrics: EpochMetrics | None = None) -> None:
    """Weights as safetensors, with the config and (at an epoch end) that epoch's metrics in the header."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"config": json.dumps(config.to_dict())}
    if metrics is not None:
        meta |= {"epoch": str(metrics.epoch), "metrics": json.dumps(asdict(metrics))}
    atomic_write_bytes(path, save_safetensors(state, metadata=meta))


def load_weights(path: Path, config: TrainConfig, device: torch.device | str = "cpu") -> MLP:
    """Build the model for `config` and load weights from a safetensors file (never unpickles, never follows a
    symbolic link)."""
    try:
        data = read_file(Path(path), MAX_WEIGHTS)
    except StoreFileMissing:
        raise WeightsError(f"No weights file at {path}: the run has not completed an epoch (weights are saved "
                           "at each epoch end).") from None
    except StoreFileError as e:
        raise WeightsError(f"The weights file {path} cannot be used: {e}.") from None
    try:
        state = load_safetensors(data)
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"The weights file {path} is damaged or not a safetensors file ({e}).") from None
    model = model_for(config)  # a Keras run's BatchNorm as Keras ran it
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        diff = sorted(set(expected.items()) ^ set(found.items()))[:4]
        raise WeightsError(f"The weights file {path} does not fit a {config.label()} model "
                           f"(hidden {list(config.hidden)}); first differences: {diff}")
    model.load_state_dict(state)
    return model.to(device).eval()


def expected_shapes(config: TrainConfig) -> dict[str, tuple[int, ...]]:
    """The state-dict shapes of `config`'s model, from a model on the meta device (no memory, about 1 ms)."""
    spec = dataset_spec(config.dataset)
    with torch.device("meta"):
        model = MLP(config.hidden, config.batch_norm, config.double_softmax, spec.num_classes, spec.input_size)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _weights_claim(path: Path, config: TrainConfig) -> tuple[int | None, EpochMetrics | None]:
    """The epoch (and its metrics) a weights file says it holds, read from its header alone, after checking that
    the file is as long as its header says and holds the tensors of `config`'s model."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        n = weights_header_size(f.read(8))
        header = f.read(n)
    if len(header) < n:
        raise ValueError("the file is cut short inside its header")
    epoch, metrics, tensors = weights_header(header, config.epochs)
    end = 8 + n + max((e for _, e in tensors.values()), default=0)
    if size < end:
        raise ValueError(f"the file is cut short: {size:,} of {end:,} bytes")
    if {k: s for k, (s, _) in tensors.items()} != expected_shapes(config):
        raise ValueError(f"it does not fit a {config.label()} model (hidden {list(config.hidden)})")
    return epoch, metrics


# --- runs ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunInfo:
    id: str
    config: TrainConfig
    name: str
    created: float
    snapshot: RunSnapshot
    group: str | None = None  # runs started together (a BN / no-BN twin set, a learning-rate sweep)
    problems: tuple[str, ...] = ()  # what was odd in its files and how it was read anyway
    tags: dict | None = None  # who started it and as what, e.g. {"study": name, "trial": 3} for a tuning trial
    owner: str = EVERYONE  # the learner who started it (class mode); "" for everyone
    interrupted_queued: bool = False  # it was waiting for a slot when the program stopped: it can be queued again

    @property
    def live(self) -> bool:
        return self.snapshot.live


@dataclass(frozen=True)
class DamagedRun:
    """A folder in the runs folder that has a run's name but cannot be read as a run."""
    id: str
    reason: str


class _Persist:
    """RunListener that writes a run's progress to its folder (called in the training thread)."""

    def __init__(self, run_dir: Path, config: TrainConfig, probe=None) -> None:
        self.dir, self.config, self.probe = run_dir, config, probe
        self._pending: list[tuple[int, float]] = []

    def on_status(self, snap: RunSnapshot) -> None:
        atomic_write_json(self.dir / "status.json", {"status": snap.status, "error": snap.error, "device": snap.device,
                                                     "engine": snap.engine})

    def on_steps(self, steps: list[tuple[int, float]]) -> None:
        self._pending.extend(steps)  # flushed with the epoch, so the loop does no I/O per step

    def _flush(self, epoch: EpochMetrics | None = None) -> None:
        lines = [json.dumps({"step": s, "loss": l}) for s, l in self._pending]
        if epoch is not None:
            lines.append(json.dumps(asdict(epoch)))
        self._pending = []
        if lines:
            append_lines(self.dir / "metrics.jsonl", lines)

    def on_epoch_end(self, snap: RunSnapshot, model: MLP) -> None:
        # Weights first: a kill between the two writes leaves weights whose header holds this epoch's metrics
        # (recovered when read), never a metrics line that claims weights the folder does not have.
        save_weights(model, self.dir / "weights.safetensors", self.config, snap.history[-1])
        self._flush(snap.history[-1])

    def on_end(self, snap: RunSnapshot, model: MLP | None) -> None:
        try:
            self._flush()
            if self.probe is not None:
                atomic_write_json(self.dir / "probes.json", self.probe.to_dict())
        finally:  # the status is written even when the disk refused the rest
            self.on_status(snap)


class _Run:
    """One run this process holds, from Start to its end: queued until the scheduler hands it to the executor, then
    the executor's handle. What `RunStore.trainer()` returns: snapshot, alive, pause, resume, stop and join work
    the same whether the run still waits for a slot or trains."""

    def __init__(self, store: "RunStore", run_id: str, config: TrainConfig, job: Job, listener: _Persist,
                 probe: StepProbe | None) -> None:
        self.store, self.id, self.config, self.job, self.listener, self._probe = store, run_id, config, job, listener, probe
        self.handle: RunHandle | None = None
        self.resume_wanted = False  # paused, asked to continue, waiting for a free slot
        self.resuming = False  # resumed: holds its slot again before its thread says "running"
        self.ended = threading.Event()
        self._queued = RunSnapshot(status="queued", epochs=config.epochs, steps_per_epoch=num_batches(
            dataset_spec(config.dataset).train_size, config.batch_size, config.max_batches))

    @property
    def probe(self) -> StepProbe | None:
        """The run's probe as its executor holds it once launched: on a cluster the probe looks inside the network
        in the worker, and the handle's probe holds what it recorded."""
        return self.handle.probe if self.handle is not None else self._probe

    # the executor calls these (as the run's listener), in its own thread
    def on_status(self, snap: RunSnapshot) -> None:
        self.listener.on_status(snap)
        if snap.status == "running":
            self.resuming = False
        if snap.status == "paused":
            self.store._schedule()  # a pause gives the slot back

    def on_steps(self, steps: list[tuple[int, float]]) -> None:
        self.listener.on_steps(steps)

    def on_epoch_end(self, snap: RunSnapshot, model: MLP) -> None:
        self.listener.on_epoch_end(snap, model)

    def on_end(self, snap: RunSnapshot, model: MLP | None) -> None:
        try:
            self.listener.on_end(snap, model)
        finally:
            self.ended.set()
            self.store._schedule()

    # what the store's callers see
    @property
    def snapshot(self) -> RunSnapshot:
        return self.handle.snapshot if self.handle is not None else self._queued

    @property
    def alive(self) -> bool:
        """Not yet ended, or its thread still finishing (what `join` waits for)."""
        return not self.ended.is_set() or (self.handle is not None and self.handle.alive)

    @property
    def waiting(self) -> bool:
        return self.handle is None and not self.ended.is_set()

    @property
    def holds_slot(self) -> bool:
        return self.handle is not None and not self.ended.is_set() and (self.snapshot.status != "paused" or self.resuming)

    @property
    def in_memory(self) -> bool:
        return self.handle is not None and not self.ended.is_set()

    def pause(self) -> None:
        if self.handle is not None:
            self.handle.pause()

    def resume(self) -> None:
        self.store.resume(self.id)

    def stop(self, status: str = "stopped", reason: str | None = None) -> None:
        self.store._stop_run(self, status, reason)

    def join(self, timeout: float | None = None) -> None:
        """Until the run has ended and its thread is done (a thread still inside torch at exit aborts Python)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self.ended.wait(timeout)
        if self.handle is not None and self.ended.is_set():
            self.handle.join(None if deadline is None else max(0.0, deadline - time.monotonic()))


class RunStore:
    """Thread-safe registry of runs: live ones train through an executor (background threads by default), all are
    on disk. Every run goes through the scheduler (core/store/scheduler.py): at most `limits.slots` train at once,
    within `limits.memory_total`, the queue fair across learners.

    Raises RunsFolderError when the runs folder cannot be used. Folders that look like runs but cannot be
    read are listed by `damaged()`; other entries of the runs folder by `ignored()`."""

    def __init__(self, runs_dir: str | Path | None = None, data_dir: str | Path | None = None,
                 executor: Executor | None = None, limits: Limits | None = None) -> None:
        self.root = check_runs_folder(resolve_runs_dir(runs_dir))
        self.data_dir = data_dir
        self._lock = threading.RLock()
        self._runs: dict[str, RunInfo] = {}  # every readable run; live ones' snapshots come from their _Run
        self._live: dict[str, _Run] = {}  # runs started by this process
        self._damaged: dict[str, str] = {}  # run id -> why it cannot be read
        self._ignored: list[str] = []  # entries of the runs folder that are not runs
        self._changes = 0  # runs added, renamed or deleted: with the live statuses, what `revision` watches
        self._order = 0  # queue order: first come, first served
        self._executor, self._limits = executor, limits
        try:
            names = sorted(p.name for p in self.root.iterdir())
        except OSError as e:
            raise RunsFolderError(f"The runs folder {self.root} cannot be listed ({e.strerror}). Set RUNS_DIR (or "
                                  "--runs-dir) to a folder this program may read and write.") from None
        for name in names:
            if name.startswith("."):
                continue  # our own temporary files, and hidden files
            if not is_run_id(name):
                self._ignored.append(name)
                continue
            try:
                self._runs[name] = self._read_run(name)
            except (DamagedRunError, StoreFileError) as e:
                self._damaged[name] = str(e)
            except Exception as e:  # a case no check foresaw: one unreadable run must not hide all the others
                self._damaged[name] = f"it could not be read ({type(e).__name__}: {e})"
        # A process that exits (the server on SIGTERM or Ctrl-C, the command line) first stops its runs and
        # waits for them: a training thread still inside torch when the interpreter shuts down aborts it.
        _shutdown.register(self, _shutdown.RUNS)

    @property
    def executor(self) -> Executor:
        """Where runs train (RUN_EXECUTOR); made when first needed, so that reading runs starts nothing."""
        if self._executor is None:
            self._executor = make_executor(str(self.data_dir) if self.data_dir is not None else None)
        return self._executor

    @property
    def limits(self) -> Limits:
        """The scheduler's limits: TRAIN_SLOTS (default: the executor's capacity), MEMORY_TOTAL, QUEUE_PER_LEARNER."""
        if self._limits is None:
            self._limits = scheduler.limits_from_env(self.executor.capacity())
        return self._limits

    # --- reading ----------------------------------------------------------------------
    def _read_run(self, run_id: str) -> RunInfo:
        d = run_dir(self.root, run_id)
        problems: list[str] = []
        try:
            meta = parse_meta(read_file(d / "config.json"), problems)
        except StoreFileError as e:
            raise DamagedRunError(str(e)) from None
        config = meta.config
        steps, history = self._read_metrics(d, config, problems)
        history = self._match_weights(d, config, history, problems)
        status, error, queued = self._read_status(d, config, history, problems)
        steps_per_epoch = num_batches(dataset_spec(config.dataset).train_size, config.batch_size, config.max_batches)
        snap = RunSnapshot(status=status, error=error, epoch=len(history), epochs=config.epochs,
                           step=steps[-1][0] if steps else 0, steps_per_epoch=steps_per_epoch,
                           step_losses=tuple(steps), history=tuple(history),
                           elapsed=sum(h.seconds for h in history))
        return RunInfo(run_id, config, meta.name or config.label(),
                       meta.created if meta.created is not None else created_from_id(run_id), snap, meta.group,
                       tuple(problems), meta.tags, meta.owner, queued)

    @staticmethod
    def _read_metrics(d: Path, config: TrainConfig, problems: list[str]):
        try:
            return parse_metrics(read_file(d / "metrics.jsonl", MAX_METRICS), config.epochs, problems)
        except StoreFileMissing:
            return [], []  # a run that never logged a step
        except StoreFileError as e:
            problems.append(f"{e}: no steps or epochs could be read")
            return [], []

    @staticmethod
    def _match_weights(d: Path, config: TrainConfig, history: list[EpochMetrics], problems: list[str]):
        """The history the weights file backs: a run claims no epoch its weights do not hold."""
        try:
            epoch, metrics = _weights_claim(d / "weights.safetensors", config)
        except StoreFileMissing:
            if history:
                problems.append("weights.safetensors is missing: the numbers cannot be checked and the model "
                                "cannot be loaded")
            return history
        except (StoreFileError, ValueError) as e:
            problems.append(f"weights.safetensors cannot be used ({e})")
            return history
        if epoch is None or epoch == len(history):  # weights saved before epochs were recorded, or in step
            return history
        if epoch == len(history) + 1 and metrics is not None:
            problems.append(f"metrics.jsonl lacked epoch {epoch}'s line (the program stopped between two "
                            "writes): recovered from the weights file")
            return [*history, metrics]
        if epoch < len(history):
            problems.append(f"metrics.jsonl records {len(history)} epochs but the weights are from epoch {epoch}: "
                            f"epochs {epoch + 1}-{len(history)} are not shown")
            return history[:epoch]
        problems.append(f"the weights are from epoch {epoch} but metrics.jsonl records {len(history)} epochs")
        return history

    @staticmethod
    def _read_status(d: Path, config: TrainConfig, history: list, problems: list[str]) -> tuple[str, str | None, bool]:
        """(status, message, whether it was waiting for a slot when its program stopped)."""
        try:
            status, error = parse_status(read_file(d / "status.json"))
        except (StoreFileError, ValueError) as e:
            status, error = ("finished" if len(history) == config.epochs else "stopped"), None
            problems.append(f"{e}; shown as {status} from its {len(history)} recorded epochs")
        if status == "queued" and not history:  # it never started: it can be queued again as it was
            return "stopped", QUEUED_INTERRUPTED, True
        if status in LIVE_STATUSES:  # its process died while it trained
            status, error = "stopped", "interrupted: the program stopped while this run was training"
        elif status == "finished" and len(history) < config.epochs:
            problems.append(f"status.json says finished, but {len(history)} of {config.epochs} epochs are recorded")
        return status, error, False

    def _info(self, run_id: str) -> RunInfo:
        info = self._runs[run_id]
        run = self._live.get(run_id)
        return replace(info, snapshot=run.snapshot) if run else info

    def list(self) -> list[RunInfo]:
        """All readable runs, newest first."""
        with self._lock:
            return sorted((self._info(r) for r in self._runs), key=lambda r: r.created, reverse=True)

    def get(self, run_id: str) -> RunInfo:
        with self._lock:
            if run_id not in self._runs:
                raise UnknownRunError(f"No run {run_id!r}")
            return self._info(run_id)

    def damaged(self) -> list[DamagedRun]:
        """Folders named like runs that cannot be read, with the reason, newest first."""
        with self._lock:
            return [DamagedRun(i, why) for i, why in sorted(self._damaged.items(), reverse=True)]

    def ignored(self) -> list[str]:
        """Names in the runs folder that are not runs (left alone)."""
        return list(self._ignored)

    def revision(self, owner: str | None = None) -> int:
        """A number that changes when a run is added, renamed or deleted, or a run of this process changes status
        (queued, running, paused, ended): what a page polls to know it must redraw. Cheap: no copies, no disk.
        With `owner`, only that learner's runs count: in a class a learner's page need not redraw whenever any of
        the class's runs starts or ends."""
        with self._lock:
            if owner is None:
                return hash((self._changes, tuple(r.snapshot.status for r in self._live.values())))
            return hash(tuple((i, r.name, self._live[i].snapshot.status if i in self._live else r.snapshot.status)
                              for i, r in self._runs.items() if r.owner == owner))

    def live_runs(self) -> list[RunInfo]:
        return [r for r in self.list() if r.live]

    def find_live(self, config: TrainConfig, owner: str | None = None) -> RunInfo | None:
        """A live run with the same training settings, if any (to refuse silent duplicates); with `owner`, one of that
        learner's only (in a class every learner may start the settings of one lesson link)."""
        return next((r for r in self.live_runs() if r.config == config and owner in (None, r.owner)), None)

    # --- starting and controlling ---------------------------------------------------------
    def start(self, config: TrainConfig, name: str | None = None, allow_duplicate: bool = False,
              group: str | None = None, after: str | None = None, probe: StepProbe | None = None,
              tags: dict | None = None, owner: str = EVERYONE) -> RunInfo:
        """Queue a run; the scheduler starts it as soon as a slot and the memory it needs are free (at once on an
        idle server). `after`: a run id to wait for; `probe`: a StepProbe; `tags`: JSON-ready facts kept with the
        run's settings (a tuning study's name and trial number); `owner`: the learner it belongs to.
        AdmissionError when the scheduler cannot take it (larger than all training memory, too many queued)."""
        config.validate()
        if _shutdown.closing():
            raise RuntimeError("The program is shutting down: no run starts now.")
        name = check_name(name) if name is not None else config.label()
        if config.precision_choice is not None:  # "auto" was asked for: what it chose here, and why
            tags = {**(tags or {}), "precision_auto": config.precision_choice.describe()}
        need = memory_estimate(config)
        with self._lock:
            if not allow_duplicate and (dup := self.find_live(config, owner)):
                raise DuplicateRunError(f"An identical run is already training: {dup.name} ({dup.id}).")
            self._order += 1
            job = Job("", owner, need.total, self._order, after)
            scheduler.check_admission(job, [r.job for r in self._waiting()], self.limits, need.describe())
            run_id = new_run_id()
            while run_id in self._runs or run_id in self._damaged:
                run_id = new_run_id()
            d = self.root / run_id
            try:
                d.mkdir()
            except OSError as e:
                raise RunsFolderError(f"Cannot create a run in the runs folder {self.root} ({e.strerror}). Set "
                                      "RUNS_DIR (or --runs-dir) to a folder this program may write to.") from None
            created = time.time()
            meta = {"config": config.to_dict(), "name": name, "created": created, "group": group, "tags": tags}
            atomic_write_json(d / "config.json", meta | ({"owner": owner} if owner else {}))
            atomic_write_json(d / "status.json", {"status": "queued", "error": None})
            run = _Run(self, run_id, config, replace(job, run_id=run_id), _Persist(d, config, probe), probe)
            self._live[run_id] = run
            self._runs[run_id] = RunInfo(run_id, config, name, created, run.snapshot, group, tags=tags, owner=owner)
            self._changes += 1
        self._schedule()
        return self.get(run_id)

    def requeue(self, run_id: str, by: str | None = None) -> RunInfo:
        """Queue again a run that was waiting for a slot when the program stopped (same id, settings and owner)."""
        if _shutdown.closing():
            raise RuntimeError("The program is shutting down: no run starts now.")
        with self._lock:
            info = self.get(run_id)
            self._check_owner(info, by)
            if not info.interrupted_queued:
                raise RuntimeError(f"{info.name} did not wait in a queue when the program stopped")
            self._order += 1
            job = Job(run_id, info.owner, memory_estimate(info.config).total, self._order)
            scheduler.check_admission(job, [r.job for r in self._waiting()], self.limits)
            d = run_dir(self.root, run_id)
            atomic_write_json(d / "status.json", {"status": "queued", "error": None})
            run = _Run(self, run_id, info.config, job, _Persist(d, info.config), None)
            self._live[run_id] = run
            self._runs[run_id] = replace(self._runs[run_id], snapshot=run.snapshot, interrupted_queued=False)
            self._changes += 1
        self._schedule()
        return self.get(run_id)

    def interrupted_queued(self) -> list[RunInfo]:
        """Runs that were waiting for a slot when the program stopped, oldest first (what `requeue` takes)."""
        return sorted((r for r in self.list() if r.interrupted_queued), key=lambda r: r.created)

    def _waiting(self) -> list[_Run]:
        return [r for r in self._live.values() if r.waiting]

    def _schedule(self) -> None:
        """Start what the scheduler says may start now. Called whenever a run is queued, pauses, resumes or ends."""
        if _shutdown.closing():
            return  # queued runs stay queued: after a restart they are listed as queued and interrupted
        with self._lock:
            holding = [r for r in self._live.values() if r.holds_slot]
            paused = [r for r in self._live.values() if r.in_memory and not r.holds_slot]
            waiting = self._waiting()
            live_ids = {r.id for r in self._live.values() if not r.ended.is_set()}
            resume, start = scheduler.to_start([r.job for r in waiting], [r.job for r in holding],
                                               [r.job for r in paused], [r.job for r in paused if r.resume_wanted],
                                               live_ids, self.limits)
            for job in resume:
                run = self._live[job.run_id]
                run.resume_wanted, run.resuming = False, True
                run.handle.resume()
            for job in start:
                run = self._live[job.run_id]
                try:
                    run.handle = self.executor.launch(run.config, run, run.probe)
                    run.listener.probe = run.handle.probe  # probes.json is written from what the executor holds
                except Exception as e:  # the executor could not take it (a cluster gone): the run fails, said why
                    snap = replace(run.snapshot, status="failed", error=f"could not be started: {type(e).__name__}: {e}")
                    run._queued = snap
                    run.listener.on_end(snap, None)
                    run.ended.set()
                self._changes += 1

    def queue(self) -> list[RunInfo]:
        """The runs waiting for a slot, in the order they will start."""
        with self._lock:
            waiting = {r.job.run_id: r for r in self._waiting()}
            holding = [r.job for r in self._live.values() if r.holds_slot]
            return [self._info(j.run_id) for j in scheduler.fair_order([r.job for r in waiting.values()], holding)]

    def trainer(self, run_id: str) -> _Run | None:
        """The run as this process trains it (queued, training or paused; ended ones too until deleted), or None for
        a run of an earlier start."""
        with self._lock:
            return self._live.get(run_id)

    def pause(self, run_id: str, by: str | None = None) -> None:
        if run := self._checked(run_id, by):
            run.pause()

    def resume(self, run_id: str, by: str | None = None) -> None:
        """Continue a paused run: at once when a slot is free, else ahead of the queue when one frees."""
        if run := self._checked(run_id, by):
            with self._lock:
                if run.handle is None or run.snapshot.status != "paused":
                    if run.handle is not None:
                        run.handle.resume()  # a pause asked for but not yet taken: cancel it
                    return
                run.resume_wanted = True
            self._schedule()

    def stop(self, run_id: str, wait: float | None = None, by: str | None = None) -> None:
        if run := self._checked(run_id, by):
            run.stop()
            if wait:
                run.join(wait)

    def _stop_run(self, run: _Run, status: str = "stopped", reason: str | None = None) -> None:
        with self._lock:
            if run.waiting:  # still waiting: it ends here, never having trained
                why = reason or "stopped while it waited for a slot"
                run._queued = replace(run._queued, status=status, error=why)
                run.listener.on_end(run._queued, None)
                run.ended.set()
                self._changes += 1
                return
        if run.handle is not None:
            run.resume_wanted = False
            run.handle.stop(status, reason)

    def _checked(self, run_id: str, by: str | None) -> _Run | None:
        with self._lock:
            if run_id in self._runs:
                self._check_owner(self._runs[run_id], by)
            return self._live.get(run_id)

    @staticmethod
    def _check_owner(info: RunInfo, by: str | None) -> None:
        """`by`: the learner asking (None: the program itself, the teacher, or a dashboard without class mode)."""
        if by is not None and by != info.owner:
            raise RunPermissionError(f"{info.name} belongs to another learner: only they or the teacher may change it")

    def stop_all(self, wait: float | None = 10) -> None:
        for run_id in list(self._live):
            self.stop(run_id, wait)

    def pause_all(self) -> int:
        """Pause every training run (the teacher's "pause all"); how many were asked."""
        runs = [r for r in list(self._live.values()) if r.in_memory and r.snapshot.status == "running"]
        for r in runs:
            r.pause()
        return len(runs)

    def shutdown(self, wait: float = SHUTDOWN_WAIT) -> None:
        """Stop every live run, recording it as stopped, and wait for each to end (the process is exiting). Runs still
        waiting for a slot keep their "queued" status: after a restart they are listed as queued and interrupted."""
        with self._lock:
            runs = [r for r in self._live.values() if r.alive and r.handle is not None]
            for r in self._live.values():
                if r.waiting:
                    r.ended.set()  # never launched, and now never will be by this process
        for r in runs:
            r.handle.stop("stopped", "interrupted: the program was shut down while this run was training")
        deadline = time.monotonic() + wait
        for r in runs:
            r.join(max(0.0, deadline - time.monotonic()))
        if self._executor is not None:
            self._executor.close()

    # --- editing ------------------------------------------------------------------------
    def rename(self, run_id: str, name: str, by: str | None = None) -> None:
        name = check_name(name)
        with self._lock:
            info = self.get(run_id)
            self._check_owner(info, by)
            meta = {"config": info.config.to_dict(), "name": name, "created": info.created, "group": info.group,
                    "tags": info.tags} | ({"owner": info.owner} if info.owner else {})
            atomic_write_json(run_dir(self.root, run_id) / "config.json", meta)
            self._runs[run_id] = replace(self._runs[run_id], name=name)
            self._changes += 1

    def delete(self, run_id: str, by: str | None = None) -> None:
        """Delete a run's folder (or a damaged run's entry). RuntimeError for a live run, UnknownRunError for an
        unknown id, RunPermissionError for another learner's run, RunDeleteError when the files could not be
        removed."""
        check_run_id(run_id)
        with self._lock:
            if run_id not in self._runs and run_id not in self._damaged:
                raise UnknownRunError(f"No run {run_id!r}")
            if run_id in self._runs:
                self._check_owner(self._runs[run_id], by)
            elif by is not None:
                raise RunPermissionError("A damaged run can only be deleted by the teacher")
            if (t := self._live.get(run_id)) and t.alive:
                raise RuntimeError("Stop this run before deleting it.")
            try:
                remove_run_dir(self.root, run_id)
            except FileNotFoundError:
                pass  # already gone: what was asked for
            except OSError as e:
                raise RunDeleteError(f"Could not delete run {run_id} in {self.root}: {e}") from None
            self._runs.pop(run_id, None)
            self._damaged.pop(run_id, None)
            self._live.pop(run_id, None)
            self._changes += 1

    def failed_runs(self) -> list[str]:
        """Ids of the runs that failed and of the damaged ones: what `delete_failed` deletes."""
        with self._lock:
            failed = [r.id for r in self.list() if r.snapshot.status == "failed"]
            return failed + sorted(self._damaged, reverse=True)

    def delete_failed(self) -> list[str]:
        """Delete every failed and every damaged run; the ids deleted. When some could not be deleted, the
        others still are, and RunDeleteError then names each that remains and why."""
        deleted, errors = [], []
        for run_id in self.failed_runs():
            try:
                self.delete(run_id)
                deleted.append(run_id)
            except (RunDeleteError, RuntimeError, KeyError) as e:
                errors.append(str(e))
        if errors:
            raise RunDeleteError(f"Deleted {len(deleted)} run(s); {len(errors)} could not be: " + "; ".join(errors))
        return deleted

    # --- reading files --------------------------------------------------------------------
    def probes(self, run_id: str) -> dict | None:
        """What a probe recorded: live from memory while the run trains, else from probes.json (None when
        there is none or it cannot be read)."""
        trainer = self.trainer(run_id)
        if trainer is not None and trainer.probe is not None:
            return trainer.probe.to_dict()
        try:
            data = json.loads(read_file(run_dir(self.root, run_id) / "probes.json", MAX_PROBES))
        except (KeyError, StoreFileError, ValueError, RecursionError):
            return None
        return data if isinstance(data, dict) else None

    def load_model(self, run_id: str, device: torch.device | str = "cpu") -> MLP:
        """The run's weights (those of its last completed epoch), read from disk."""
        info = self.get(run_id)
        try:
            d = run_dir(self.root, run_id)
        except StoreFileError as e:
            raise WeightsError(str(e)) from None
        return load_weights(d / "weights.safetensors", info.config, device)

    def export_zip(self, run_id: str, by: str | None = None) -> bytes:
        """config.json + metrics.csv + weights.safetensors of one run, as a zip archive; problems.txt says why
        a part is missing."""
        info = self.get(run_id)
        self._check_owner(info, by)
        notes = list(info.problems)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("config.json", json.dumps({"name": info.name, "config": info.config.to_dict()}, indent=1))
            z.writestr("metrics.csv", metrics_csv(info.snapshot))
            try:
                z.writestr("weights.safetensors", read_file(run_dir(self.root, run_id) / "weights.safetensors",
                                                            MAX_WEIGHTS))
            except StoreFileMissing:
                pass  # no epoch completed: nothing to include
            except StoreFileError as e:
                notes.append(f"weights.safetensors not included: {e}")
            if notes:
                z.writestr("problems.txt", "\n".join(notes) + "\n")
        return buf.getvalue()


def read_metrics(path: Path, epochs: int = 10_000) -> tuple[list[tuple[int, float]], list[EpochMetrics]]:
    """A metrics.jsonl file's step losses and epochs (lines that are not records are skipped)."""
    return parse_metrics(read_file(path, MAX_METRICS), epochs, [])


def metrics_csv(snap: RunSnapshot) -> str:
    rows = ["epoch,train_loss,train_acc,test_loss,test_acc,seconds"]
    rows += [f"{h.epoch},{h.train_loss},{h.train_acc},{h.test_loss},{h.test_acc},{h.seconds}" for h in snap.history]
    return "\n".join(rows) + "\n"
