"""The Ray executor (core/engine/ray_executor.py) on a local Ray that this module starts and stops: a run trained
on Ray is the run trained in-process (metrics, loss curve, weights and the BatchNorm probe alike), pause / resume /
stop reach it within a batch, a killed worker ends its run as "worker lost" with its last completed epoch kept, and
an actor whose server stops polling it ends by itself. Without RUN_EXECUTOR nothing of Ray is loaded."""
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from core.engine.config import TrainConfig
from core.engine.executor import InProcessExecutor
from core.lessons.batchnorm import BNProbe
from core.store.runs import RunStore
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed"),
              pytest.mark.timeout(600)]  # a local Ray starts in 5-25 s on a loaded 2-core machine

SMALL = TrainConfig(epochs=2, max_batches=30, batch_norm=True, seed=3)


@pytest.fixture(scope="module")
def executor(data_dir):
    """One local Ray for the module (2 CPUs: two slots), closed at the end: its processes go with it."""
    from core.engine.ray_executor import RayExecutor

    ex = RayExecutor(data_dir=data_dir, num_cpus=2)
    import ray

    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}  # a local Ray on the loopback only
    yield ex
    temp = ex._temp
    ex.close()
    assert temp is not None and not Path(temp).exists()


@pytest.fixture
def ray_store(tmp_path, data_dir, executor):
    s = RunStore(tmp_path / "ray-runs", data_dir, executor=executor)
    yield s
    s.stop_all(wait=60)


def run_to_end(store: RunStore, config: TrainConfig, **kwargs) -> str:
    run_id = store.start(config, allow_duplicate=True, **kwargs).id
    store.trainer(run_id).join(300)
    assert not store.get(run_id).live
    return run_id


def files(store: RunStore, run_id: str) -> tuple[list[dict], dict | None]:
    d = store.root / run_id
    metrics = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
    probes = json.loads((d / "probes.json").read_text()) if (d / "probes.json").exists() else None
    return metrics, probes


def test_a_ray_run_is_the_in_process_run(ray_store, tmp_path, data_dir, executor):
    """Same settings, same seed: the run trained in a Ray actor writes the loss curve, epoch metrics, weights and
    BatchNorm probe records that the in-process executor writes (the same code trains both, each on one thread).
    Catches a second training loop, data or weights garbled on the way, an epoch or a loss window lost or
    doubled in the event stream, and a probe whose records stay in the worker."""
    local = RunStore(tmp_path / "local-runs", data_dir, executor=InProcessExecutor(data_dir))
    ids = {name: run_to_end(store, SMALL, probe=BNProbe(every=10)) for name, store in
           (("ray", ray_store), ("local", local))}
    stores = {"ray": ray_store, "local": local}
    (m_ray, p_ray), (m_local, p_local) = files(ray_store, ids["ray"]), files(local, ids["local"])
    assert [k for k in m_ray if "epoch" in k] and len(m_ray) == len(m_local) == 2 * 3 + 2  # 3 windows an epoch
    for a, b in zip(m_ray, m_local):
        assert a.keys() == b.keys()
        for key in a.keys() - {"seconds"}:
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), key
    assert p_ray is not None and p_ray["records"] and p_ray.keys() == p_local.keys()
    assert [r["step"] for r in p_ray["records"]] == [r["step"] for r in p_local["records"]] == [1, 10, 20, 30, 40, 50, 60]
    assert p_ray["records"][-1]["layers"][0]["grad_norm"] == pytest.approx(p_local["records"][-1]["layers"][0]["grad_norm"], rel=1e-5)
    w = {name: stores[name].load_model(ids[name]).state_dict() for name in ids}
    assert all(torch.allclose(w["ray"][k], w["local"][k], rtol=1e-5, atol=1e-7) for k in w["local"])
    info, local_snap = ray_store.get(ids["ray"]), local.get(ids["local"]).snapshot
    assert info.snapshot.status == "finished" and info.snapshot.history[-1].epoch == 2
    assert [s for s, _ in info.snapshot.step_losses] == [s for s, _ in local_snap.step_losses] == [10, 20, 30, 40, 50, 60]
    assert [v for _, v in info.snapshot.step_losses] == pytest.approx([v for _, v in local_snap.step_losses], rel=1e-6)
    # read back from disk by a fresh store, as after a restart: nothing odd in the files
    again = RunStore(ray_store.root, data_dir).get(ids["ray"])
    assert again.problems == () and again.snapshot.history == info.snapshot.history
    assert ray_store.limits.slots == executor.capacity() == 2  # the scheduler's slots are the cluster's CPUs


