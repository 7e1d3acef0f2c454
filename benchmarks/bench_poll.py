"""What the per-tab store poll (ui/live.py) costs: the dashboard with it and without it, side by side.

    .venv/bin/python benchmarks/bench_poll.py            # 3 rounds, each case once per round, order alternating
    .venv/bin/python benchmarks/bench_poll.py --quick    # 1 round, shorter idle window and run

Each case is a fresh Streamlit server (the "off" case runs a copy of the tracked files whose app.py skips
watch_runs()) with three Chromium tabs: two on Home, one on Train. Measured: the server's CPU time while the three
tabs sit idle, and a run started with the Train page's widgets (its epoch seconds from its metrics file) while
the tabs stay open. The Train tab's own 1 s chart fragment runs in both cases.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"


def tree_without_poll(into: Path) -> Path:
    """The tracked files, with app.py's watch_runs() call removed."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        (into / f).parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / f).is_file():
            shutil.copy2(ROOT / f, into / f)
    app = into / "app.py"
    text = app.read_text()
    assert "\nwatch_runs()" in text, "app.py no longer calls watch_runs(): update this benchmark"
    app.write_text(text.replace("\nwatch_runs()", "\npass  # watch_runs()"))
    return into


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_case(tree: Path, playwright, data_dir: str, idle_s: float, epochs: int, batches: int) -> tuple[float, float]:
    """(server CPU share of one core with 3 idle tabs, seconds of the run's epochs with the tabs open)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    runs = Path(tempfile.mkdtemp())
    env = dict(os.environ, RUNS_DIR=str(runs), DATA_DIR=data_dir, DRAWINGS_DIR=tempfile.mkdtemp())
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true",
                             "--browser.gatherUsageStats", "false"], cwd=tree, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.3)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        tabs = [browser.new_page(viewport={"width": 1400, "height": 900}) for _ in range(3)]
        for tab, path in zip(tabs, ("", "", "/train")):
            tab.goto(url + path)
            tab.locator("h1").first.wait_for(timeout=60_000)
        time.sleep(3)
        c0 = cpu_seconds(proc.pid)
        time.sleep(idle_s)
        idle = (cpu_seconds(proc.pid) - c0) / idle_s
        train = tabs[2]
        for label, value in (("Epochs", str(epochs)), ("Batches per epoch (0 = all)", str(batches))):
            box = train.get_by_label(label, exact=True)
            box.fill(value)
            box.press("Enter")
        time.sleep(1)
        train.get_by_role("button", name="Start").click()
        deadline = time.time() + 600
        status = None
        while time.time() < deadline and status not in ("finished", "failed", "diverged"):
            time.sleep(0.5)
            dirs = [d for d in runs.iterdir() if d.is_dir()]
            if dirs and (dirs[0] / "status.json").exists():
                status = json.loads((dirs[0] / "status.json").read_text())["status"]
        lines = (dirs[0] / "metrics.jsonl").read_text().splitlines()
        browser.close()
        return idle, sum(json.loads(x)["seconds"] for x in lines if '"epoch"' in x)
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data-dir", default=os.environ.get("DATA_DIR") or str(ROOT / "data"))
    args = ap.parse_args()
    rounds, idle_s, epochs, batches = (1, 8.0, 2, 200) if args.quick else (args.rounds, 15.0, 3, 400)
    from playwright.sync_api import sync_playwright

    results: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        trees = {"on": ROOT, "off": tree_without_poll(Path(tmp))}
        for r in range(rounds):
            for case in ("on", "off") if r % 2 == 0 else ("off", "on"):
                idle, secs = one_case(trees[case], pw, args.data_dir, idle_s, epochs, batches)
                results[case].append((idle, secs))
                print(f"round {r + 1} poll {case:3}: server CPU, 3 idle tabs: {idle:6.1%} of a core; "
                      f"{epochs} epochs x {batches} batches with the tabs open: {secs:6.2f} s", flush=True)
    for case, rows in results.items():
        print(f"poll {case:3}: idle CPU median {statistics.median(i for i, _ in rows):.1%} of a core, "
              f"run median {statistics.median(s for _, s in rows):.2f} s")
    print("run time on/off per round:", ", ".join(f"{a[1] / b[1]:.2f}x" for a, b in zip(results["on"], results["off"])))


if __name__ == "__main__":
    main()
