"""The Ray executor: runs train in Ray actors, on this machine or on a cluster (RUN_EXECUTOR=ray; RAY_ADDRESS names
a cluster, else a local Ray is started). Imported only then: `import core` never loads Ray.

    server (the dashboard)                               a Ray worker, anywhere in the cluster
    RunStore -> RayExecutor.launch -> RayRunHandle       RunActor (a node's free CPU, or a share of a GPU)
                  begin(run, config, data ref)  ------>    Trainer(config, data from the object store): the same
                  poll (long poll, the heartbeat) <----    RunControl and backend as an in-process run, in a thread;
                  command (pause, resume, stop) ------>    an outbox of its events (statuses, loss windows, each
                  the listener (the store) persists        epoch's metrics and weights, the end) and the probe's news
                  every event, in order, on the server

- One actor trains one run at a time, in a thread; it is threaded (max_concurrency), so pause / resume / stop arrive
  while it trains and take effect within a batch. The executor keeps one actor per slot, made when it starts, so a
  run does not wait for a process to start and torch to load (seconds; benchmarks/README.md). The store's slots
  are the cluster's CPUs, and each run goes to a node with a CPU free of training runs (RayExecutor says why).
- Weights travel as safetensors bytes in the epoch's event; the runs folder exists on the server only.
- The dataset is put in the object store once per executor: each node receives it once and its actors map it.
- Faults. A worker process or node that dies ends its run "failed" with "worker lost"; the run keeps its last
  completed epoch's weights (the server saved them when that epoch ended). A server that dies takes its actors with
  it: Ray ends a job's actors when its driver dies, and each actor also stops its run and exits when it has not been
  polled for HEARTBEAT seconds. After a restart the store lists those runs as stopped (their status.json says
  running: core/store/runs.py reads that as interrupted).
"""
from __future__ import annotations

import atexit
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import replace

ADDRESS_ENV, GPU_SHARE_ENV = "RAY_ADDRESS", "RAY_GPU_SHARE"
DEFAULT_GPU_SHARE = 0.25  # four runs share a GPU: the course network leaves most of one idle
POLL_WAIT = 1.0  # seconds an actor holds a poll when it has nothing new (a long poll: news is answered at once)
POLL_GAP = 0.2  # seconds between two polls of one run: what a new loss point may wait, at most five calls a second
HEARTBEAT = 20.0  # an actor not polled for this long stops its run and exits: its server is gone
LOST_AFTER = 60.0  # a started actor that leaves a poll unanswered this long is lost (killed, the run failed)
ACTOR_THREADS = 4  # the poll, a command, and room for one more of each while one is slow
SHUTDOWN_REASON = "interrupted: the program was shut down while this run was training"

_ray = None  # the ray module in the server, imported by RayExecutor once its environment is set


def _import_ray(local: bool):
    """Import Ray after setting what must be set before: no usage reporting, and for a Ray started here, an address
    on the loopback only (Ray's switch for single-machine clusters: its servers then listen on 127.0.0.1)."""
    global _ray
    imported = "ray" in sys.modules
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if local:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        # the local cluster's token lives in this process's environment (and its children's), not in a file
        if not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")):
            os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    import ray

    if local and imported:  # imported before the switch was set: Ray read it then (ray_constants, Ray 2.60)
        ray._private.ray_constants.ENABLE_RAY_CLUSTER = os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] != "0"
    _ray = ray
    return ray


