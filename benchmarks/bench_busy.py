"""Training speed on a busy machine: the same epoch idle, next to competing CPU-bound processes, and
while headless Chromium shows the live Train page; for the course pipeline and for the project trainer
under each CPU threading policy (core/engine/cpu.py).

    .venv/bin/python benchmarks/bench_busy.py            # 3 repetitions of everything
    .venv/bin/python benchmarks/bench_busy.py --quick    # 2 repetitions of 150 batches, one browser run a policy
    .venv/bin/python benchmarks/bench_busy.py --policies auto,2,2:passive --no-course --no-browser   # policies only

Each measurement is a fresh process training one BN epoch capped at --batches batches, plus the test
evaluation. The collapse this guards against is erratic, so every row reports the worst repetition as well
as the median, and the slowdown against the idle case measured in the same invocation.

The browser case is the dashboard itself: a Streamlit server (with the policy in CPU_THREADS) and headless
Chromium showing its Train page, where the run is started with the page's own widgets and the page polls it
once a second; the epoch time is read from the run's metrics file.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BN, TRAINER_CASE, COURSE = True, "trainer", True
BENCH_TRAIN = ROOT / "benchmarks" / "bench_train.py"


POLICIES: list[str] = []  # set by --policies


def policies() -> list[str]:
    if POLICIES:
        return POLICIES
    n = os.cpu_count() or 1
    out = ["auto", "torch", "1", f"{n}:passive"]
    return out + ([str(n - 1)] if n > 2 else [])


def measure(case: str, policy: str | None, batches: int, data_dir: str) -> float:
    """Seconds of one epoch (training + test evaluation) in a fresh process."""
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None), env.pop("OMP_WAIT_POLICY", None)
    if policy:
        env["CPU_THREADS"] = policy
    cmd = [sys.executable, str(BENCH_TRAIN), "--case", case, "--bn" if BN else "--no-bn", "--epochs", "1", "--max-batches", str(batches),
           "--data-dir", data_dir]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    if out.returncode:
        raise RuntimeError(f"{case} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])["times"][0]


@contextmanager
def hogs(n: int):
    """n CPU-bound processes, like `python -c "while True: pass"`, for the duration of the block."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.5)
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def cases() -> list[tuple[str, str, str | None]]:
    """(label, bench_train case, CPU_THREADS policy)"""
    out = [("course pipeline (torch defaults)", "original", None)] if COURSE else []
    return out + [(f"project trainer, CPU_THREADS={p}", TRAINER_CASE, p) for p in policies()]


def run_condition(name: str, repeats: int, batches: int, data_dir: str, results: dict) -> None:
    for rep in range(repeats):
        order = cases() if rep % 2 == 0 else cases()[::-1]
        for label, case, policy in order:
            results.setdefault((name, label), []).append(measure(case, policy, batches, data_dir))
        print(f"  {name}: repetition {rep + 1}/{repeats} done", file=sys.stderr)


def browser_epoch(policy: str | None, batches: int, data_dir: str) -> float:
    """One epoch trained by the dashboard's server while Chromium shows the live Train page."""
    import socket
    import tempfile
    import urllib.request

    from playwright.sync_api import sync_playwright

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
        env.update(RUNS_DIR=f"{tmp}/runs", DATA_DIR=data_dir, DRAWINGS_DIR=f"{tmp}/drawings")
        if policy:
            env["CPU_THREADS"] = policy
        server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                                   "--server.address", "127.0.0.1", "--server.headless", "true",
                                   "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                        break
                except OSError:
                    time.sleep(0.2)
            with sync_playwright() as p:
                ctx = p.chromium.launch_persistent_context(
                    f"{tmp}/chrome", executable_path="/usr/bin/chromium", headless=True,
                    args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync"],
                    viewport={"width": 1400, "height": 900})
                page = ctx.new_page()
                page.goto(f"{url}/train")
                for label, value in (("Epochs", "1"), ("Batches per epoch (0 = all)", str(batches))):
                    box = page.get_by_label(label, exact=True)
                    box.fill(value)
                    box.press("Enter")
                    page.wait_for_timeout(500)
                page.get_by_text("BatchNorm", exact=True).click()
                page.wait_for_timeout(500)
                page.get_by_role("button", name="Start").click()
                metrics = None
                for _ in range(6000):  # the page polls the run meanwhile
                    found = list(Path(tmp, "runs").glob("*/metrics.jsonl"))
                    lines = [json.loads(x) for x in found[0].read_text().splitlines() if '"epoch"' in x] if found else []
                    if lines:
                        metrics = lines[0]
                        config = json.loads(found[0].with_name("config.json").read_text())["config"]
                        assert (config["batch_norm"], config["epochs"], config["max_batches"]) == (True, 1, batches), config
                        break
                    time.sleep(0.1)
                ctx.close()
        finally:
            server.terminate()
            server.wait(30)
    if metrics is None:
        raise RuntimeError("the dashboard's run did not finish its epoch")
    return metrics["seconds"]


