"""How long each page takes to load in Chromium: from navigation to the page's last element rendered.

    make bench-pages                                    # every page, warm and cold, 0 and 50 runs on disk
    .venv/bin/python benchmarks/bench_pages.py --reps 5 --cold-reps 3 --pages train,runs --runs 50

Measured inside the page, so that the harness adds nothing: a mutation observer (installed before the page's own
scripts) notes the time of every change to the page's main area, counted from the navigation's start
(performance.now()). The page has loaded when its title is shown, Streamlit's script is not running and the
main area has not changed for QUIET_S; its load time is the time of the last change before that. The sidebar is not watched (its
one-second store poll, ui/live.py, changes nothing a learner waits for); plotly charts are drawn by the time
they count (their drawing is a change).

- warm: the page opened by URL in a tab (a new session: a reload, a new tab, a bookmark) on a server that has served
  every page before (imports done, caches filled), with the browser's cache of the app's scripts warm; every page
  once per round, the order rotating between rounds.
- click: the same, reached from another page by its link in the menu at the top (the session and the page's
  scripts stay; timed from the click).
- cold: the page opened by URL as the first request of a freshly started server (every import, the run store's
  first read of the runs folder, every cache empty) in a fresh browser profile. One server per sample.
- 0 runs: an empty runs folder. 50 runs: benchmarks/page_runs.py (built once, then cached under
  benchmarks/results/), copied to a temporary folder for each server.

Figures depend on the machine and its load: the script prints `uptime` before and after, and the CPU.
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
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGES = ("home", "train", "runs", "batchnorm", "tuning", "softmax", "frameworks", "draw")  # app.py's URL paths
TARGET_S = 1.0  # warm, median
QUIET_S = 1.5  # no change in the main area for this long, with the script not running: loaded
TIMEOUT_S = 180.0

WATCH_JS = """
window.__load = {last: 0, changes: 0};
new MutationObserver(records => {
  for (const m of records) {
    const e = m.target.nodeType === 1 ? m.target : m.target.parentElement;
    if (e && e.closest && e.closest('[data-testid="stMain"]')) {
      window.__load.last = performance.now(); window.__load.changes++; return;
    }
  }
}).observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
"""
STATE_JS = """() => { const app = document.querySelector('[data-testid="stApp"]');
  return {now: performance.now(), last: window.__load.last, changes: window.__load.changes,
          script: app ? app.getAttribute('data-test-script-state') : null,
          title: !!document.querySelector('[data-testid="stMain"] h1'),
          error: document.querySelectorAll('[data-testid="stException"]').length}; }"""


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def cpu_name() -> str:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip() + f" ({os.cpu_count()} cores)"
    return "unknown CPU"


@contextmanager
def server(runs_dir: Path, data_dir: str, app_dir: Path = ROOT):
    """A dashboard (the checkout in `app_dir`) on a free port over `runs_dir`; its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, RUNS_DIR=str(runs_dir), DATA_DIR=data_dir, DRAWINGS_DIR=tempfile.mkdtemp())
    # As the test suite does: "auto" arithmetic without measuring it (a one-off timing that would land in the
    # first page view timed)
    env.setdefault("PRECISION_AUTO", "fp32")
    log = open(Path(tempfile.mkdtemp()) / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true",
                             "--browser.gatherUsageStats", "false"], cwd=app_dir, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"the server did not start: {Path(log.name).read_text()}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def load_seconds(tab, url: str) -> float:
    """Open `url` in `tab` and wait until the page has loaded; its load time in seconds (see the module's doc)."""
    tab.goto(url, wait_until="commit")
    deadline = time.time() + TIMEOUT_S
    while time.time() < deadline:
        s = tab.evaluate(STATE_JS)
        if s["error"]:
            text = tab.get_by_test_id("stException").first.inner_text()[:600]
            raise RuntimeError(f"{url} shows an exception: {text}")
        if s["script"] == "notRunning" and s["title"] and s["now"] - s["last"] >= QUIET_S * 1000:
            return s["last"] / 1000
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not settle within {TIMEOUT_S:.0f} s")


