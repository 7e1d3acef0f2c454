"""Tuning studies on Optuna: trials are runs of the store, pruning, resume, several workers, the lessons' numbers."""
import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from core.lessons import tuning as T
from core.store.runs import RunStore
from core.tuning import storage as S
from core.tuning.space import DEFAULT_SPACE, Dimension, apply_params, make_space, tunable_dimensions
from core.tuning.study import (StudyRunner, budget_used, create_study, make_spec, open_study, run_study, worker_id)
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent


def journal(tmp_path) -> str:
    return str(tmp_path / "runs" / S.JOURNAL_NAME)


def states(study) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


# --- the search space --------------------------------------------------------------------------------------
def test_space_follows_the_course_and_the_config_metadata():
    dims = tunable_dimensions()
    assert set(DEFAULT_SPACE) <= set(dims)
    assert dims["lr"].log and (dims["lr"].lo, dims["lr"].hi) == (1e-4, 1e-1)
    b = dims["one_minus_beta1"]
    assert b.log and (1 - b.hi, 1 - b.lo) == pytest.approx((0.9, 0.999))
    assert not {"epochs", "seed", "max_batches", "dataset"} & set(dims)  # the budget is not a hyperparameter
    base = make_spec(1, epochs=1, max_batches=5).base
    config = apply_params(base, make_space(), {"lr": 0.01, "one_minus_beta1": 0.01, "batch_size": 128,
                                                "batch_norm": True, "width": 0.5})
    assert config.lr == 0.01 and config.beta1 == pytest.approx(0.99) and config.batch_size == 128
    assert config.batch_norm and config.hidden == (256, 128, 64, 16) and config.epochs == 1
    with pytest.raises(ValueError, match="unknown"):
        make_space(["lr", "nonsense"])
    with pytest.raises(ValueError, match="lr"):
        make_space(["lr"], ranges={"lr": (1e-6, 1e-3)})  # wider than the course's range


def test_a_field_that_opts_in_becomes_tunable(monkeypatch):
    """A field whose metadata says tunable=True gets its dimension from its range, with no code in the space
    (tests/test_registries.py: without it, it is not searched)."""
    from core.engine import config as C

    @dataclass(frozen=True)
    class Extended(C.TrainConfig):
        weight_decay: float = C.option(1e-4, "Weight decay", "L2 penalty", "float", lo=1e-6, hi=1e-1, log=True,
                                       tunable=True)

    monkeypatch.setattr(C, "TrainConfig", Extended)
    dims = tunable_dimensions()
    assert dims["weight_decay"] == Dimension("weight_decay", "float", "weight_decay", lo=1e-6, hi=1e-1, log=True,
                                             label="Weight decay")
    config = apply_params(Extended(epochs=1), (dims["weight_decay"],), {"weight_decay": 1e-3})
    assert config.weight_decay == 1e-3


# --- the lessons' numbers --------------------------------------------------------------------------------
def test_log_scale_lesson_is_true():
    from scipy import stats

    lr = T.draw(1e-4, 1.0, 2000, log=True, seed=0)
    assert lr.min() >= 1e-4 and lr.max() <= 1.0
    assert stats.kstest(np.log10(lr), stats.uniform(loc=-4, scale=4).cdf).pvalue > 0.01  # log10 is uniform
    assert [s for _, _, s in T.decade_shares(lr, 1e-4, 1.0)] == pytest.approx([0.25] * 4, abs=0.04)
    uniform = T.draw(1e-4, 1.0, 2000, log=False, seed=0)
    assert (uniform > 0.1).mean() == pytest.approx(0.9, abs=0.02)  # the course's "about 90%"
    assert T.decade_shares(uniform, 1e-4, 1.0)[-1][2] == pytest.approx((uniform > 0.1).mean())
    expected = T.expected_decade_shares(1e-4, 1.0, log=False)
    assert expected[-1][2] == pytest.approx(0.9 / 0.9999) and sum(s for *_, s in expected) == pytest.approx(1)
    # beta: uniform in [0.9, 0.999] gives 0.99-0.999 only 0.009/0.099 of the draws; 1 - beta on a log scale half
    one_minus = 1 - T.draw(0.9, 0.999, 2000, log=False, seed=1)
    assert T.decade_shares(one_minus, 1e-3, 1e-1)[0][2] == pytest.approx(0.009 / 0.099, abs=0.02)
    logged = T.draw(1e-3, 1e-1, 2000, log=True, seed=1)
    assert T.decade_shares(logged, 1e-3, 1e-1)[0][2] == pytest.approx(0.5, abs=0.04)


