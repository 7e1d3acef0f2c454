"""`make bench-cluster`: the Ray executor on a two-node Ray cluster started on this machine, against the in-process
executor, in one invocation.

A head node and a second node (ray.cluster_utils.Cluster: two raylets, one CPU each, bound to 127.0.0.1, in a
temporary folder of their own) are started here and stopped at the end, every process by its pid. Then:

1. the server killed (SIGKILL) while two runs train on the cluster: how long until its actors' processes are gone,
   and what a restarted store lists;
2. the first Start after the Ray executor is made (its workers still loading torch);
3. per-epoch seconds: 8 runs of 3 epochs (the course network, seeds 0-7) through a run store on each executor, two at
   a time (the cluster's two CPUs; the in-process default on this 2-core machine), rounds alternating which goes
   first; the server's CPU time per run it follows, a worker's memory;
4. Start to the first curve point: from `store.start` to the first loss point in the run's snapshot (what the Train
   page draws), one run at a time, alternating;
5. a worker process killed (SIGKILL) during a run's second epoch, and 6. the second node killed (its raylet and its
   workers) during a run's second epoch: the run's status and message, the epochs and weights it keeps, how long
   the server took to say so, and the other run.

    .venv/bin/python benchmarks/bench_cluster.py [--quick] [--rounds N]
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)  # Ray's workers find the project where the driver runs (its working folder)

from core.engine.config import TrainConfig  # noqa: E402
from core.engine.data import resolve_data_dir  # noqa: E402

MB = 1 << 20


REPORT = sys.stdout  # the report; Ray's own messages (a node it lost, ...) go to standard error


def say(*args, **kwargs) -> None:
    print(*args, **kwargs, file=REPORT, flush=True)


def load() -> str:
    with open("/proc/uptime") as f:
        up = float(f.read().split()[0])
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} (up {up / 3600:.1f} h)"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def wait(cond, timeout: float, what: str, every: float = 0.05) -> float:
    """Seconds until `cond()` holds; RuntimeError after `timeout`."""
    t0 = time.perf_counter()
    while not cond():
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)
    return time.perf_counter() - t0


class TwoNodes:
    """A head and a second node on this machine, each with one CPU, bound to 127.0.0.1, in `folder`."""

    def __init__(self, folder: Path) -> None:
        from core.engine import ray_executor

        os.environ["RAY_TMPDIR"] = str(folder)  # Ray's files (and its 'current cluster' note) stay in here
        ray_executor._import_ray(local=True)  # loopback only, a token of this process, no usage reports
        from ray.cluster_utils import Cluster

        args = dict(num_cpus=1, object_store_memory=300 * MB)
        self.cluster = Cluster(initialize_head=True, connect=False, head_node_args={**args, "include_dashboard": False})
        self.worker = self.cluster.add_node(**args)
        self.address = self.cluster.address
        self.pids = self._pids()

    def _pids(self) -> set[int]:
        pids = set()
        for node in (self.cluster.head_node, self.worker):
            for infos in node.all_processes.values():
                pids |= {i.process.pid for i in infos}
        return pids

    def kill_worker_node(self) -> None:
        """SIGKILL every process of the second node (its raylet first: its workers then exit by themselves)."""
        procs = [i.process for infos in self.worker.all_processes.values() for i in infos]
        for p in sorted(procs, key=lambda p: "raylet" not in " ".join(map(str, p.args))):
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)

    def close(self) -> list[int]:
        """Stop both nodes; SIGKILL any process of theirs still there after 20 s (by pid); those it had to kill."""
        try:
            self.cluster.shutdown()
        except Exception as e:  # noqa: BLE001 - the second node may be gone already
            say(f"(cluster shutdown: {type(e).__name__}: {e})")
        deadline, left = time.monotonic() + 20, []
        for pid in self.pids:
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
                left.append(pid)
        return left


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


# --- 1 and 2: speed ---------------------------------------------------------------------------------------
def batch(store, configs: list[TrainConfig]) -> dict:
    """Start every config at once (the scheduler runs two at a time) and wait for all; epoch seconds and wall."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    ids = [store.start(c, allow_duplicate=True).id for c in configs]
    for i in ids:
        store.trainer(i).join(3600)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    infos = [store.get(i) for i in ids]
    bad = [(i.snapshot.status, i.snapshot.error) for i in infos if i.snapshot.status != "finished"]
    if bad:
        raise RuntimeError(f"runs did not finish: {bad}")
    handles = [store.trainer(i).handle for i in ids]
    return {"epochs": [h.seconds for i in infos for h in i.snapshot.history], "wall": wall, "nodes":
            [getattr(h, "node", None) for h in handles], "pids": {getattr(h, "pid", None) for h in handles},
            "acc": [i.snapshot.final.test_acc for i in infos], "cpu": cpu,
            "run_seconds": sum(i.snapshot.elapsed for i in infos)}


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def first_point(store, config: TrainConfig) -> float:
    """Seconds from Start to the first loss point in the run's snapshot; the run is then stopped."""
    t0 = time.perf_counter()
    run_id = store.start(config, allow_duplicate=True).id
    run = store.trainer(run_id)
    wait(lambda: run.snapshot.step_losses or not run.alive, 300, "the first loss point", 0.005)
    took = time.perf_counter() - t0
    store.stop(run_id, wait=60)
    return took


