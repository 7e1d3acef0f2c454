"""Command line: run a hyperparameter study whose trials are runs of the dashboard's run store.

    python -m core.search --study NAME --n-trials 20 --epochs 3 --max-batches 100 --json
    python -m core.search worker --study NAME --storage URL

The first form creates the study (or resumes it, raising its budget to --n-trials) and works on it until
its budget is spent. `worker` joins a study that exists: start several on one machine (the default journal
storage) or on several machines (an RDB URL such as postgresql://user@host/db) and they share its budget.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import core  # noqa: F401 - first: the CPU threading policy applies before torch loads (core/engine/cpu.py)
from core.engine.cpu import apply_thread_policy
from core.store.runs import RunStore
from core.tuning.space import DEFAULT_SPACE, tunable_dimensions
from core.tuning.storage import default_storage_url, describe
from core.tuning.study import PRUNERS, SAMPLERS, RunnerState, create_study, make_spec, open_study, run_study, \
    set_budget, start_seed


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
    p.add_argument("--epochs", type=int, default=3, help="epochs per trial (default 3)")
    p.add_argument("--max-batches", type=int, default=100, help="batches per epoch, 0 = all (default 100)")
    p.add_argument("--params", default=",".join(DEFAULT_SPACE),
                   help=f"what to tune, comma separated (default {','.join(DEFAULT_SPACE)}); "
                        f"any of {', '.join(tunable_dimensions())}")
    p.add_argument("--sampler", choices=SAMPLERS[:2], default="tpe", help="default tpe")
    p.add_argument("--pruner", choices=PRUNERS, default="median", help="default median")
    p.add_argument("--seed", type=int, default=0, help="the sampler's seed (default 0)")
    ns = p.parse_args(argv)
    ns.worker = False
    return ns


def _prepare(args: argparse.Namespace, url: str) -> None:
    """Create the study, or raise the budget of the one that exists."""
    try:
        _, spec = open_study(url, args.study)
    except ValueError:
        spec = None
    if spec is None:
        if args.n_trials is None:
            raise ValueError(f"--n-trials: a new study needs a budget (no study {args.study!r} in {describe(url)})")
        names = [n.strip() for n in args.params.split(",") if n.strip()]
        new = make_spec(args.n_trials, args.epochs, args.max_batches or None, names=names, sampler=args.sampler,
                        pruner=args.pruner, seed=args.seed)
        create_study(url, args.study, new)
    elif args.n_trials is not None and args.n_trials != spec.n_trials:
        set_budget(url, args.study, args.n_trials)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    store = RunStore(args.runs_dir, args.data_dir)
    url = args.storage or default_storage_url(store.root)
    try:
        if not args.worker:
            _prepare(args, url)
        study, spec = open_study(url, args.study)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
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

    state, interrupted = RunnerState(), False
    t0 = time.perf_counter()
    try:
        # The first process keeps the spec's seed (reproducible); workers draw fresh randomness each.
        run_study(store, url, args.study, state, seed=None if args.worker else start_seed(url, args.study),
                  on_trial=on_trial)
    except KeyboardInterrupt:
        print("interrupted: the trial that was training is queued to run first when the study resumes", file=sys.stderr)
        interrupted = True
    finally:
        bar.close()
        store.stop_all(wait=30)
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
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