def test_grid_tries_three_learning_rates_random_tries_nine(tmp_path):
    url = journal(tmp_path)
    specs = T.grid_vs_random(epochs=1, max_batches=2)
    counts = {}
    for kind, spec in specs.items():
        create_study(url, kind, spec)
        study, _ = open_study(url, kind, seed=0)
        # The samplers are the point here; the accuracy is a stand-in, so nothing trains.
        study.optimize(lambda t: sum(d.suggest(t) for d in spec.space), n_trials=spec.n_trials)
        rows = T.trial_rows(study)
        counts[kind] = (len(rows), T.distinct_values(rows, "lr"), T.distinct_values(rows, "eps"))
    assert counts == {"grid": (9, 3, 3), "random": (9, 9, 9)}
    assert T.log_cell_centres(1e-4, 1e-1, 3) == pytest.approx([10 ** -3.5, 10 ** -2.5, 10 ** -1.5])


def test_coarse_to_fine_region_holds_the_best_trials():
    spec = T.coarse(1, 5, 8)
    pts = [({"lr": lr, "one_minus_beta1": b}, acc) for lr, b, acc in [
        (1e-4, 0.05, 0.80), (3e-3, 0.01, 0.95), (5e-3, 0.02, 0.96), (1e-1, 0.001, 0.30), (2e-4, 0.09, 0.85),
        (4e-3, 0.005, 0.94)]]
    region = T.propose_region(pts, spec.space)
    for lr, b, in [(3e-3, 0.01), (5e-3, 0.02)]:  # the top third
        assert region["lr"][0] <= lr <= region["lr"][1]
        assert region["one_minus_beta1"][0] <= b <= region["one_minus_beta1"][1]
    assert region["lr"][1] < 1e-1 and region["lr"][0] > 1e-4  # and it is a zoom
    fine = T.fine(spec, region)
    assert {d.name: (d.lo, d.hi) for d in fine.space} == region and fine.lesson == "fine"


def _row(number, lr, acc, state="COMPLETE", eps=1e-8):
    return T.TrialRow(number, state, {"lr": lr, "eps": eps}, acc, 3, 1.0, None, "")


def test_gvr_result_waits_for_both_searches_and_measures_the_noise():
    """A repetition counts once both searches have their 9 results; its noise figure is the spread of the grid's
    runs at its best learning rate, which differ only in ε. Catches a tally that counts half-finished repetitions
    (a study still running would look like a loss) or takes the spread over every learning rate."""
    grid = [_row(i, lr, acc) for i, (lr, acc) in enumerate(
        [(3e-4, 0.899), (3e-4, 0.900), (3e-4, 0.8998), (3e-3, 0.9086), (3e-3, 0.9028), (3e-3, 0.8968),
         (3e-2, 0.1135), (3e-2, 0.1135), (3e-2, 0.6881)])]
    random = [_row(i, lr, 0.85 + i / 100) for i, lr in enumerate(np.geomspace(1e-4, 1e-1, 9))]
    assert T.gvr_result("g", grid, random[:8], 9) is None  # one random trial short
    assert T.gvr_result("g", grid, random[:8] + [_row(8, 0.1, None, "RUNNING")], 9) is None
    r = T.gvr_result("g", grid, random, 9)
    assert (r.grid_best, r.random_best, r.winner) == (0.9086, pytest.approx(0.93), "random")
    assert r.grid_spread == (3e-3, pytest.approx(0.9086 - 0.8968)) and r.grid_best_lr == 3e-3
    failed = random[:8] + [_row(8, 0.1, None, "FAIL")]  # a diverged trial is a result (no accuracy)
    assert T.gvr_result("g", grid, failed, 9).random_best == pytest.approx(0.92)


def test_gvr_tally_words_are_computed():
    """How often random wins, with the uncertainty a few repetitions leave. Catches words that claim 'random wins'
    whatever the results, or drop the losing repetitions from the spread."""
    results = (T.GvrResult("a", 0.90, 0.92, (3e-3, 0.012), 3e-3), T.GvrResult("b", 0.91, 0.89, None, 3e-3),
               T.GvrResult("c", 0.90, 0.90, None, 3e-4), T.GvrResult("d", 0.88, 0.91))
    text = T.GvrTally(results).words()
    lo, hi = T.wilson(2, 4)
    assert f"**Over 4 finished repetitions, random search found the better learning rate in 2** (95% interval " \
           f"{lo:.0%}–{hi:.0%} of repetitions), the grid in 1, a tie in 1." in text
    assert "+0.75 points on average, from -2.00 to +3.00" in text
    assert "spread over 1.20 points" in text and "A few repetitions say little" in text
    assert "The grid's best came from learning rate 0.003 in 2 of 3" in text
    assert T.GvrTally(()).words() == "No repetition has finished yet."