def test_pause_resume_and_stop_reach_the_worker(ray_store):
    """Pause holds the run (no step while paused), resume continues it, stop ends it within a batch as stopped,
    keeping no epoch it did not complete. Catches commands that are not delivered, delivered out of order (a
    resume overtaken by its pause would leave it paused for ever) or applied only at an epoch end."""
    run_id = ray_store.start(replace(SMALL, epochs=3, max_batches=None, batch_norm=False), allow_duplicate=True).id
    run = ray_store.trainer(run_id)
    wait_until(lambda: run.snapshot.step >= 10, 120, 0.02, "the first loss point from the worker")
    ray_store.pause(run_id)
    wait_until(lambda: run.snapshot.status == "paused", 30, 0.02, "paused")
    held = run.snapshot.step
    time.sleep(1.5)
    assert run.snapshot.step == held and run.snapshot.epoch == 0
    ray_store.resume(run_id)
    wait_until(lambda: run.snapshot.status == "running" and run.snapshot.step > held, 30, 0.02, "running again")
    for _ in range(5):  # quick pause / resume pairs: the last word wins
        ray_store.pause(run_id)
        ray_store.resume(run_id)
    wait_until(lambda: run.snapshot.step > held + 20, 30, 0.02, "still training after the pairs")
    assert run.snapshot.status == "running"
    ray_store.stop(run_id, wait=60)
    snap = ray_store.get(run_id).snapshot
    assert snap.status == "stopped" and snap.epoch == 0 and "no epoch was completed" in snap.error
    assert json.loads((ray_store.root / run_id / "status.json").read_text())["status"] == "stopped"
    assert not (ray_store.root / run_id / "weights.safetensors").exists()


def test_paused_runs_give_their_slots_to_queued_runs(ray_store):
    """As in-process, a paused run gives its slot back: with both slots' runs paused, the two queued runs train (on
    the CPUs the paused ones do not use), and the paused ones resume when those end. Catches a Ray reservation of
    one CPU per actor, where the queued runs would wait for the paused runs' CPUs and the paused runs for a slot:
    a deadlock."""
    config = replace(SMALL, epochs=1, max_batches=None, batch_norm=False)
    first = [ray_store.start(replace(config, seed=s), allow_duplicate=True).id for s in (0, 1)]
    queued = [ray_store.start(replace(config, seed=s, max_batches=40), allow_duplicate=True).id for s in (2, 3)]
    runs = {i: ray_store.trainer(i) for i in first + queued}
    wait_until(lambda: all(runs[i].snapshot.step >= 10 for i in first), 120, 0.02, "the first two runs training")
    assert [runs[i].snapshot.status for i in queued] == ["queued", "queued"]
    for i in first:
        ray_store.pause(i)
    wait_until(lambda: all(runs[i].snapshot.status == "paused" for i in first), 60, 0.02, "both paused")
    wait_until(lambda: all(runs[i].snapshot.step >= 10 for i in queued), 120, 0.02, "the queued runs training")
    held = [runs[i].snapshot.step for i in first]
    for i in first:
        ray_store.resume(i)  # waits for a slot: the queued runs have them now
    for i in queued:
        runs[i].join(180)
        assert ray_store.get(i).snapshot.status == "finished"
    wait_until(lambda: all(runs[i].snapshot.step > s for i, s in zip(first, held)), 60, 0.02, "the paused runs resumed")
    for i in first:
        ray_store.stop(i, wait=60)
    assert {ray_store.get(i).snapshot.status for i in first} == {"stopped"}


