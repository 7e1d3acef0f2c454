"""Studies whose trials are ordinary runs: an Optuna objective that starts a run through the run store,
reports its test accuracy after every epoch so a pruner can stop a hopeless trial, and ends it as "pruned".

A study's settings (`StudySpec`: the fixed TrainConfig, the search space, the budget, sampler and pruner) are
kept in the study's own user attributes, so any process that can reach the storage can work on it:
`run_study` pulls trials until the study's budget is spent, whether it runs in the dashboard's thread, in
`python -m core.search`, or in several worker processes at once.

The budget counts trials that have or will have a result: complete, pruned and failed trials, and those
running (a study has work left while fewer than its budget have). Trials that end without a result of their
own are marked and not counted: one stopped by the learner (its parameters are queued again, so resuming runs
it first), one found running in a process that died (the same), and one that a worker started after the
others had already spent the budget. A trial decides that last case from the counted trials numbered before
its own (waiting ones included: they run first), numbers which the storage hands out one at a time, so two
workers never overrun the budget together.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

import core.shutdown as shutdown
from core.engine.config import TrainConfig, config_from_dict
from core.store.groups import LabKind
from core.store.records import OWNER
from core.store.runs import RunStore
from core.tuning.space import Dimension, apply_params, make_space
from core.tuning.storage import default_storage_url, is_dead, is_rdb_url, open_storage, worker_id  # noqa: F401

if TYPE_CHECKING:
    import optuna

SPEC_ATTR = "spec"
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "none")
POLL_SECONDS = 0.05  # how often the objective looks at its run: only when a report is due does it do work
# A journal trial that has run this long without a worker recorded (the objective records it first thing, a
# few milliseconds after the trial is made) was made by a process that died before (or by a version of this
# module that recorded the worker only once the run started).
ORPHAN_SECONDS = 60.0

@dataclass(frozen=True)
class StudySpec:
    base: TrainConfig  # every setting the study does not vary: the budget (epochs, max_batches), data, seed
    space: tuple[Dimension, ...]
    n_trials: int
    sampler: str = "tpe"
    grid: dict[str, list] | None = None  # sampler "grid": the values of each parameter
    pruner: str = "median"
    prune_after: int = 3  # the median pruner compares a trial only with at least this many finished ones
    seed: int = 0  # the sampler's seed (a resumed study reseeds with the number of trials already made)
    lesson: str = ""  # which lesson of the Tuning page made it
    group: str = ""  # studies that one lesson compares
    owner: str = ""  # the learner who started it (class mode): its trials are that learner's runs

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if not 1 <= self.n_trials <= 10_000:
            raise ValueError(f"n_trials: from 1 to 10000, got {self.n_trials}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler: choose one of {', '.join(SAMPLERS)}; got {self.sampler!r}")
        if self.pruner not in PRUNERS:
            raise ValueError(f"pruner: choose one of {', '.join(PRUNERS)}; got {self.pruner!r}")
        if not self.space:
            raise ValueError("search space: choose at least one parameter")
        if not (isinstance(self.owner, str) and (self.owner == "" or OWNER.fullmatch(self.owner))):
            raise ValueError(f"owner: not a learner's id: {str(self.owner)[:40]!r}")
        if self.sampler == "grid":
            names = {d.name for d in self.space}
            if not self.grid or set(self.grid) != names:
                raise ValueError(f"grid: give the values of exactly these parameters: {', '.join(sorted(names))}")

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base.to_dict(), "space": [d.to_dict() for d in self.space], "n_trials": self.n_trials,
                "sampler": self.sampler, "grid": self.grid, "pruner": self.pruner, "prune_after": self.prune_after,
                "seed": self.seed, "lesson": self.lesson, "group": self.group} | ({"owner": self.owner} if self.owner else {})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StudySpec":
        return cls(**{**d, "base": config_from_dict(d["base"]),
                      "space": tuple(Dimension.from_dict(x) for x in d["space"])})

    def trial_config(self, params: dict[str, Any]) -> TrainConfig:
        return apply_params(self.base, self.space, params)


def make_spec(n_trials: int, epochs: int = 3, max_batches: int | None = 100, names=None, ranges=None,
              **kw: Any) -> StudySpec:
    """A spec over the named parameters (default: the course's list) on the default network."""
    base = kw.pop("base", None) or TrainConfig(epochs=epochs, max_batches=max_batches)
    space = make_space(names, ranges) if names is not None else make_space(ranges=ranges)
    return StudySpec(base=base, space=space, n_trials=n_trials, **kw)


# --- opening ---------------------------------------------------------------------------------------------
def _sampler(spec: StudySpec, seed: int | None) -> "optuna.samplers.BaseSampler":
    import optuna

    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "grid":
        return optuna.samplers.GridSampler(spec.grid, seed=seed)
    # Few trials: start modelling after a third of the budget instead of Optuna's default ten.
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(3, spec.n_trials // 3)))


def _pruner(spec: StudySpec) -> "optuna.pruners.BasePruner":
    import optuna

    if spec.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=spec.prune_after, n_warmup_steps=0)


def create_study(storage_url: str, name: str, spec: StudySpec) -> None:
    """A new study with its spec stored in it; ValueError if the name is taken."""
    import optuna

    name = check_study_name(name)
    try:
        study = optuna.create_study(study_name=name, storage=open_storage(storage_url), direction="maximize",
                                    load_if_exists=False)
    except optuna.exceptions.DuplicatedStudyError:
        raise ValueError(f"study {name!r} exists already in this storage") from None
    study.set_user_attr(SPEC_ATTR, spec.to_dict())
    study.set_user_attr("created", time.time())


def list_specs(storage_url: str) -> list[tuple[str, StudySpec]]:
    """Every study of this dashboard in the storage, newest first (others' studies are left out)."""
    found = []
    for s in open_storage(storage_url).get_all_studies():
        try:
            check_study_name(s.study_name)  # a name this dashboard would not give is not one of its studies
            found.append((s.user_attrs.get("created", 0.0), s.study_name, StudySpec.from_dict(s.user_attrs[SPEC_ATTR])))
        except (KeyError, TypeError, ValueError):
            continue
    return [(name, spec) for _, name, spec in sorted(found, key=lambda x: x[0], reverse=True)]


def check_study_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 100 or not all(c.isalnum() or c in "-_.:" for c in name):
        raise ValueError(f"study name: 1 to 100 letters, digits or - _ . : ; got {name!r}")
    return name


def read_spec(study: "optuna.Study") -> StudySpec:
    try:
        return StudySpec.from_dict(study.user_attrs[SPEC_ATTR])
    except KeyError:
        raise ValueError(f"study {study.study_name!r} was not made by this dashboard (it has no settings)") from None


def open_study(storage_url: str, name: str, seed: int | None = None) -> tuple["optuna.Study", StudySpec]:
    """Load a study and its spec, with the spec's sampler (seeded with `seed`) and pruner."""
    import optuna

    storage = open_storage(storage_url)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise ValueError(f"no study {name!r} in {storage_url}") from None
    spec = read_spec(study)
    study = optuna.load_study(study_name=name, storage=storage, sampler=_sampler(spec, seed), pruner=_pruner(spec))
    return study, spec


def set_budget(storage_url: str, name: str, n_trials: int) -> StudySpec:
    """Raise (or lower) a study's budget; the other settings stay."""
    study, spec = open_study(storage_url, name)
    spec = replace(spec, n_trials=n_trials)
    study.set_user_attr(SPEC_ATTR, spec.to_dict())
    return spec


# --- the budget --------------------------------------------------------------------------------------------
def retried_numbers(trials: list["optuna.trial.FrozenTrial"]) -> set[int]:
    """Numbers of trials whose parameters were queued again (by this module, or by Optuna's heartbeat)."""
    return {t.user_attrs.get("retry_of", t.system_attrs.get("failed_trial")) for t in trials} - {None}


def counts_toward_budget(t: "optuna.trial.FrozenTrial", retried: set[int]) -> bool:
    from optuna.trial import TrialState

    return not (t.state == TrialState.FAIL and (t.user_attrs.get("uncounted") or t.number in retried))


def budget_used(study: "optuna.Study") -> int:
    """Trials that have a result or are getting one now; waiting ones are still to be run."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    return sum(counts_toward_budget(t, retried) for t in trials if t.state != TrialState.WAITING)


# --- processes that died with a trial in hand --------------------------------------------------------------
RUN_ATTR = "run"  # a trial's run and the process that trains it: {"id": run id or None, "worker": host:pid:start}


def run_of(t: "optuna.trial.FrozenTrial") -> str | None:
    return (t.user_attrs.get(RUN_ATTR) or {}).get("id")


def worker_of(t: "optuna.trial.FrozenTrial") -> str:
    return (t.user_attrs.get(RUN_ATTR) or {}).get("worker", "")


def _is_orphan(t: "optuna.trial.FrozenTrial", journal: bool, now: datetime) -> bool:
    """A running trial whose process has died: its worker is a dead process of this machine, or (a journal:
    one machine) it has had no worker for longer than any live process takes to record one."""
    if worker := worker_of(t):
        return is_dead(worker)
    start = t.datetime_start
    if not journal or start is None:
        return False  # an RDB storage's heartbeat decides about another machine's trials
    if start.tzinfo is None:
        start = start.astimezone()  # Optuna's journal records UTC; naive times are local
    return (now - start).total_seconds() > ORPHAN_SECONDS


def requeue_dead_trials(study: "optuna.Study", journal: bool = True) -> list[int]:
    """Fail the running trials of processes on this machine that have died (a server restart, a killed
    worker) and queue them again (with their parameters, as far as they were drawn: the retry takes the dead
    trial's place in the budget). `journal`: the storage is a journal file, which only this machine uses.
    Returns their numbers."""
    from optuna.trial import TrialState

    done, now = [], datetime.now(timezone.utc)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not _is_orphan(t, journal, now):
            continue
        try:
            study.tell(t.number, state=TrialState.FAIL)
        except (RuntimeError, ValueError):
            continue  # another worker got there first
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        done.append(t.number)
    return done


# --- the objective ---------------------------------------------------------------------------------------
class TrialEnded(Exception):
    """A trial that ends without a result: Optuna records it as failed, the budget does not count it."""


class TrialError(Exception):
    """A trial whose run failed (or whose parameters make no valid run): a result that counts."""


@dataclass
class TrialTiming:
    """Where one trial's wall time went (perf_counter marks), for the overhead benchmark."""
    start: float  # the previous trial's end: Optuna's ask comes next
    objective_start: float = 0.0
    objective_end: float = 0.0  # Optuna's tell and the callbacks come next
    end: float = 0.0
    run: float = 0.0  # from store.start() until the run's thread ended
    optuna_inside: float = 0.0  # suggest, report, should_prune, attributes, the budget check
    slot: float = 0.0  # (kept for the benchmark's table: trials wait for a slot inside their run now)
    other: float = 0.0  # callbacks that are not Optuna's (a progress bar)

    @property
    def wall(self) -> float:
        return self.end - self.start

    @property
    def optuna(self) -> float:
        """Seconds in Optuna: ask, tell and its storage outside the objective, the calls inside it."""
        outside = (self.objective_start - self.start) + (self.end - self.objective_end) - self.other
        return outside + self.optuna_inside


@dataclass
class RunnerState:
    """What a study's runner shares with the threads that watch it."""
    stop: threading.Event = field(default_factory=threading.Event)
    run_id: str | None = None  # the run the current trial trains
    trials_done: int = 0
    timings: list[TrialTiming] = field(default_factory=list)
    error: str | None = None


class _Objective:
    """One trial = one run of the store, watched until it ends."""

    def __init__(self, study: "optuna.Study", spec: StudySpec, store: RunStore, state: RunnerState) -> None:
        self.study, self.spec, self.store, self.state = study, spec, store, state

    def _optuna(self, fn: Callable, *args: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args, **kw)
        finally:
            self.state.timings[-1].optuna_inside += time.perf_counter() - t

    def __call__(self, trial: "optuna.Trial") -> float:
        timing = self.state.timings[-1]
        timing.objective_start = time.perf_counter()
        try:
            return self._trial(trial, timing)
        except KeyboardInterrupt:  # Ctrl-C in the command line: end the run, keep the trial for a resume
            self.state.stop.set()
            if self.state.run_id and (t := self.store.trainer(self.state.run_id)):
                t.stop("stopped", STOPPED)
                t.join(30)
            self._mark_interrupted(trial)
            raise
        finally:
            timing.objective_end = time.perf_counter()

    def _trial(self, trial: "optuna.Trial", timing: TrialTiming) -> float:
        # First of all, the worker: a trial whose process dies from here on (waiting for the slot, say) is then
        # known to be dead after a restart, and queued again.
        self._optuna(trial.set_user_attr, RUN_ATTR, {"id": None, "worker": worker_id()})
        if trial.number >= self.spec.n_trials and self._surplus(trial):  # fewer trials before it: it counts
            self._optuna(trial.set_user_attr, "uncounted", "surplus: other workers had spent the budget")
            self.study.stop()
            raise TrialEnded("the study's budget was already spent")
        params = {d.name: self._optuna(d.suggest, trial) for d in self.spec.space}
        try:
            config = self.spec.trial_config(params)
        except ValueError as e:
            raise TrialError(f"these parameters make no valid run: {e}") from None
        # A trial's run waits for a training slot in the run store's one scheduler, with every other run the server
        # starts (core/store/scheduler.py): no second queue here.
        return self._train(trial, timing, config)

    def _surplus(self, trial: "optuna.Trial") -> bool:
        trials = self._optuna(self.study.get_trials, deepcopy=False)
        retried = retried_numbers(trials)
        return sum(counts_toward_budget(t, retried) for t in trials if t.number < trial.number) >= self.spec.n_trials

    def _train(self, trial: "optuna.Trial", timing: TrialTiming, config: TrainConfig) -> float:
        import optuna

        if self.state.stop.is_set() or shutdown.closing():
            self._interrupted(trial, None)
        r0 = time.perf_counter()
        name = self.study.study_name
        run = self.store.start(config, name=f"{name} · trial {trial.number}", allow_duplicate=True,
                               group=LabKind.STUDY.new_id(name), tags={"study": name, "trial": trial.number},
                               owner=self.spec.owner)
        self.state.run_id = run.id
        # Each attribute write costs a locked, fsynced append to a journal: two per trial (the worker, then this).
        self._optuna(trial.set_user_attr, RUN_ATTR, {"id": run.id, "worker": worker_id()})
        trainer = self.store.trainer(run.id)
        reported, pruned = 0, False
        while True:
            trainer.join(POLL_SECONDS)
            if self.state.stop.is_set() and trainer.alive:
                trainer.stop("stopped", STOPPED)
            history = trainer.snapshot.history
            while not pruned and reported < len(history):
                h = history[reported]
                reported += 1
                self._optuna(trial.report, h.test_acc, h.epoch)
                # The last epoch's report is the result: nothing is left to save by pruning there.
                if h.epoch < config.epochs and self._optuna(trial.should_prune):
                    pruned = True
                    trainer.stop("pruned", f"pruned after epoch {h.epoch}: test accuracy {h.test_acc:.2%}, below the "
                                           "median of the earlier trials at that epoch")
            if not trainer.alive:
                break
        timing.run = time.perf_counter() - r0
        self.state.run_id = None
        snap = trainer.snapshot
        if snap.status == "finished":
            return snap.final.test_acc
        if snap.status == "pruned":
            raise optuna.TrialPruned(snap.error or "pruned")
        if snap.status == "stopped":  # by this study's Stop, or by someone on the Train or Runs page
            self._interrupted(trial, run.id)
        raise TrialError(f"run {run.id} ended {snap.status}: {snap.error}")

    def _interrupted(self, trial: "optuna.Trial", run_id: str | None) -> None:
        self._mark_interrupted(trial)
        self.study.stop()
        raise TrialEnded("stopped" + (f" (run {run_id})" if run_id else " before its run started"))

    def _mark_interrupted(self, trial: "optuna.Trial") -> None:
        """No result: not counted, its parameters queued to run first when the study resumes."""
        self._optuna(trial.set_user_attr, "uncounted", "stopped before it finished")
        if trial.params:
            self._optuna(self.study.enqueue_trial, trial.params, user_attrs={"retry_of": trial.number})


STOPPED = "the study was stopped; resuming it runs this trial again"


class _TrialEndings(logging.Filter):
    """Optuna logs every failed trial with its traceback: a trial that ended without a result (TrialEnded: stopped,
    surplus) is no failure to report, and a run that failed (TrialError) says why in one line, without a
    traceback; the trial's row on the page and the command line's summary show both."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, TrialEnded) or record.getMessage().endswith("failed with value None."):
            return False
        if isinstance(error, TrialError):
            record.exc_info = record.exc_text = None
        return True


def _quiet_trial_endings() -> None:
    log = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, _TrialEndings) for f in log.filters):
        log.addFilter(_TrialEndings())


def run_study(store: RunStore, storage_url: str, name: str, state: RunnerState | None = None,
              seed: int | None = None,
              on_trial: Callable[["optuna.Study", "optuna.trial.FrozenTrial"], None] | None = None) -> RunnerState:
    """Run trials of study `name` in this thread until its budget is spent or `state.stop` is set. `seed`: the
    sampler's seed in this process (None: fresh randomness, which parallel workers need)."""
    state = state or RunnerState()
    _quiet_trial_endings()
    study, spec = open_study(storage_url, name, seed)
    requeue_dead_trials(study, journal=not is_rdb_url(storage_url))
    if budget_used(study) >= spec.n_trials or state.stop.is_set():
        return state
    state.timings.append(TrialTiming(time.perf_counter()))

    def after_trial(study_: "optuna.Study", trial: "optuna.trial.FrozenTrial") -> None:
        state.trials_done += 1
        if budget_used(study_) >= spec.n_trials or state.stop.is_set() or shutdown.closing():
            study_.stop()
        timing = state.timings[-1]
        if on_trial is not None:
            t = time.perf_counter()
            on_trial(study_, trial)
            timing.other += time.perf_counter() - t
        timing.end = time.perf_counter()
        state.timings.append(TrialTiming(timing.end))

    try:
        study.optimize(_Objective(study, spec, store, state), callbacks=[after_trial],
                       catch=(TrialEnded, TrialError))
    finally:
        state.timings.pop()  # opened for a trial that never came
        state.run_id = None
    return state


def start_seed(storage_url: str, name: str) -> int:
    """A reproducible seed for this process's runner that differs on resume: the spec's seed plus the number of
    trials made so far (a resumed study reseeded with the first seed would draw its first trials again)."""
    study, spec = open_study(storage_url, name)
    return spec.seed + len(study.get_trials(deepcopy=False))


# --- the dashboard's process-wide manager ----------------------------------------------------------------
class StudyRunner:
    """Runs one study's trials in a background thread (never touching UI code)."""

    def __init__(self, store: RunStore, storage_url: str, name: str) -> None:
        self.store, self.storage_url, self.name = store, storage_url, name
        self.state = RunnerState()
        self._thread = threading.Thread(target=self._run, name=f"study-{name}", daemon=True)

    def start(self) -> "StudyRunner":
        shutdown.register(self, shutdown.STUDIES)  # at exit: stopped, its trial recorded, before the runs stop
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            run_study(self.store, self.storage_url, self.name, self.state, seed=start_seed(self.storage_url, self.name))
        except Exception as e:  # the thread must never die silently
            self.state.error = f"{type(e).__name__}: {e}"

    def stop(self) -> None:
        self.state.stop.set()
        if self.state.run_id and (t := self.store.trainer(self.state.run_id)):
            t.stop("stopped", STOPPED)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def shutdown(self, wait: float) -> None:
        self.stop()
        self.join(wait)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


class Tuner:
    """The dashboard's studies: one storage, a runner per study this process is working on. Thread-safe."""

    def __init__(self, store: RunStore, storage_url: str | None = None) -> None:
        self.store = store
        self.storage_url = storage_url or os.environ.get("STUDY_STORAGE") or default_storage_url(store.root)
        self._lock = threading.Lock()
        self._runners: dict[str, StudyRunner] = {}

    def create(self, name: str, spec: StudySpec, start: bool = True) -> str:
        create_study(self.storage_url, name, spec)
        if start:
            self.start(name)
        return name

    def start(self, name: str) -> StudyRunner:
        """Run (or resume) a study in the background; the runner already at work on it, if there is one."""
        with self._lock:
            runner = self._runners.get(name)
            if runner is None or not runner.alive:
                runner = self._runners[name] = StudyRunner(self.store, self.storage_url, name).start()
            return runner

    def stop(self, name: str, wait: float | None = None) -> None:
        if runner := self.runner(name):
            runner.stop()
            if wait:
                runner.join(wait)

    def stop_all(self, wait: float | None = 10) -> None:
        for name in list(self._runners):
            self.stop(name, wait)

    def runner(self, name: str) -> StudyRunner | None:
        with self._lock:
            return self._runners.get(name)

    def running(self, name: str) -> bool:
        return (r := self.runner(name)) is not None and r.alive

    def specs(self) -> list[tuple[str, StudySpec]]:
        return list_specs(self.storage_url)

    def open(self, name: str) -> tuple["optuna.Study", StudySpec]:
        """The study, with any trial left running by a process of this machine that has died (a server restart)
        failed and queued again: the page then shows it as stopped, with its budget left to resume."""
        study, spec = open_study(self.storage_url, name)
        requeue_dead_trials(study, journal=not is_rdb_url(self.storage_url))
        return study, spec