@pytest.mark.parametrize("k,n", [(0, 5), (3, 10), (7, 7), (12, 20)])
def test_wilson_interval_equals_scipy(k, n):
    import scipy.stats
    ci = scipy.stats.binomtest(k, n).proportion_ci(method="wilson")
    assert T.wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_a_repetition_reseeds_the_training_too():
    """With only the sampler reseeded the grid replays the same 9 runs every time (its points are fixed, and
    the training seed was 0): a repetition must draw new initial weights and minibatches as well."""
    specs = T.grid_vs_random(1, 5)
    again = {k: T.reseeded(v, 12345) for k, v in specs.items()}
    assert all(s.seed == 12345 and s.base.seed == 12345 for s in again.values())
    assert again["grid"].grid == specs["grid"].grid and again["grid"].base.epochs == 1


def test_duration_estimate_grows_with_the_budget():
    pace = T.Pace(step_fixed=1e-3, per_sample=2e-5, eval_seconds=0.1, start=0.05)
    small, big = make_spec(10, epochs=1, max_batches=50), make_spec(10, epochs=2, max_batches=100)
    s, b = T.estimate_seconds(small, pace), T.estimate_seconds(big, pace)
    assert 0 < s < b < 5 * s
    course = T.Pace(1e-3, 2e-5, 0.1, 0.0).trial_seconds(make_spec(1, epochs=2, max_batches=100).base)
    assert course == pytest.approx(2 * (100 * (1e-3 + 2e-5 * 64) + 0.1))


# --- studies through the run store -----------------------------------------------------------------------
def test_tiny_study_end_to_end_through_the_run_store(store):
    url = S.default_storage_url(store.root)
    assert url.startswith(str(store.root))  # the journal lives in the runs folder
    create_study(url, "tiny", make_spec(3, epochs=1, max_batches=3, pruner="none", sampler="random"))
    state = run_study(store, url, "tiny", seed=0)
    study, spec = open_study(url, "tiny")
    assert states(study) == {"COMPLETE": 3} and state.trials_done == 3
    for t in study.trials:
        run = store.get(t.user_attrs["run"]["id"])
        assert run.snapshot.status == "finished" and run.tags == {"study": "tiny", "trial": t.number}
        assert t.value == run.snapshot.final.test_acc and f"tiny · trial {t.number}" == run.name
        assert run.config == spec.trial_config(t.params)
        assert run.config.beta1 == pytest.approx(1 - t.params["one_minus_beta1"])
    assert len(store.list()) == 3
    assert RunStore(store.root, store.data_dir).get(study.trials[0].user_attrs["run"]["id"]).tags["study"] == "tiny"
    for timing in state.timings:  # every trial's time is accounted for
        assert 0 < timing.optuna < timing.wall and 0 < timing.run < timing.wall


def test_a_clearly_bad_trial_is_pruned(store):
    url = S.default_storage_url(store.root)
    lr = replace(make_space(["lr"])[0], lo=1e-6, hi=1.0)
    spec = make_spec(3, epochs=3, max_batches=60, pruner="median", prune_after=2, sampler="random")
    create_study(url, "prune", replace(spec, space=(lr,)))
    study, _ = open_study(url, "prune")
    for value in (3e-3, 3e-3, 1e-6):  # two good learning rates, then one that can barely move the weights
        study.enqueue_trial({"lr": value})
    run_study(store, url, "prune", seed=0)
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED"]
    bad = store.get(trials[2].user_attrs["run"]["id"])
    assert bad.snapshot.status == "pruned" and "pruned after epoch 1" in bad.snapshot.error
    assert bad.snapshot.epoch < 3 and len(trials[2].intermediate_values) == 1
    assert trials[2].intermediate_values[1] < min(t.value for t in trials[:2]) - 0.2
    assert budget_used(study) == 3  # a pruned trial is a result: it counts