def path(page: str) -> str:
    return "/" if page == "home" else f"/{page}"


CLICK_JS = """(path) => { const a = [...document.querySelectorAll('[data-testid="stTopNav"] a')]
  .find(a => (new URL(a.href).pathname.replace(/\\/$/, '') || '/') === path);
  if (!a) return null;
  window.__load.last = 0; window.__load.t0 = performance.now(); a.click(); return window.__load.t0; }"""


def click_seconds(tab, page: str) -> float:
    """Click `page`'s link in the menu and wait until it has loaded; seconds from the click to its last change."""
    t0 = tab.evaluate(CLICK_JS, path(page))
    if t0 is None:
        raise RuntimeError(f"no link to {path(page)} in the menu")
    deadline = time.time() + TIMEOUT_S
    while time.time() < deadline:
        s = tab.evaluate(STATE_JS)
        if s["error"]:
            raise RuntimeError(f"{page} shows an exception")
        here = tab.evaluate("() => location.pathname").rstrip("/") or "/"
        if (here == path(page) and s["script"] == "notRunning" and s["title"] and s["last"] > t0
                and s["now"] - s["last"] >= QUIET_S * 1000):
            return (s["last"] - t0) / 1000
        time.sleep(0.1)
    raise TimeoutError(f"{page} did not settle within {TIMEOUT_S:.0f} s after its link was clicked")


def runs_copy(state: int, fixture: Path | None) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="bench-pages-runs-"))
    if state:
        shutil.rmtree(folder)
        shutil.copytree(fixture, folder)  # copy2: file times kept (each drawings.json refers to its weights' times)
    return folder


def measure_warm(pw, pages, state, fixture, data_dir, reps, click: bool = False) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {p: [] for p in pages}
    runs = runs_copy(state, fixture)
    try:
        with server(runs, data_dir) as url, tempfile.TemporaryDirectory() as profile:
            ctx = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True, args=FLAGS,
                                                        viewport={"width": 1400, "height": 900})
            ctx.add_init_script(WATCH_JS)
            tab = ctx.new_page()
            for p in PAGES:  # every page once: imports, caches, the browser's cache of the app's scripts
                load_seconds(tab, f"{url}/{'' if p == 'home' else p}")
            for r in range(reps):
                order = pages[r % len(pages):] + pages[:r % len(pages)]
                for p in order:
                    if click:  # from the page before it in the order
                        if (tab.evaluate("() => location.pathname").rstrip("/") or "/") == path(p):
                            load_seconds(tab, f"{url}{path('train' if p == 'home' else 'home')}")
                        out[p].append(click_seconds(tab, p))
                    else:
                        out[p].append(load_seconds(tab, f"{url}/{'' if p == 'home' else p}"))
            ctx.close()
    finally:
        shutil.rmtree(runs, ignore_errors=True)
    return out


def measure_pair(pw, pages, state, fixture, data_dir, reps, other: Path) -> tuple[dict, dict]:
    """Warm page loads by URL of this checkout and of `other` (e.g. the commit before a change) side by side: both
    servers up at once, every page of one then of the other, which one goes first alternating by round."""
    out = ({p: [] for p in pages}, {p: [] for p in pages})
    runs = (runs_copy(state, fixture), runs_copy(state, fixture))
    try:
        with server(runs[0], data_dir) as a, server(runs[1], data_dir, other) as b, \
                tempfile.TemporaryDirectory() as profile:
            ctx = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True, args=FLAGS,
                                                        viewport={"width": 1400, "height": 900})
            ctx.add_init_script(WATCH_JS)
            tab = ctx.new_page()
            for url in (a, b):
                for p in PAGES:
                    load_seconds(tab, f"{url}{path(p)}")
            for r in range(reps):
                order = pages[r % len(pages):] + pages[:r % len(pages)]
                for p in order:
                    for i in ((0, 1) if r % 2 == 0 else (1, 0)):
                        out[i][p].append(load_seconds(tab, f"{(a, b)[i]}{path(p)}"))
            ctx.close()
    finally:
        for folder in runs:
            shutil.rmtree(folder, ignore_errors=True)
    return out


