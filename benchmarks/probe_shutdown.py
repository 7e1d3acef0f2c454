"""SIGTERM to a dashboard server while a page is still at work in its script thread: does the process exit 0, or
die by SIGABRT ("terminate called without an active exception")?

Each round starts `streamlit run app.py` of TREE (default: this checkout) over a runs folder holding N finished
runs that have not been measured on the drawing-like set, opens the Runs page in Chromium, waits until the page
measures them (its script thread runs torch for seconds), closes the browser, sends SIGTERM, and records how the
process ended. At exit (atexit, before the interpreter finalizes) a sitecustomize module put on the server's
PYTHONPATH prints, for every other thread, the innermost frame of this project's code on its stack: the thread
that is still inside torch when Python finalizes is among them.

    .venv/bin/python benchmarks/probe_shutdown.py --rounds 3 [--tree /path/to/other/checkout] [--runs 40]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]


def finished_runs(runs: Path, data_dir: str, n: int) -> None:
    """One tiny finished run, copied to n run folders (new ids): n models the Runs page measures on drawings."""
    from core.engine.config import TrainConfig
    from core.store.runs import RunStore

    store = RunStore(runs, data_dir)
    run = store.start(TrainConfig(epochs=1, max_batches=20), name="template")
    store.trainer(run.id).join(300)
    for i in range(n - 1):
        new = time.strftime("%Y%m%d-%H%M%S-", time.localtime(time.time() - 60 - i)) + uuid.uuid4().hex[:6]
        shutil.copytree(runs / run.id, runs / new)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        return urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok"
    except OSError:
        return False


DUMP = """
import atexit, sys, threading, traceback

def _dump():
    frames = sys._current_frames()
    for t in threading.enumerate():
        f = frames.get(t.ident) if t is not threading.current_thread() else None
        ours = [s for s in traceback.extract_stack(f) if "/site-packages/" not in s.filename and
                any(p in s.filename for p in ("/core/", "/ui/", "/pages/"))] if f is not None else []
        if ours:
            s = ours[-1]
            print(f"at exit, busy: {t.name} (daemon={t.daemon}) in {s.filename.rsplit('/', 2)[-2]}/"
                  f"{s.filename.rsplit('/', 1)[-1]}:{s.lineno} {s.name}", file=sys.stderr, flush=True)

atexit.register(_dump)  # registered first: runs after the app's own handlers
"""


def one_round(tree: Path, runs: Path, data_dir: str, work: Path, k: int) -> dict:
    from playwright.sync_api import sync_playwright

    for d in runs.iterdir():  # not measured yet: each round's page measures them all again
        (d / "drawings.json").unlink(missing_ok=True)
    port, log = free_port(), work / f"server-{k}.log"
    (work / "diag").mkdir(exist_ok=True)
    (work / "diag" / "sitecustomize.py").write_text(DUMP)
    env = dict(os.environ, RUNS_DIR=str(runs), DATA_DIR=data_dir, DRAWINGS_DIR=str(work / "drawings"),
               PYTHONPATH=str(work / "diag"))
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                                 "--server.address", "127.0.0.1", "--server.headless", "true",
                                 "--browser.gatherUsageStats", "false"], cwd=tree, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    url, t0 = f"http://127.0.0.1:{port}", time.monotonic()
    try:
        while not healthy(url):
            if time.monotonic() - t0 > 90 or proc.poll() is not None:
                raise RuntimeError(f"the server did not answer: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{url}/runs")
            page.get_by_text(re.compile(r"Measuring \d+ model")).wait_for(timeout=300_000)
            time.sleep(1.0)  # well inside the measuring
            browser.close()
        proc.send_signal(signal.SIGTERM)
        t_term = time.monotonic()
        rc = proc.wait(180)
        exit_s = time.monotonic() - t_term
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    return {"rc": rc, "exit_s": exit_s, "terminate": "terminate called" in text,
            "busy": re.findall(r"at exit, busy: (.*)", text)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tree", type=Path, default=ROOT, help="the checkout whose app.py is served")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--runs", type=int, default=40, help="finished runs on disk")
    p.add_argument("--data-dir", default=os.environ.get("DATA_DIR", str(ROOT / "data")))
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="probe-shutdown-"))
    runs = work / "runs"
    finished_runs(runs, args.data_dir, args.runs)
    results = [one_round(args.tree, runs, args.data_dir, work, k) for k in range(args.rounds)]
    for k, r in enumerate(results):
        print(f"round {k}: exit {r['rc']}{' (terminate called)' if r['terminate'] else ''} {r['exit_s']:.1f} s after "
              f"SIGTERM; threads in our code after "
              f"the app's exit handlers: {'; '.join(r['busy']) or 'none'}")
    aborted = sum(r["rc"] != 0 for r in results)
    print(f"{args.tree}: {aborted} of {len(results)} rounds did not exit 0; logs in {work}")


if __name__ == "__main__":
    main()