def test_a_diverging_trial_is_a_failed_result(store):
    """Settings that blow up are an answer too: the trial fails, counts toward the budget and is not repeated."""
    from core.engine.config import TrainConfig

    url = S.default_storage_url(store.root)
    lr = replace(make_space(["lr"])[0], lo=1e-6, hi=10.0)
    spec = make_spec(2, base=TrainConfig(optimizer="sgd", epochs=2, max_batches=30), pruner="none", sampler="random")
    create_study(url, "blowup", replace(spec, space=(lr,)))
    study, _ = open_study(url, "blowup")
    for value in (10.0, 1e-2):
        study.enqueue_trial({"lr": value})
    run_study(store, url, "blowup", seed=0)
    rows = T.trial_rows(study, store)
    assert [r.state for r in rows] == ["FAIL", "COMPLETE"] and all(r.counted for r in rows)
    assert rows[0].error.startswith("run diverged: the training loss became nan") and rows[0].accuracy is None
    assert store.get(rows[0].run_id).snapshot.status == "diverged" and budget_used(study) == 2


def test_stopped_study_resumes_after_the_store_is_rebuilt_from_disk(tmp_path, data_dir):
    root = tmp_path / "runs"
    store = RunStore(root, data_dir)
    url = S.default_storage_url(root)
    create_study(url, "resume", make_spec(3, epochs=2, max_batches=60, pruner="none", sampler="random"))
    runner = StudyRunner(store, url, "resume").start()
    try:
        wait_until(lambda: runner.state.trials_done >= 1 and runner.state.run_id is not None, 120, 0.01,
                   "the second trial's run to start")
        runner.stop()
        runner.join(60)
    finally:
        store.stop_all(wait=30)
    assert not runner.alive and runner.state.error is None
    study, _ = open_study(url, "resume")
    stopped = [t for t in study.trials if t.state.name == "FAIL"]
    assert len(stopped) == 1 and stopped[0].user_attrs["uncounted"]
    retry = [t for t in study.trials if t.state.name == "WAITING"]
    assert len(retry) == 1 and retry[0].system_attrs["fixed_params"] == stopped[0].params
    assert store.get(stopped[0].user_attrs["run"]["id"]).snapshot.status == "stopped"
    assert budget_used(study) < 3

    S._storages.clear()  # a new process: the journal is read from disk again, the store from its folders
    store2 = RunStore(root, data_dir)
    try:
        run_study(store2, url, "resume", seed=1)
    finally:
        store2.stop_all(wait=30)
    study, _ = open_study(url, "resume")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 3 and budget_used(study) == 3
    assert any(t.params == stopped[0].params for t in complete)  # the stopped trial ran again, once
    ids = [t.user_attrs["run"]["id"] for t in complete]
    assert len(set(ids)) == 3 and all(store2.get(i).snapshot.status == "finished" for i in ids)
    assert len(store2.list()) == 4  # three results and the stopped run, nothing twice


def test_trial_of_a_dead_process_runs_again(store):
    url = S.default_storage_url(store.root)
    create_study(url, "dead", make_spec(2, epochs=1, max_batches=3, pruner="none", sampler="random"))
    study, spec = open_study(url, "dead", seed=0)
    orphan = study.ask()
    for d in spec.space:
        d.suggest(orphan)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host, _, _ = worker_id().split(":")
    orphan.set_user_attr("run", {"id": None, "worker": f"{host}:{dead.stdout.strip()}:1"})  # a process that ended
    run_study(store, url, "dead", seed=0)
    trials = study.get_trials()
    assert trials[0].state.name == "FAIL" and states(study) == {"FAIL": 1, "COMPLETE": 2}
    assert any(t.params == trials[0].params and t.user_attrs.get("retry_of") == 0 for t in trials[1:])


def test_after_a_restart_the_page_sees_the_interrupted_trial_as_stopped(store):
    from core.tuning.study import Tuner

    tuner = Tuner(store)
    tuner.create("restart", make_spec(1, epochs=1, max_batches=3), start=False)
    study, spec = open_study(tuner.storage_url, "restart", seed=0)
    left = study.ask()  # the trial the old server was training when it stopped
    for d in spec.space:
        d.suggest(left)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left.set_user_attr("run", {"id": "old", "worker": f"{worker_id().split(':')[0]}:{dead.stdout.strip()}:1"})
    assert budget_used(study) == 1  # as storage holds it: the budget looks spent
    study, _ = tuner.open("restart")
    assert budget_used(study) == 0 and [t.state.name for t in study.trials] == ["FAIL", "WAITING"]
    assert not tuner.running("restart")