# --- the actor ------------------------------------------------------------------------------------------------
class _Outbox:
    """RunListener inside the actor: every event run control reports, kept until the server's next poll. Snapshots
    travel without their loss curve (the server rebuilds it from the windows), weights as safetensors bytes."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.events: list[tuple] = []

    def _put(self, *event) -> None:
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def on_status(self, snap) -> None:
        self._put("status", _lean(snap))

    def on_steps(self, steps) -> None:
        self._put("steps", list(steps))

    def on_epoch_end(self, snap, model) -> None:
        from safetensors.torch import save as save_safetensors

        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        self._put("epoch", _lean(snap), save_safetensors(state))

    def on_end(self, snap, model) -> None:
        self._put("end", _lean(snap))

    def wait(self, seconds: float) -> None:
        """Until an event is there, at most `seconds`."""
        with self.cond:
            if not self.events:
                self.cond.wait(seconds)

    def take(self) -> list[tuple]:
        with self.cond:
            events, self.events = self.events, []
        return events


def _lean(snap):
    return replace(snap, step_losses=())


class _ProbeDelta:
    """What a probe recorded since the last poll. A probe's dict holds a few settings and lists that grow by
    appending (one record per step looked at): a list is sent as its new tail, the rest whole when it changed."""

    def __init__(self, probe) -> None:
        self.probe = probe
        self.sent: dict = {}  # key -> list length already sent, or the value sent

    def take(self) -> dict | None:
        if self.probe is None:
            return None
        delta = {}
        for key, value in self.probe.to_dict().items():
            sent = self.sent.get(key, _NOTHING)
            if isinstance(value, list):
                if isinstance(sent, int) and len(value) >= sent:
                    if len(value) > sent:
                        delta[key] = ("+", value[sent:])
                else:  # first time, or shorter than what was sent: whole
                    delta[key] = ("=", value)
                self.sent[key] = len(value)
            elif sent is _NOTHING or sent != value:
                delta[key] = ("=", value)
                self.sent[key] = value
        return delta or None


_NOTHING = object()


class RemoteProbe:
    """The server's view of a probe that looks inside the network in a Ray worker: `to_dict` returns what it had
    recorded at the last poll (what core/store/runs.py shows live and writes to probes.json)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dict: dict = {}

    def merge(self, delta: dict | None) -> None:
        if not delta:
            return
        with self._lock:
            d = dict(self._dict)
            for key, (how, value) in delta.items():
                d[key] = [*d.get(key, []), *value] if how == "+" else value
            self._dict = d

    def to_dict(self) -> dict:
        with self._lock:
            return {k: list(v) if isinstance(v, list) else v for k, v in self._dict.items()}


_LOCKS = {type(threading.Lock()): threading.Lock, type(threading.RLock()): threading.RLock}


def portable_probe(probe) -> tuple | None:
    """A probe as it can travel to a worker: its class and its attributes, each lock replaced by a note to make a new
    one there (a lock cannot be copied to another process). The probe has not looked at anything yet."""
    if probe is None:
        return None
    state, locks = {}, {}
    for key, value in vars(probe).items():
        if type(value) in _LOCKS:
            locks[key] = _LOCKS[type(value)]
        else:
            state[key] = value
    return type(probe), state, locks


def rebuild_probe(portable: tuple | None):
    if portable is None:
        return None
    cls, state, locks = portable
    probe = cls.__new__(cls)
    probe.__dict__.update(state)
    for key, make in locks.items():
        setattr(probe, key, make())
    return probe


class RunActor:
    """A Ray worker that trains runs one after another (decorated with ray.remote by the executor). It is made before
    it is needed, so a run starts without waiting for a process and for torch to load; the server calls `begin` with
    a run, `poll` (a long poll, also its heartbeat) and `command` (pause, resume, stop) while it trains."""

    def __init__(self, heartbeat: float) -> None:
        import core.engine.trainer  # noqa: F401 - torch and the training code load now, before a run waits for them

        self.heartbeat, self.last_poll = heartbeat, time.monotonic()
        self.run_no, self.trainer = 0, None
        self.outbox, self.delta = _Outbox(), _ProbeDelta(None)
        self._datasets: dict[str, object] = {}
        self._lock = threading.Lock()
        self._seq = 0
        threading.Thread(target=self._watch, name="heartbeat", daemon=True).start()

    def begin(self, run_no: int, config, data: list, probe: tuple | None) -> tuple[int, str]:
        """Start training `config` as run `run_no` of this worker; `data`: [dataset name, its object in the store].
        Returns where it trains: (process id, Ray node id)."""
        from core.engine.trainer import Trainer

        with self._lock:
            if self.trainer is not None and self.trainer.alive:
                raise RuntimeError("this worker is still training a run")
            self.last_poll = time.monotonic()
            self.run_no, self._seq = run_no, 0
            self.outbox, probe = _Outbox(), rebuild_probe(probe)
            self.delta = _ProbeDelta(probe)
            self.trainer = Trainer(config, listener=self.outbox, probe=probe, keep_model=False,
                                   data=self._dataset(*data)).start()
        return os.getpid(), _ray_module().get_runtime_context().get_node_id()

    def poll(self, wait: float) -> dict:
        """Everything since the last poll: the events in order, then the run's snapshot and the probe's news. The
        snapshot is read before the events are taken, so an epoch it shows has its event (and weights) here."""
        self.last_poll = time.monotonic()
        with self._lock:
            run_no, trainer, outbox, delta = self.run_no, self.trainer, self.outbox, self.delta
        if trainer is None:
            return {"run": run_no, "pid": os.getpid()}
        if trainer.alive:
            outbox.wait(wait)
        snap = _lean(trainer.snapshot)
        return {"run": run_no, "pid": os.getpid(), "events": outbox.take(), "snapshot": snap, "probe": delta.take()}

    def command(self, run_no: int, seq: int, name: str, *args) -> None:
        """pause / resume / stop for run `run_no`, numbered by the server: calls to a threaded actor may run out of
        order, so a pause or resume older than one already applied is dropped (a stop never is)."""
        with self._lock:
            if run_no != self.run_no or self.trainer is None or (name != "stop" and seq < self._seq):
                return
            self._seq = max(self._seq, seq)
            getattr(self.trainer, name)(*args)

    def _dataset(self, name: str, ref):
        """The dataset from the object store: read-only arrays shared by the node's workers (training only reads
        them), fetched once per worker."""
        if name not in self._datasets:
            import torch

            from core.engine.data import Dataset, dataset_spec

            arrays = _ray_module().get(ref)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
                self._datasets[name] = Dataset(dataset_spec(name), *(torch.from_numpy(a) for a in arrays))
        return self._datasets[name]

    def _watch(self) -> None:
        """No poll for `heartbeat` seconds: the server is gone (or cut off). Stop the run and end this process."""
        while time.monotonic() - self.last_poll < self.heartbeat:
            time.sleep(min(1.0, self.heartbeat / 4))
        if self.trainer is not None:
            self.trainer.stop("stopped", f"interrupted: the server stopped following this run for {self.heartbeat:g} s")
            self.trainer.join(30)
        os._exit(0)