def test_a_killed_worker_fails_its_run_and_keeps_the_last_epoch(ray_store, data_dir):
    """SIGKILL to the actor's process during epoch 2: the run ends failed, "worker lost", with epoch 1's weights and
    numbers (saved by the server when epoch 1 ended), read back without a problem; the next run trains on a new
    worker. Catches a run left "running" for ever, a lost epoch, and a slot that dies with its worker."""
    run_id = ray_store.start(replace(SMALL, epochs=3, max_batches=400), allow_duplicate=True).id
    run = ray_store.trainer(run_id)
    wait_until(lambda: run.snapshot.epoch == 1 and run.snapshot.epoch_step >= 10, 180, 0.02, "epoch 2 under way")
    pid = run.handle.pid
    os.kill(pid, signal.SIGKILL)
    run.join(120)
    snap = ray_store.get(run_id).snapshot
    assert snap.status == "failed" and snap.error.startswith("worker lost: its worker process died")
    assert "epoch 1, the last completed one" in snap.error and snap.epoch == 1
    again = RunStore(ray_store.root, data_dir).get(run_id)
    assert again.snapshot.status == "failed" and len(again.snapshot.history) == 1 and again.problems == ()
    assert ray_store.load_model(run_id) is not None  # epoch 1's weights
    after = run_to_end(ray_store, SMALL)
    assert ray_store.get(after).snapshot.status == "finished" and ray_store.trainer(after).handle.pid != pid


def test_an_actor_nobody_polls_stops_its_run_and_exits(executor):
    """The server is gone (nobody polls): the actor stops its run and ends its process within the heartbeat, so it
    holds no CPU of the cluster. Catches an orphaned actor training on for ever."""
    import ray

    actor = executor._remote.options(num_cpus=0).remote(2.0)  # a heartbeat of 2 s
    pid, _ = ray.get(actor.begin.remote(1, replace(SMALL, epochs=50, max_batches=None), executor._dataset_ref("mnist"),
                                     None), timeout=120)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.5)
    assert not _alive(pid), "the actor's process outlived its heartbeat by a minute"
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(actor.poll.remote(0), timeout=60)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has ended


def test_without_run_executor_nothing_of_ray_loads(tmp_path, data_dir):
    """The default executor trains in this process and never imports Ray (a dashboard without RUN_EXECUTOR neither
    starts nor needs it)."""
    code = ("import sys; from core.store.runs import RunStore; from core.engine.config import TrainConfig\n"
            f"s = RunStore({str(tmp_path)!r}, {data_dir!r}); r = s.start(TrainConfig(epochs=1, max_batches=3))\n"
            "s.trainer(r.id).join(120); print(s.executor.name, s.get(r.id).snapshot.status, 'ray' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "RUN_EXECUTOR"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["inprocess", "finished", "False"]


EXITING = """
import os, sys, time
from core.engine.config import TrainConfig
from core.store.runs import RunStore
store = RunStore(sys.argv[1], sys.argv[2])
run = store.start(TrainConfig(epochs=2, max_batches=None))
while store.get(run.id).snapshot.step < 10:
    time.sleep(0.05)
print(store.executor.name, store.executor._temp, store.trainer(run.id).handle.pid, flush=True)
"""


def test_a_server_that_exits_records_its_ray_runs_as_stopped_and_takes_ray_with_it(tmp_path, data_dir):
    """RUN_EXECUTOR=ray, the program ends while a run trains: at exit the store stops the run through Ray (recorded
    as stopped, interrupted by the shutdown) before Ray shuts down, the exit is clean, and the local Ray's worker
    and folder are gone. Catches Ray's own exit hook shutting Ray down first (the run would end as "worker lost"),
    and a local Ray that outlives its server."""
    env = {**os.environ, "RUN_EXECUTOR": "ray", "PRECISION_AUTO": "fp32"}
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run([sys.executable, "-c", EXITING, str(tmp_path), data_dir], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-2000:]
    name, temp, pid = out.stdout.split()[-3:]
    assert name == "ray"
    (run_dir,) = [d for d in tmp_path.iterdir() if d.is_dir()]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "stopped" and status["error"].startswith("interrupted: the program was shut down")
    wait_until(lambda: not _alive(int(pid)) and not Path(temp).exists(), 30, 0.2, "the worker and Ray's folder gone")