# --- 3 and 4: faults ------------------------------------------------------------------------------------
def fault(store, config: TrainConfig, kill, what: str) -> None:
    """Two runs (one per node); during the second epoch of the one `kill` picks, kill it; report both."""
    ids = [store.start(replace(config, seed=s), allow_duplicate=True).id for s in (0, 1)]
    runs = [store.trainer(i) for i in ids]
    wait(lambda: all(r.handle is not None and getattr(r.handle, "node", None) for r in runs), 300, "both runs placed")
    victim = kill.pick(runs)
    wait(lambda: victim.snapshot.epoch == 1 and victim.snapshot.epoch_step >= 20, 600, "epoch 2 under way")
    at = victim.snapshot
    t0 = time.perf_counter()
    kill.do(victim)
    took = wait(lambda: not victim.snapshot.live, 300, "the server to see the loss")
    for r in runs:
        r.join(900)
    info = store.get(victim.id)
    kept = store.load_model(victim.id) is not None
    other = store.get(next(i for i in ids if i != victim.id)).snapshot
    say(f"  {what}: killed at epoch 2, step {at.epoch_step} of {at.steps_per_epoch}; the server said so after "
        f"{took:.1f} s ({time.perf_counter() - t0:.1f} s with the other run's end)")
    say(f"    status {info.snapshot.status!r}: {info.snapshot.error}")
    say(f"    epochs kept {len(info.snapshot.history)} (test accuracy {info.snapshot.final.test_acc:.4f}), "
        f"weights load: {kept}, problems on disk: {list(info.problems) or 'none'}; "
        f"the other run: {other.status}, {other.epoch} epochs")


class KillWorker:
    def pick(self, runs):
        return runs[0]

    def do(self, run):
        os.kill(run.handle.pid, signal.SIGKILL)


class KillNode:
    def __init__(self, nodes: TwoNodes) -> None:
        self.nodes = nodes

    def pick(self, runs):
        node = self.nodes.worker.node_id
        return next(r for r in runs if r.handle.node == node)

    def do(self, run):
        self.nodes.kill_worker_node()


