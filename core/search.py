"""Command line: run a hyperparameter study whose trials are runs of the dashboard's run store.

    python -m core.search --study NAME --n-trials 20 --epochs 3 --max-batches 100 --json
    python -m core.search worker --study NAME --storage URL

The first form creates the study (or resumes it, raising its budget to --n-trials) and works on it until
its budget is spent. `worker` joins a study that exists: start several on one machine (the default journal
storage) or on several machines (an RDB URL such as postgresql://user@host/db) and they share its budget.
A study keeps the settings it was made with: resuming it with other ones is refused, naming them.

Exit status: 0 done; 1 the storage failed while working; 2 bad settings or a storage that cannot be used;
130 (143) stopped by Ctrl-C (SIGTERM): the trial's run stops after its current batch, is recorded, and the
trial is queued to run first when the study resumes. A second signal says it is stopping, a third quits at once.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time

import core  # noqa: F401 - first: the CPU threading policy applies before torch loads (core/engine/cpu.py)
from core.engine.cpu import apply_thread_policy
from core.store.runs import RunsFolderError, RunStore
from core.tuning.space import DEFAULT_SPACE, tunable_dimensions
from core.tuning.storage import default_storage_url, describe, repairs
from core.tuning.study import PRUNERS, SAMPLERS, RunnerState, StudySpec, create_study, make_spec, open_study, \
    run_study, set_budget, start_seed

DEFAULTS = {"epochs": 3, "max_batches": 100, "params": ",".join(DEFAULT_SPACE), "sampler": "tpe",
            "pruner": "median", "seed": 0}


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--study", required=True, help="the study's name")
    p.add_argument("--storage", default=None,
                   help="a journal file path or an RDB URL (sqlite:///studies.db, postgresql://...); "
                        "default: studies.journal in the runs folder")
    p.add_argument("--data-dir", default=None, help="default: $DATA_DIR or ./data")
    p.add_argument("--runs-dir", default=None, help="default: $RUNS_DIR or ./runs")
    p.add_argument("--json", action="store_true", help="print the best trial as one JSON object on the last line")


def parse_args(argv: list[str]) -> argparse.Namespace:
    if argv[:1] == ["worker"]:
        p = argparse.ArgumentParser(prog="python -m core.search worker",
                                    description="Work on an existing study until its budget is spent.")
        _common(p)
        ns = p.parse_args(argv[1:])
        ns.worker = True
        return ns
    p = argparse.ArgumentParser(prog="python -m core.search", description=__doc__.splitlines()[0])
    _common(p)
    p.add_argument("--n-trials", type=int, default=None, help="the study's budget (required for a new study)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per trial (default 3)")
    p.add_argument("--max-batches", type=int, default=None, help="batches per epoch, 0 = all (default 100)")
    p.add_argument("--params", default=None,
                   help=f"what to tune, comma separated (default {DEFAULTS['params']}); "
                        f"any of {', '.join(tunable_dimensions())}")
    p.add_argument("--sampler", choices=SAMPLERS[:2], default=None, help="default tpe")
    p.add_argument("--pruner", choices=PRUNERS, default=None, help="default median")
    p.add_argument("--seed", type=int, default=None, help="the sampler's seed (default 0)")
    ns = p.parse_args(argv)
    ns.worker = False
    return ns


def _names(params: str) -> list[str]:
    return [n.strip() for n in params.split(",") if n.strip()]


def _differences(args: argparse.Namespace, spec: StudySpec) -> list[str]:
    """The settings given on the command line that differ from the study's own, as `--flag given (study: x)`."""
    stored = {"epochs": spec.base.epochs, "max_batches": spec.base.max_batches or 0,
              "params": ",".join(d.name for d in spec.space), "sampler": spec.sampler, "pruner": spec.pruner,
              "seed": spec.seed}
    given = {k: getattr(args, k) for k in DEFAULTS if getattr(args, k) is not None}
    if "params" in given:
        given["params"] = ",".join(_names(given["params"]))
    return [f"--{k.replace('_', '-')} {v} (the study's: {stored[k]})" for k, v in given.items() if v != stored[k]]


def _prepare(args: argparse.Namespace, url: str) -> None:
    """Create the study, or raise the budget of the one that exists (refusing other settings for it)."""
    try:
        _, spec = open_study(url, args.study)
    except ValueError as e:
        if not str(e).startswith("no study"):
            raise  # a storage that cannot be read is not an absent study
        spec = None
    if spec is None:
        if args.n_trials is None:
            raise ValueError(f"--n-trials: a new study needs a budget (no study {args.study!r} in {describe(url)})")
        a = {k: d if getattr(args, k) is None else getattr(args, k) for k, d in DEFAULTS.items()}
        new = make_spec(args.n_trials, a["epochs"], a["max_batches"] or None, names=_names(a["params"]),
                        sampler=a["sampler"], pruner=a["pruner"], seed=a["seed"])
        create_study(url, args.study, new)
        return
    if diff := _differences(args, spec):
        raise ValueError(f"study {args.study!r} exists with other settings, which it keeps: {'; '.join(diff)}. Leave "
                         "these out to resume it (--n-trials changes its budget), or name a new study")
    if args.n_trials is not None and args.n_trials != spec.n_trials:
        set_budget(url, args.study, args.n_trials)