def _ray_module():
    import ray

    return ray


# --- the server's side ----------------------------------------------------------------------------------------
class RayRunHandle:
    """RunHandle of a run trained by a RunActor: follows it in a thread of the server, hands its events to the
    listener in order, and publishes its snapshot after them (an epoch is saved before it is shown)."""

    def __init__(self, executor: "RayExecutor", config, listener, probe, run_no: int) -> None:
        from core.engine.data import dataset_spec, num_batches
        from core.engine.snapshot import RunSnapshot

        self.executor, self.config, self.listener, self.run_no = executor, config, listener, run_no
        self._portable = portable_probe(probe)
        self.probe = RemoteProbe() if probe is not None else None  # what the probe in the worker recorded
        self.actor = None
        self.pid: int | None = None  # the worker process, once it took the run
        self.node: str | None = None  # its Ray node: where the executor placed it, then where it trains
        self._snap = RunSnapshot(status="queued", epochs=config.epochs, steps_per_epoch=num_batches(
            dataset_spec(config.dataset).train_size, config.batch_size, config.max_batches))
        self._losses: list[tuple[int, float]] = []
        self._lock = threading.Lock()
        self._seq = 0
        self._stop_asked: tuple[str, str | None] | None = None
        self._thread = threading.Thread(target=self._follow, name="ray-run", daemon=True)

    def start(self) -> "RayRunHandle":
        self._thread.start()
        return self

    # --- RunHandle ---------------------------------------------------------------------------------------
    @property
    def snapshot(self):
        with self._lock:
            return self._snap

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def pause(self) -> None:
        self._command("pause")

    def resume(self) -> None:
        self._command("resume")

    def stop(self, status: str = "stopped", reason: str | None = None) -> None:
        self._stop_asked = (status, reason)
        self._command("stop", status, reason)

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    # --- following the actor -----------------------------------------------------------------------------
    def _command(self, name: str, *args) -> None:
        with self._lock:
            self._seq += 1
            seq, actor = self._seq, self.actor
        if actor is not None and self.pid is not None:  # before that, a stop is seen by _begin
            try:
                actor.command.remote(self.run_no, seq, name, *args)
            except Exception:  # noqa: BLE001 - the actor is gone: its poll says so and ends the run
                pass

    def _full(self, snap):
        return replace(snap, step_losses=tuple(self._losses))

    def _follow(self) -> None:
        try:
            if self._begin():
                self._follow_actor()
        except Exception as e:  # noqa: BLE001 - a listener that failed (a disk error): as in a Trainer, failed
            if self.actor is not None:
                _kill(self.actor)
            self._lose(*(("stopped", SHUTDOWN_REASON) if self.executor.closing else
                         ("failed", f"{type(e).__name__}: {e}")))
        finally:
            self.executor._forget(self)

    def _begin(self) -> bool:
        """Hand the run to a worker (a waiting one, else a new one); False when it ended before one took it."""
        ray, lost, dead = _ray, None, set()
        for attempt in range(3):  # a waiting worker may have died with its node: then a new one, elsewhere
            actor = self.executor._take_actor(self, fresh=attempt > 0, avoid=dead)
            with self._lock:
                self.actor = actor
            ref = actor.begin.remote(self.run_no, self.config, self.executor._dataset_ref(self.config.dataset),
                                     self._portable)
            while not ray.wait([ref], timeout=0.5)[0]:
                if self._stop_asked is not None:  # stopped before it started (e.g. waiting for a free CPU)
                    _kill(actor)
                    self._lose(*self._stop_asked)
                    return False
            try:
                self.pid, self.node = ray.get(ref)
            except ray.exceptions.RayActorError as e:
                lost = e
                dead.add(self.node)
                continue
            if self._stop_asked is not None:
                self._command("stop", *self._stop_asked)
            return True
        self._lose("failed", f"could not be started: the Ray workers it was given died ({_death(lost)})")
        return False

    def _follow_actor(self) -> None:
        """Poll until the run ends (its events delivered) or its actor is lost."""
        ray, answered = _ray, time.monotonic()  # when the actor last answered
        while True:
            ref = self.actor.poll.remote(POLL_WAIT)
            asked = time.monotonic()
            while not ray.wait([ref], timeout=1.0)[0]:
                if time.monotonic() - asked > LOST_AFTER:
                    _kill(self.actor)
                    return self._lose("failed", f"worker lost: no answer for {LOST_AFTER:g} s")
            try:
                reply = ray.get(ref)
            except ray.exceptions.ActorUnavailableError:  # a passing network fault: ask again, within LOST_AFTER
                if time.monotonic() - answered > LOST_AFTER:
                    _kill(self.actor)
                    return self._lose("failed", f"worker lost: unreachable for {LOST_AFTER:g} s")
                time.sleep(1.0)
                continue
            except ray.exceptions.RayActorError as e:
                return self._lose(*(("stopped", SHUTDOWN_REASON) if self.executor.closing else
                                    ("failed", f"worker lost: {_death(e)}")))
            answered = time.monotonic()
            if self._deliver(reply):
                return
            time.sleep(POLL_GAP)

    def _deliver(self, reply: dict) -> bool:
        """Hand the reply's events to the listener in order, then publish its snapshot; True once the run ended."""
        if self.probe is not None:
            self.probe.merge(reply["probe"])
        for kind, *fields in reply["events"]:
            if kind == "steps":
                self._losses.extend(fields[0])
                self.listener.on_steps(fields[0])
            elif kind == "status":
                self._publish(fields[0])
                self.listener.on_status(self._full(fields[0]))
            elif kind == "epoch":
                self.listener.on_epoch_end(self._full(fields[0]), self._model(fields[1]))
            elif kind == "end":
                self._publish(fields[0])
                self.executor._give_back(self.actor, self.node)  # free for the next run before the store hands one out
                self._end(self._full(fields[0]))
                return True
        self._publish(reply["snapshot"])
        return False

    def _publish(self, snap) -> None:
        with self._lock:
            self._snap = self._full(snap)

    def _model(self, blob: bytes):
        from safetensors.torch import load as load_safetensors

        from core.engine.backends import model_for

        model = model_for(self.config)
        model.load_state_dict(load_safetensors(blob))
        return model

    def _lose(self, status: str, reason: str | None) -> None:
        """The run ends here with `status` (its worker is gone, or never started), keeping its last saved epoch."""
        from core.engine.control import kept_message

        snap = self.snapshot
        snap = replace(snap, status=status, error=kept_message(snap, reason))
        with self._lock:
            self._snap = snap
        self.listener.on_status(snap)
        self._end(snap)

    def _end(self, snap) -> None:
        try:
            self.listener.on_end(snap, None)
        except Exception as e:  # noqa: BLE001 - as the Trainer does: the run is failed, said why
            with self._lock:
                self._snap = replace(self._snap, status="failed",
                                     error=f"saving the end of the run failed: {type(e).__name__}: {e}")