def measure_cold(pw, pages, state, fixture, data_dir, reps) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {p: [] for p in pages}
    for _ in range(reps):
        for p in pages:
            runs = runs_copy(state, fixture)
            try:
                with server(runs, data_dir) as url, tempfile.TemporaryDirectory() as profile:
                    ctx = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                                args=FLAGS, viewport={"width": 1400, "height": 900})
                    ctx.add_init_script(WATCH_JS)
                    out[p].append(load_seconds(ctx.new_page(), f"{url}/{'' if p == 'home' else p}"))
                    ctx.close()
            finally:
                shutil.rmtree(runs, ignore_errors=True)
    return out


def p95(xs: list[float]) -> float:
    """The 95th percentile, linear between order statistics (with few samples: near the largest)."""
    xs = sorted(xs)
    k = 0.95 * (len(xs) - 1)
    lo = int(k)
    return xs[lo] + (xs[min(lo + 1, len(xs) - 1)] - xs[lo]) * (k - lo)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", default=",".join(PAGES))
    ap.add_argument("--runs", default="0,50", help="runs on disk: 0, 50 or both")
    ap.add_argument("--modes", default="warm,click,cold")
    ap.add_argument("--reps", type=int, default=7, help="warm samples per page")
    ap.add_argument("--cold-reps", type=int, default=3, help="cold samples per page (one server start each)")
    ap.add_argument("--data-dir", default=os.environ.get("DATA_DIR") or str(ROOT / "data"))
    ap.add_argument("--json", type=Path, help="also write the samples here")
    ap.add_argument("--compare", type=Path, metavar="DIR",
                    help="instead of the modes: warm loads of this checkout and of the one in DIR, interleaved "
                         "(e.g. `git worktree add /tmp/before HEAD~3`)")
    args = ap.parse_args()
    pages = [p for p in args.pages.split(",") if p]
    states = [int(s) for s in args.runs.split(",")]
    fixture = None
    if 50 in states:
        from benchmarks.page_runs import ensure
        fixture = ensure(data_dir=args.data_dir)
    from playwright.sync_api import sync_playwright

    print(f"{cpu_name()}\nbefore: {uptime()}", flush=True)
    results = {}
    with sync_playwright() as pw:
        for state in states:
            if args.compare:
                results[("warm", state)], results[(f"warm {args.compare.name}", state)] = measure_pair(
                    pw, pages, state, fixture, args.data_dir, args.reps, args.compare)
                print(f"warm pair, {state} runs; {uptime()}", flush=True)
                continue
            for mode in args.modes.split(","):
                t0 = time.time()
                if mode == "cold":
                    results[(mode, state)] = measure_cold(pw, pages, state, fixture, args.data_dir, args.cold_reps)
                else:
                    results[(mode, state)] = measure_warm(pw, pages, state, fixture, args.data_dir, args.reps,
                                                          click=mode == "click")
                print(f"{mode}, {state} runs: {time.time() - t0:.0f} s; {uptime()}", flush=True)
    print(f"after: {uptime()}\n")
    print("| page | " + " | ".join(f"{m} · {s} runs" for m, s in results) + " |")
    print("|---|" + "---|" * len(results))
    for p in pages:
        cells = [f"{statistics.median(v[p]):.2f} / {p95(v[p]):.2f}" for v in results.values()]
        print(f"| {p} | " + " | ".join(cells) + " |")
    print("\nmedian / p95 in seconds, from navigation to the last element rendered; "
          f"warm {args.reps}, cold {args.cold_reps} samples per cell")
    slow = [(p, m, s) for (m, s), v in results.items() if m in ("warm", "click") for p in pages
            if statistics.median(v[p]) > TARGET_S]
    print(f"warm or click median over {TARGET_S:.0f} s: "
          + (", ".join(f"{p} ({m}, {s} runs)" for p, m, s in slow) or "none"))
    if args.json:
        args.json.write_text(json.dumps({f"{m}-{s}": v for (m, s), v in results.items()}, indent=1))


if __name__ == "__main__":
    main()