def test_a_trial_beyond_the_budget_is_not_run(store, monkeypatch):
    """Two workers that both saw budget left and both asked: the later trial finds the budget spent before it
    and ends without a run, marked so that it does not count."""
    from core.tuning import study as M

    url = S.default_storage_url(store.root)
    create_study(url, "race", make_spec(1, epochs=1, max_batches=3, pruner="none", sampler="random"))
    study, spec = open_study(url, "race", seed=0)
    other = study.ask()  # another live worker's trial (this process: alive)
    for d in spec.space:
        d.suggest(other)
    other.set_user_attr("run", {"id": None, "worker": worker_id()})
    monkeypatch.setattr(M, "budget_used", lambda study: 0)  # this worker's check came before the other's ask
    run_study(store, url, "race", seed=0)
    late = study.get_trials()[1]
    assert late.state.name == "FAIL" and late.user_attrs["uncounted"].startswith("surplus")
    assert store.list() == [] and not late.params  # no run, nothing sampled
    monkeypatch.undo()
    assert budget_used(study) == 1  # the other worker's trial is the budget


def _worker(url: str, runs: Path, data_dir: str) -> subprocess.Popen:
    env = {**os.environ, "DATA_DIR": data_dir}
    return subprocess.Popen([sys.executable, "-m", "core.search", "worker", "--study", "shared", "--storage", url,
                             "--runs-dir", str(runs), "--json"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_two_worker_processes_share_one_study(tmp_path, data_dir, kind):
    runs = tmp_path / "runs"
    url = journal(tmp_path) if kind == "journal" else f"sqlite:///{tmp_path / 'studies.db'}"
    n = 6
    create_study(url, "shared", make_spec(n, epochs=1, max_batches=3, pruner="none", sampler="random"))
    workers = [_worker(url, runs, data_dir) for _ in range(2)]
    outs = [w.communicate(timeout=240) for w in workers]
    for w, (out, err) in zip(workers, outs):
        assert w.returncode == 0, err
    here = [json.loads(out.strip().splitlines()[-1])["trials_here"] for out, _ in outs]
    S._storages.clear()
    study, _ = open_study(url, "shared")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    others = [t for t in study.trials if t.state.name != "COMPLETE"]
    assert len(complete) == n and all(t.user_attrs.get("uncounted") for t in others)  # budget exact, none lost
    store = RunStore(runs, data_dir)
    ids = [t.user_attrs["run"]["id"] for t in complete]
    assert len(set(ids)) == n and len(store.list()) == n  # no trial run twice, no stray run
    for t in complete:  # every result is its run's
        run = store.get(t.user_attrs["run"]["id"])
        assert run.tags == {"study": "shared", "trial": t.number} and t.value == run.snapshot.final.test_acc
    assert sum(here) == len(study.trials)


def test_cli_creates_resumes_and_prints_json(tmp_path, data_dir):
    env = {**os.environ, "DATA_DIR": data_dir}
    cmd = [sys.executable, "-m", "core.search", "--study", "cli", "--epochs", "1", "--max-batches", "3",
           "--runs-dir", str(tmp_path), "--json", "--params", "lr,batch_norm"]
    out = subprocess.run(cmd + ["--n-trials", "2"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=240)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["COMPLETE"] == 2 and 0 < res["best"]["accuracy"] <= 1
    assert set(res["best"]["params"]) == {"lr", "batch_norm"}
    assert "2/2" in out.stderr  # the progress bar
    out = subprocess.run(cmd + ["--n-trials", "3"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=240)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert out.returncode == 0 and res["COMPLETE"] == 3 and res["trials_here"] == 1  # resumed, budget raised


def test_cli_refuses_bad_input_with_a_message(tmp_path, capsys):
    from core.search import main

    assert main(["--study", "x", "--runs-dir", str(tmp_path)]) == 2
    assert "--n-trials" in capsys.readouterr().err
    assert main(["--study", "x", "--runs-dir", str(tmp_path), "--n-trials", "2", "--storage", "nosuchdb://x"]) == 2
    assert "storage: cannot open nosuchdb database" in capsys.readouterr().err
    assert main(["--study", "x", "--runs-dir", str(tmp_path), "--n-trials", "2", "--params", "lr,seed"]) == 2
    assert "unknown parameter(s) seed" in capsys.readouterr().err
    assert main(["worker", "--study", "nope", "--runs-dir", str(tmp_path)]) == 2
    assert "no study 'nope'" in capsys.readouterr().err


def test_bad_specs_are_refused_with_their_field():
    with pytest.raises(ValueError, match="n_trials"):
        make_spec(0)
    with pytest.raises(ValueError, match="sampler"):
        make_spec(3, sampler="annealing")
    with pytest.raises(ValueError, match="grid"):
        make_spec(3, sampler="grid")
    with pytest.raises(ValueError, match="study name"):
        create_study("/nonexistent/x.journal", "bad name!", make_spec(1))
    assert math.isclose(T.budget_words(make_spec(1, epochs=2, max_batches=100))["passes"], 2 * 100 * 64 / 60000)