class _StopOnSignals:
    """Ctrl-C and SIGTERM end the study cleanly: the first stops the trial's run after its current batch (the
    run is recorded as stopped, the trial queued to run first on resume), a second says so, a third quits."""

    def __init__(self, state: RunnerState) -> None:
        self.state, self.count, self.signum = state, 0, None
        self.before = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}

    def restore(self) -> None:
        for s, handler in self.before.items():
            signal.signal(s, handler)

    def _handle(self, signum, frame) -> None:
        self.count += 1
        self.signum = self.signum or signum
        if self.count == 1:
            self.state.stop.set()  # the objective stops its run within a poll and queues the trial again
            print("\nstopping: the trial's run stops after its current batch and the trial runs first when the study "
                  "resumes (twice more quits at once)", file=sys.stderr)
        elif self.count == 2:
            print("still stopping: waiting for the current batch to end", file=sys.stderr)
        else:
            os._exit(128 + signum)  # every write is atomic or a whole journal line: what is on disk loads


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        store = RunStore(args.runs_dir, args.data_dir)
        url = args.storage or default_storage_url(store.root)
        if not args.worker:
            _prepare(args, url)
        study, spec = open_study(url, args.study)
    except (RunsFolderError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    shown = _say_repairs(url, 0)
    print(f"study {args.study} in {describe(url)}: {spec.n_trials} trials of {spec.base.epochs} epoch(s) x "
          f"{spec.base.max_batches or 'all'} batches; {', '.join(d.describe() for d in spec.space)} · "
          f"{apply_thread_policy().describe()}", file=sys.stderr)
    from tqdm import tqdm

    from core.lessons.tuning import best_row, trial_rows

    done0 = sum(r.counted and r.state in ("COMPLETE", "PRUNED", "FAIL") for r in trial_rows(study))
    bar = tqdm(total=spec.n_trials, initial=done0, desc=args.study, unit="trial", file=sys.stderr)

    def on_trial(study_, trial) -> None:
        best = best_row(trial_rows(study_))
        if best is not None:
            bar.set_postfix(best=f"{best.accuracy:.2%}", refresh=False)
        # every worker's finished trials, not only this one's
        bar.n = sum(r.counted and r.state in ("COMPLETE", "PRUNED", "FAIL") for r in trial_rows(study_))
        bar.refresh()

    state = RunnerState()
    signals = _StopOnSignals(state) if threading.current_thread() is threading.main_thread() else None
    t0, failed = time.perf_counter(), None
    try:
        # The first process keeps the spec's seed (reproducible); workers draw fresh randomness each.
        run_study(store, url, args.study, state, seed=None if args.worker else start_seed(url, args.study),
                  on_trial=on_trial)
    except KeyboardInterrupt:  # only where the handlers above could not be installed
        print("interrupted: the trial that was training is queued to run first when the study resumes", file=sys.stderr)
        state.stop.set()
    except ValueError as e:  # the storage failed while working (a journal damaged or made read-only meanwhile)
        failed = str(e)
    finally:
        bar.close()
        store.stop_all(wait=30)
        if signals is not None:
            signals.restore()
    _say_repairs(url, shown)
    if failed:
        print(f"error: {failed}", file=sys.stderr)
        return 1
    rows = trial_rows(study)
    best = best_row(rows)
    states = {s: sum(r.state == s for r in rows) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")}
    print(f"{state.trials_done} trial(s) here in {time.perf_counter() - t0:.1f} s; study: "
          + ", ".join(f"{v} {k.lower()}" for k, v in states.items() if v)
          + (f"; best {best.accuracy:.2%} (trial {best.number}: {best.params})" if best else ""), file=sys.stderr)
    if args.json:
        print(json.dumps({"study": args.study, "storage": describe(url), "trials_here": state.trials_done, **states,
                          "best": None if best is None else {"number": best.number, "accuracy": best.accuracy,
                                                             "params": best.params, "run_id": best.run_id,
                                                             "config": spec.trial_config(best.params).to_dict()}}))
    if signals is not None and signals.signum is not None:
        return 128 + signals.signum
    return 130 if state.stop.is_set() else 0


def _say_repairs(url: str, shown: int) -> int:
    """Print what this process repaired in the journal since `shown` notes; the number of notes now."""
    notes = repairs(url)
    for note in notes[shown:]:
        print(f"repaired: {note}", file=sys.stderr)
    return len(notes)


if __name__ == "__main__":
    status = main()
    # As Python shuts down it puts its own signal handlers back to the default, and a signal then would kill the
    # process instead of ending it with this status: from here on, signals are ignored (as in core.train).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(status)