def _death(e: Exception) -> str:
    """Why an actor died, in a few words, from Ray's message ("The actor is dead because its worker process has
    died. ..." or "... because its node has died ...")."""
    text = " ".join(str(e).split())
    if m := re.search(r"because its ([a-z ]{1,40}?) (?:has|had|was) (?:died|been killed|killed)", text):
        return f"its {m.group(1)} died"
    return text[:200]


def _kill(actor) -> None:
    try:
        _ray.kill(actor)
    except Exception:  # noqa: BLE001 - already gone
        pass


# --- the executor ---------------------------------------------------------------------------------------------
class RayExecutor:
    """Runs as Ray actors: connects to RAY_ADDRESS (or `address`), else starts a local Ray bound to 127.0.0.1 with
    its own temporary folder, no dashboard, and every core of this machine (or `num_cpus`). Thread-safe.

    Where a run trains: on CPUs, the node with the most CPUs not taken by this executor's training runs. A paused
    run takes none, as in-process: the run store gives its slot to the next run, so it must be able to start. A Ray
    reservation of one CPU per actor would not allow that: the paused actor keeps its CPU, the next run waits for
    it, and the paused run waits for a slot (with "pause all" and a queue, for ever). So an actor reserves no CPU
    and is placed on its node by the executor (Ray's node affinity). With GPUs, each run reserves a share of one
    (RAY_GPU_SHARE) and Ray places it. The executor keeps one waiting worker per slot, made at once, so a run
    does not wait for a process to start and for torch to load."""
    name = "ray"

    def __init__(self, data_dir: str | None = None, address: str | None = None, heartbeat: float = HEARTBEAT,
                 num_cpus: int | None = None, warm: bool = True) -> None:
        self.data_dir, self.heartbeat = data_dir, heartbeat
        address = address or os.environ.get(ADDRESS_ENV) or None
        ray = _import_ray(local=address is None)
        self._lock = threading.Lock()
        self._data: dict[str, object] = {}  # dataset name -> its arrays in the object store
        self._handles: set[RayRunHandle] = set()
        self._idle: dict[str | None, list] = {}  # node -> workers waiting there for a run (None: Ray places)
        self._runs = 0
        self._temp: str | None = None
        self.closing = False
        self._closed = threading.Event()  # wakes the thread that polls the waiting workers
        self._owns = not ray.is_initialized()  # a Ray this process already uses is left as it is at close
        if self._owns:
            kwargs = dict(log_to_driver=False)
            if address is None:
                self._temp = tempfile.mkdtemp(prefix="mnist-ray-")
                kwargs |= dict(address="local", num_cpus=num_cpus, include_dashboard=False, _temp_dir=self._temp)
            else:
                kwargs |= dict(address=address)
            sigterm = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
            ray.init(**kwargs)
            if sigterm is not None:  # ray.init takes SIGTERM over; the program's own handling stays
                signal.signal(signal.SIGTERM, sigterm)
            # Ray's own exit hook would shut it down before the run store's (registered earlier, so run later) has
            # stopped the runs: close() shuts Ray down instead, and the store calls it once its runs have ended.
            atexit.unregister(ray.shutdown)
        self._remote = ray.remote(max_concurrency=ACTOR_THREADS, max_restarts=0)(RunActor)
        self._share = self.gpu_share()
        if warm:
            with self._lock:
                if self._share:
                    self._idle[None] = [self._new_actor(None) for _ in range(self.capacity())]
                for node, cpus in ({} if self._share else self._cpu_nodes()).items():
                    self._idle[node] = [self._new_actor(node) for _ in range(cpus)]
        threading.Thread(target=self._keep_idle, name="ray-idle", daemon=True).start()

    # --- Executor ----------------------------------------------------------------------------------------
    def launch(self, config, listener, probe=None) -> RayRunHandle:
        with self._lock:
            self._runs += 1
            handle = RayRunHandle(self, config, listener, probe, self._runs)
            self._handles.add(handle)
        return handle.start()

    def capacity(self) -> int | None:
        """Runs the cluster trains at once: its CPUs, or with GPUs, its GPUs divided by the share a run takes."""
        res = _ray.cluster_resources()
        share = self.gpu_share()
        if share:
            return max(1, int(res.get("GPU", 0) / share + 1e-9))
        return max(1, int(res.get("CPU", 1)))

    def close(self) -> None:
        """End every worker (the store has stopped its runs first) and shut down a Ray this executor started."""
        self.closing = True
        self._closed.set()
        with self._lock:
            handles, idle, self._idle = list(self._handles), [a for v in self._idle.values() for a in v], {}
        for actor in idle + [h.actor for h in handles if h.actor is not None]:
            _kill(actor)
        for h in handles:
            h.join(10)
        self._data.clear()
        if self._owns and _ray.is_initialized():
            _ray.shutdown()
        if self._temp:
            shutil.rmtree(self._temp, ignore_errors=True)
            self._temp = None

    # --- workers -----------------------------------------------------------------------------------------
    def gpu_share(self) -> float:
        """The share of a GPU a run reserves: RAY_GPU_SHARE (0: CPUs only), by default 0.25 when the cluster has
        GPUs; 0 without GPUs."""
        if not _ray.cluster_resources().get("GPU"):
            return 0.0
        text = os.environ.get(GPU_SHARE_ENV, "").strip()
        try:
            share = float(text) if text else DEFAULT_GPU_SHARE
        except ValueError:
            share = -1.0
        if not 0 <= share <= 1:
            raise ValueError(f"{GPU_SHARE_ENV}: a share of one GPU between 0 and 1, such as 0.25; got {text!r}")
        return share

    def _cpu_nodes(self) -> dict[str, int]:
        """The cluster's live nodes that have CPUs, and how many."""
        return {n["NodeID"]: int(n["Resources"].get("CPU", 0)) for n in _ray.nodes()
                if n.get("Alive") and n["Resources"].get("CPU", 0) >= 1}

    def _place(self, avoid: set = frozenset()) -> str | None:
        """The node for a run that starts now (called under the lock): the most CPUs free of this executor's
        training runs, then the most waiting workers; not one in `avoid` (where its worker just died) unless it is
        the only one. None: Ray places it (GPU shares)."""
        if self._share:
            return None
        nodes = self._cpu_nodes()
        nodes = {n: c for n, c in nodes.items() if n not in avoid} or nodes
        busy = dict.fromkeys(nodes, 0)
        for h in self._handles:
            snap = h.snapshot
            if h.node in busy and snap.live and snap.status != "paused":
                busy[h.node] += 1
        return max(nodes, key=lambda n: (nodes[n] - busy[n], len(self._idle.get(n, ()))), default=None)

    def _new_actor(self, node: str | None):
        if self._share:
            return self._remote.options(num_cpus=0, num_gpus=self._share).remote(self.heartbeat)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        # strict: the actor starts where the executor counted it (with a soft affinity, one measurement here put 6 of
        # 8 runs on one node of two); a node that died meanwhile fails the actor, and the run asks for one elsewhere
        where = NodeAffinitySchedulingStrategy(node, soft=False) if node else "DEFAULT"
        return self._remote.options(num_cpus=0, scheduling_strategy=where).remote(self.heartbeat)

    def _take_actor(self, handle: RayRunHandle, fresh: bool = False, avoid: set = frozenset()):
        """A worker for `handle`'s run: one waiting on the chosen node, else a new one there."""
        with self._lock:
            node = handle.node = self._place(avoid)
            if self._idle.get(node) and not fresh:
                return self._idle[node].pop(0)
        return self._new_actor(node)

    def _give_back(self, actor, node: str | None) -> None:
        with self._lock:
            if not self.closing:
                self._idle.setdefault(None if self._share else node, []).append(actor)
                return
        _kill(actor)

    def _keep_idle(self) -> None:
        """Poll the waiting workers (their heartbeat), and let go of those that died (with their node)."""
        ray = _ray
        while not self._closed.wait(self.heartbeat / 4):
            with self._lock:
                idle = [(node, a) for node, actors in self._idle.items() for a in actors]
            refs = [a.poll.remote(0) for _, a in idle]
            for (node, actor), ref in zip(idle, refs):
                try:
                    ray.get(ref, timeout=self.heartbeat / 2)
                except Exception:  # noqa: BLE001 - dead, or not answering: no run will be given to it
                    with self._lock:
                        if actor in self._idle.get(node, ()):
                            self._idle[node].remove(actor)
                    _kill(actor)

    def _dataset_ref(self, name: str) -> list:
        """[name, the dataset's arrays in the object store], put there once per executor (each node then fetches
        them once). In a list, so that Ray hands the worker the reference: it maps the arrays once per process."""
        with self._lock:
            if name not in self._data:
                from core.engine.data import load_dataset

                d = load_dataset(name, self.data_dir)
                self._data[name] = _ray.put((d.train_x.numpy(), d.train_y.numpy(), d.test_x.numpy(), d.test_y.numpy()))
            return [name, self._data[name]]

    def _forget(self, handle: RayRunHandle) -> None:
        with self._lock:
            self._handles.discard(handle)