# --- 5: the server killed --------------------------------------------------------------------------------
SERVER = textwrap.dedent("""
    import sys, time
    from core.engine.config import TrainConfig
    from core.engine.ray_executor import RayExecutor
    from core.store.runs import RunStore
    store = RunStore(sys.argv[1], sys.argv[2], executor=RayExecutor(sys.argv[2]))
    config = TrainConfig(epochs=3, max_batches=int(sys.argv[3]))
    ids = [store.start(config, allow_duplicate=True).id, store.start(config, allow_duplicate=True).id]
    while not all(store.get(i).snapshot.epoch >= 1 and store.get(i).snapshot.epoch_step > 0 for i in ids):
        time.sleep(0.05)
    print("training", " ".join(str(store.trainer(i).handle.pid) for i in ids), flush=True)
    time.sleep(600)
""")


def server_killed(nodes: TwoNodes, data_dir: str, batches: int, folder: Path) -> None:
    from core.store.runs import RunStore

    runs_dir = folder / "server-runs"
    env = {**os.environ, "RAY_ADDRESS": nodes.address, "PRECISION_AUTO": "fp32"}
    err = open(folder / "server.err", "w")
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(runs_dir), data_dir, str(batches)], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        line = [""]
        while line and line[0] != "training":  # Ray's driver may print its own lines first
            line = server.stdout.readline().split() or ([] if server.poll() is not None else [""])
        if not line:
            tail = (folder / "server.err").read_text()[-3000:]
            raise RuntimeError(f"the server did not start its runs (exit status {server.poll()}):\n{tail}")
        pids = [int(p) for p in line[1:]]  # its actors: one waiting worker per CPU, both now training
        t0 = time.perf_counter()
        os.kill(server.pid, signal.SIGKILL)
        server.wait(30)
        wait(lambda: not any(map(_alive, pids)), 120, "the workers to end", 0.05)
        gone = time.perf_counter() - t0
    finally:
        if server.poll() is None:
            server.kill()
        err.close()
    say(f"  server SIGKILLed during epoch 2 of two runs: its actors' worker processes had ended {gone:.2f} s later")
    store = RunStore(runs_dir, data_dir)
    for info in store.list():
        say(f"    after a restart: {info.snapshot.status!r} ({info.snapshot.error}), {len(info.snapshot.history)} "
            f"epoch(s) kept, its weights load: {store.load_model(info.id) is not None}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="epochs of 200 batches, one round")
    p.add_argument("--rounds", type=int, default=None, help="rounds of the speed comparison (default 2)")
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--epochs", type=int, default=3)
    a = p.parse_args()
    sys.stdout = sys.stderr  # Ray's driver prints its cluster's errors to sys.stdout
    rounds = a.rounds or (1 if a.quick else 2)
    batches = 200 if a.quick else None
    data_dir = str(resolve_data_dir())
    os.environ.setdefault("PRECISION_AUTO", "fp32")  # what the comparison trains: the same arithmetic on both sides
    say(f"{cpu_model()}, {os.cpu_count()} CPUs; {load()}")
    folder = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    nodes = None
    try:
        t0 = time.perf_counter()
        nodes = TwoNodes(folder)
        import ray

        ray.init(address=nodes.address, log_to_driver=False)
        say(f"two nodes up in {time.perf_counter() - t0:.1f} s: {ray.cluster_resources().get('CPU'):g} CPUs, "
            f"{len(nodes.pids)} processes; {load()}")

        say("\n1. The server killed")
        server_killed(nodes, data_dir, batches or 938, folder)
        say(f"   {load()}")

        from core.engine.executor import InProcessExecutor
        from core.engine.ray_executor import RayExecutor
        from core.store.runs import RunStore

        t0 = time.perf_counter()
        executor = RayExecutor(data_dir)
        made = time.perf_counter() - t0
        stores = {"in-process": RunStore(folder / "local", data_dir, executor=InProcessExecutor(data_dir)),
                  "ray": RunStore(folder / "ray", data_dir, executor=executor)}
        config = TrainConfig(epochs=a.epochs, max_batches=batches)
        cold = first_point(stores["ray"], config)
        say(f"\n2. The Ray executor made (connected, one waiting worker per CPU asked for) in {made:.1f} s; its first "
            f"Start to the first curve point: {cold:.2f} s (the workers still loading torch); {load()}")

        say(f"\n3. Per-epoch seconds: {a.runs} runs x {a.epochs} epochs"
            f"{f' of {batches} batches' if batches else ''}, two at a time, {rounds} round(s)")
        results: dict[str, list[dict]] = {"in-process": [], "ray": []}
        for r in range(rounds):
            for name in (("in-process", "ray") if r % 2 == 0 else ("ray", "in-process")):
                res = batch(stores[name], [replace(config, seed=s) for s in range(a.runs)])
                results[name].append(res)
                say(f"  round {r + 1} {name:10}: epoch median {statistics.median(res['epochs']):.2f} s "
                    f"(min {min(res['epochs']):.2f}, max {max(res['epochs']):.2f}), wall {res['wall']:.1f} s"
                    + (f", runs per node {sorted(_count(res['nodes']).values())}" if name == "ray" else "")
                    + f"; {load()}")
        med = {n: statistics.median(e for res in rs for e in res["epochs"]) for n, rs in results.items()}
        walls = {n: statistics.median(res["wall"] for res in rs) for n, rs in results.items()}
        accs = {n: [x for res in rs for x in res["acc"]] for n, rs in results.items()}
        say(f"  median epoch: in-process {med['in-process']:.2f} s, ray {med['ray']:.2f} s: ray / in-process "
            f"{med['ray'] / med['in-process']:.3f} (target at most 1.10); wall of {a.runs} runs "
            f"{walls['in-process']:.1f} s vs {walls['ray']:.1f} s; same accuracies: {accs['ray'] == accs['in-process']}")
        follow = [r["cpu"] / r["run_seconds"] for r in results["ray"]]
        rss = [x for x in (rss_mb(pid) for r in results["ray"] for pid in r["pids"] if pid) if x]
        say(f"  the server's CPU time while following Ray runs: {statistics.median(follow):.2%} of a core per run "
            f"training; a worker process's resident memory after its runs: {min(rss, default=0):.0f}-"
            f"{max(rss, default=0):.0f} MB")

        say("\n4. Start to the first curve point (one run at a time, the executor already made)")
        points: dict[str, list[float]] = {"in-process": [], "ray": []}
        for r in range(5):
            for name in (("in-process", "ray") if r % 2 == 0 else ("ray", "in-process")):
                points[name].append(first_point(stores[name], config))
        for name, xs in points.items():
            say(f"  {name:10}: median {statistics.median(xs):.2f} s ({', '.join(f'{x:.2f}' for x in xs)})")
        say(f"  ray - in-process: {statistics.median(points['ray']) - statistics.median(points['in-process']):+.2f} s "
            f"(target at most +2 s); {load()}")

        fault_config = replace(config, epochs=3, max_batches=batches or 600)
        say(f"\n5. A worker process killed (SIGKILL), {fault_config.max_batches} batches an epoch")
        fault(stores["ray"], fault_config, KillWorker(), "worker")
        say(f"   {load()}")
        say("\n6. The second node killed (SIGKILL to its raylet and its workers)")
        fault(stores["ray"], fault_config, KillNode(nodes), "node")
        say(f"   the cluster now has {ray.cluster_resources().get('CPU', 0):g} CPU(s); {load()}")
        for s in stores.values():
            s.shutdown(60)
    finally:
        if nodes is not None:
            import ray

            if ray.is_initialized():
                ray.shutdown()
            left = nodes.close()
            say(f"\ncluster stopped{f'; SIGKILLed {len(left)} process(es) that outlived it' if left else ''}")
        shutil.rmtree(folder, ignore_errors=True)
    say(load())


def _count(xs):
    out: dict = {}
    for x in xs:
        out[x] = out.get(x, 0) + 1
    return out


if __name__ == "__main__":
    main()