def run_browser(repeats: int, batches: int, data_dir: str, results: dict) -> None:
    for rep in range(repeats):
        for label, case, policy in cases():
            if case != "original":  # the course pipeline is not what the dashboard runs
                results.setdefault(("browser", label), []).append(browser_epoch(policy, batches, data_dir))
        print(f"  browser: repetition {rep + 1}/{repeats} done", file=sys.stderr)


def report(results: dict, conditions: list[str]) -> None:
    print(f"\n{'case':<46}" + "".join(f"{c:>26}" for c in conditions))
    for label, _, _ in cases():
        idle = statistics.median(results[("idle", label)])
        row = f"{label:<46}"
        for c in conditions:
            xs = results.get((c, label))
            if not xs:
                row += f"{'-':>26}"
                continue
            cell = f"{statistics.median(xs):.2f}s worst {max(xs):.2f}s"
            if c != "idle":
                cell += f" {max(xs) / idle:.1f}x"
            row += f"{cell:>26}"
        print(row)
    print("\n(median and worst repetition, seconds per epoch; Nx = worst repetition / median idle epoch of the same row)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 repetitions of 150 batches, no browser case")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--batches", type=int, default=None, help="training batches per measured epoch (default 300)")
    p.add_argument("--hogs", default="1,2", help="numbers of competing processes to measure under")
    p.add_argument("--data-dir", default=os.environ.get("DATA_DIR", str(ROOT / "data")))
    p.add_argument("--policies", default="", help="CPU_THREADS values to compare, comma separated")
    p.add_argument("--case", default="trainer", help="bench_train.py case for the project trainer")
    p.add_argument("--no-bn", action="store_true")
    p.add_argument("--no-browser", action="store_true", help="skip the Chromium + Train page case")
    p.add_argument("--no-course", action="store_true", help="skip the course pipeline (minutes an epoch when busy)")
    a = p.parse_args()
    global BN, TRAINER_CASE, COURSE
    BN, TRAINER_CASE, COURSE = not a.no_bn, a.case, not a.no_course
    POLICIES.extend(x for x in a.policies.split(",") if x)
    repeats, batches = a.repeats or (2 if a.quick else 3), a.batches or (150 if a.quick else 300)
    from core.engine.precision import cpu_model

    print(f"CPU: {cpu_model()}; {os.cpu_count()} CPUs; load average before: {os.getloadavg()[0]:.2f}; {batches} {'BN' if BN else 'no-BN'} batches + test "
          f"evaluation per epoch; {repeats} repetitions")
    results: dict = {}
    conditions = ["idle"]
    run_condition("idle", repeats, batches, a.data_dir, results)
    for n in [int(x) for x in a.hogs.split(",") if x]:
        name = f"{n} busy process{'es' if n > 1 else ''}"
        conditions.append(name)
        with hogs(n):
            run_condition(name, repeats, batches, a.data_dir, results)
    if not a.no_browser and Path("/usr/bin/chromium").exists():
        conditions.append("browser")
        run_browser(1 if a.quick else repeats, batches, a.data_dir, results)
    report(results, conditions)


if __name__ == "__main__":
    main()
