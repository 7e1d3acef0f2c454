"""A class on one server: learners join through the form in real Chromium tabs and start runs, while tabs of other
learners are clicked and timed; the run store's queue, memory and order are read back from the runs folder.

    make bench-class                                        # cases A, B, C at full size (15-20 min here, quiet)
    .venv/bin/python benchmarks/bench_class.py --quick      # a short smoke version of all three
    .venv/bin/python benchmarks/bench_class.py --cases A --learners 30 --tabs 5 --epochs 1 --max-batches 300

Every case is a fresh `streamlit run app.py` on a free 127.0.0.1 port in class mode (TEACHER_KEY), with a
temporary RUNS_DIR and DRAWINGS_DIR, and Debian's Chromium (a fresh profile) driven by Playwright:

A. each learner opens a lesson link to the Train page (/train?epochs=..&max_batches=..), chooses a display name in
   the join form, and presses Start: one course run each (default settings but the budget of --epochs and
   --max-batches). The first --tabs learners join in tabs of their own, which stay open on their Train pages; the
   others join in --join-tabs more tabs, one learner after another in each.
B. the same through the BatchNorm lab: each learner sets its Epochs, Seeds per arm and Batches per epoch and
   presses "Train twins" (BN and no-BN twins, one pair a seed, trained one after another).
C. the out-of-memory case: --oom-learners learners open /train?batch_size=60000&batch_norm=true&max_batches=2&epochs=1
   and press Start on a server with TRAIN_SLOTS=--oom-learners and MEMORY_TOTAL=--oom-memory.

Once every learner has pressed Start, the first --tabs learners' tabs (their Train pages) are clicked in turn, the
tab under test in front: the "Double softmax (a bug)" switch, and the time from the mouse press (in the page) to
the page updated: the caption the server adds for that setting changed (visible) and no element of the page still
marked stale by Streamlit (the rerun finished). Meanwhile the server's RSS is sampled from /proc and every run's
status.json is polled for its switches (queued, running, ended; the file's mtime is the time of the switch).

Figures: peak RSS (sampled, and VmHWM) against MEMORY_TOTAL plus the server's RSS before any run; every run
finished, none lost or started twice (read back with core.store.runs.RunStore); the order runs started in,
checked against the scheduler's own policy (core.store.scheduler.to_start) replayed on the observed queue and
end times; the last learner's wait against learners / slots x the measured run time; page response, median and
95th percentile (target: p95 under 1 s). The load average is printed with every figure: the machine is shared.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.engine.config import TrainConfig, memory_estimate  # noqa: E402
from core.engine.cpu import max_threads  # noqa: E402
from core.engine.precision import cpu_model  # noqa: E402
from core.store import scheduler  # noqa: E402
from core.store.learners import LearnerBook  # noqa: E402
from core.store.runs import RunStore  # noqa: E402
from core.store.scheduler import Job, Limits  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",  # tests/browser/conftest.py
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 900}
TEACHER = "bench-teacher-key"
SWITCH = "Double softmax (a bug)"  # the Train page's switch clicked; the server then adds (or removes) the caption:
CAPTION = "Double softmax is wrong on purpose"
EPS = 0.01  # s: a file's mtime comes from a coarse clock, up to a tick behind time.time()
ENDED = ("finished", "stopped", "failed", "diverged", "pruned")
T0 = time.time()

# Installed in the tab before each click: the time of the mouse press, of the caption's change and of the first moment
# after it when no element is stale (Streamlit marks the previous run's elements data-stale until its rerun is done).
MEASURE_JS = """([text, want]) => {
  const m = {press: null, visible: null, done: null};
  window.__click = m;
  const shown = () => [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
      .some(e => e.innerText.includes(text));
  const check = () => {
    if (m.press === null || m.done !== null) return;
    const now = performance.now();
    if (m.visible === null && shown() === want) m.visible = now;
    if (m.visible !== null && !document.querySelector('[data-stale="true"]')) { m.done = now; obs.disconnect(); }
  };
  const obs = new MutationObserver(check);
  obs.observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
  document.addEventListener('mousedown', () => { if (m.press === null) { m.press = performance.now(); check(); } },
                            {capture: true, once: true});
}"""


def load() -> str:
    return "load %.2f %.2f %.2f" % os.getloadavg()


def log(msg: str) -> None:
    print(f"[{time.time() - T0:7.1f} s · {load()}] {msg}", flush=True)


def pct(values: list[float], q: float) -> float:
    """The q-th percentile, nearest rank (of many clicks: no interpolation between two of them)."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


# --- the server and what is read from it -----------------------------------------------------------------------
@dataclass
class Server:
    url: str
    pid: int
    runs: Path
    log: Path


@contextmanager
def serve(work: Path, data_dir: str, env_extra: dict[str, str]):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    runs, drawings, logf = work / "runs", work / "drawings", work / "streamlit.log"
    runs.mkdir()
    drawings.mkdir()
    env = dict(os.environ, TEACHER_KEY=TEACHER, RUNS_DIR=str(runs), DRAWINGS_DIR=str(drawings), DATA_DIR=data_dir,
               **env_extra)
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true",
                             "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env,
                            stdout=open(logf, "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("streamlit did not start:\n" + logf.read_text()[-3000:])
                time.sleep(0.3)
        yield Server(url, proc.pid, runs, logf)
    finally:
        proc.terminate()  # SIGTERM: the server stops its live runs and records them (README: Shutdown)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def proc_kb(pid: int, field_name: str) -> int | None:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class Watcher(threading.Thread):
    """Samples the server's RSS and every run's status.json (its switches, timed by the file's mtime) every 0.1 s."""

    def __init__(self, pid: int, runs: Path) -> None:
        super().__init__(daemon=True)
        self.pid, self.runs = pid, runs
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.rss_peak_kb = 0
        self.status: dict[str, str] = {}
        self.switches: dict[str, list[tuple[str, float]]] = {}  # run id -> [(status, mtime)], in the order seen

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(0.1)

    def sample(self) -> None:
        rss = proc_kb(self.pid, "VmRSS")
        with self.lock:
            if rss is not None:
                self.rss_peak_kb = max(self.rss_peak_kb, rss)
            for d in self.runs.iterdir():
                f = d / "status.json"
                try:
                    mtime, status = f.stat().st_mtime, json.loads(f.read_text())["status"]
                except (OSError, ValueError, KeyError, TypeError):
                    continue  # not a run folder, or a file being replaced
                if self.status.get(d.name) != status:
                    self.status[d.name] = status
                    self.switches.setdefault(d.name, []).append((status, mtime))

    def count(self, status: str) -> int:
        with self.lock:
            return sum(1 for s in self.status.values() if s == status)

    def runs_on_disk(self) -> int:
        return sum(1 for d in self.runs.iterdir() if (d / "config.json").exists())

    def stop(self) -> None:
        self.stop_event.set()
        self.join(5)
        self.sample()


# --- the browser ------------------------------------------------------------------------------------------------
@dataclass
class Learner:
    name: str
    key: str = ""
    id: str = ""
    tab: object = None
    refused: str = ""
    page_wait: str = ""  # the Train page's "waiting for a slot: ..." right after Start
    shown: dict = field(default_factory=dict)  # the Train page's settings as shown when Start was pressed


def settle(tab, timeout: float = 60) -> None:
    """Until the tab's rerun is done: no element marked stale."""
    tab.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')", polling=50,
                          timeout=timeout * 1000)


def join_wave(base: str, path: str, learners: list[Learner], book_root: Path) -> None:
    """Each learner opens `path` (a lesson link) in their tab, chooses a name in the join form, and lands on the page
    with their key in the URL. One wave: every tab loads at once, then each joins in turn."""
    for l in learners:
        l.tab.goto(base + path, wait_until="commit")
    for l in learners:
        l.tab.bring_to_front()
        box = l.tab.get_by_label("Display name")
        box.wait_for(timeout=120_000)
        box.fill(l.name)
        l.tab.get_by_role("button", name="Join").click()
    for l in learners:
        l.tab.bring_to_front()
        l.tab.wait_for_url(re.compile(r"[?&]learner="), timeout=120_000)
        l.key = parse_qs(urlsplit(l.tab.url).query)["learner"][0]
        l.id = LearnerBook(book_root).lookup(l.key).id


def press(l: Learner, watcher: Watcher, button: str, expect_runs: int, timeout: float = 120) -> None:
    """Press `button` in the learner's tab and wait until the runs folder holds `expect_runs` runs, or the page says
    the run was refused (an error or an exception on the page)."""
    tab = l.tab
    tab.bring_to_front()
    settle(tab)
    btn = tab.get_by_role("button", name=button).first
    btn.wait_for(timeout=timeout * 1000)
    if btn.is_disabled():
        raise RuntimeError(f"{l.name}: {button!r} is disabled (is MNIST in DATA_DIR?)")
    btn.click()
    deadline = time.time() + timeout
    refusal = tab.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
    duplicate = tab.get_by_role("button", name="Start a duplicate")  # the page asks first: no run yet
    while time.time() < deadline:
        if watcher.runs_on_disk() >= expect_runs:
            return
        if refusal.count() or duplicate.count():
            shown = refusal if refusal.count() else tab.locator('[data-testid="stAlertContentWarning"]')
            l.refused = " ".join(shown.first.inner_text().split())[:300]
            return
        time.sleep(0.1)
    raise RuntimeError(f"{l.name}: no run appeared within {timeout:.0f} s of pressing {button!r}")


SHOWN = {"epochs": "Epochs", "batch_size": "Batch size", "max_batches": "Batches per epoch (0 = all)"}


def shown_settings(tab) -> dict:
    """The Train page's main settings as the page shows them (what the learner sees before pressing Start)."""
    out = {name: int(tab.get_by_role("spinbutton", name=label, exact=True).input_value())
           for name, label in SHOWN.items()}
    out["max_batches"] = out["max_batches"] or None
    out["batch_norm"] = tab.get_by_role("switch", name="BatchNorm", exact=True).is_checked()
    return out


BLANK: list[str] = []  # pages that had not drawn a minute after they were opened (reloaded once), for the report


def open_train_page(l: Learner, base: str) -> None:
    """The learner's Train page in their tab, drawn; a page still blank after a minute is reloaded once (and noted)."""
    l.tab.goto(f"{base}/train?learner={l.key}")
    start = l.tab.get_by_role("button", name="Start").first
    try:
        start.wait_for(timeout=60_000)
    except Exception:
        BLANK.append(l.name)
        log(f"{l.name}: the Train page had not drawn after 60 s; reloading it")
        l.tab.reload()
        start.wait_for(timeout=120_000)


def page_wait_text(l: Learner, timeout: float = 5) -> str:
    """The Train page's progress line for the learner's run ("Waiting for a slot: 27th of 28 ...")."""
    try:
        bar = l.tab.get_by_test_id("stProgress").first
        bar.wait_for(timeout=timeout * 1000)
        return " ".join(bar.inner_text().split())
    except Exception as e:  # a page that shows no progress bar (a refused run): said, not fatal
        return f"(no progress line: {type(e).__name__})"


@dataclass
class Click:
    tab: int
    visible: float  # s from the mouse press to the caption changed
    done: float  # s from the mouse press to no stale element
    queued: int  # runs waiting when it was clicked
    running: int


def measure_clicks(learners: list[Learner], rounds: int, watcher: Watcher, timeout: float = 30) -> list[Click]:
    """Each round clicks the switch once in each learner's tab (on their Train page), the tab in front; a click whose
    update never came counts as `timeout`."""
    for l in learners:
        l.tab.bring_to_front()
        settle(l.tab)
        more = l.tab.get_by_text("More settings")
        try:
            if not l.tab.get_by_text(SWITCH, exact=True).is_visible():
                more.click(timeout=15_000)
        except Exception:  # a tab that shows nothing when brought to the front: counted, reloaded once
            BLANK.append(f"{l.name} (when its clicks began)")
            log(f"{l.name}: the Train page showed nothing when brought to the front; reloading it")
            l.tab.reload()
            more.click(timeout=120_000)
        l.tab.get_by_text(SWITCH, exact=True).wait_for(timeout=60_000)
    clicks = []
    for r in range(rounds):
        for i, l in enumerate(learners):
            tab = l.tab
            tab.bring_to_front()
            settle(tab)
            shown = tab.get_by_text(CAPTION).count() > 0  # what the page shows now; the click turns it over
            tab.evaluate(MEASURE_JS, [CAPTION, not shown])
            queued, running = watcher.count("queued"), watcher.count("running")
            tab.get_by_text(SWITCH, exact=True).click()
            try:
                tab.wait_for_function("() => window.__click.done !== null", polling=50, timeout=timeout * 1000)
                m = tab.evaluate("() => window.__click")
                clicks.append(Click(i, (m["visible"] - m["press"]) / 1000, (m["done"] - m["press"]) / 1000, queued,
                                    running))
            except Exception:
                clicks.append(Click(i, timeout, timeout, queued, running))
                log(f"click in tab {i} got no update within {timeout:.0f} s")
            time.sleep(0.3)
    return clicks


@contextmanager
def browser(work: Path, tabs: int):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(work / "chrome-profile"), executable_path=CHROMIUM,
                                                   headless=True, args=FLAGS, viewport=VIEWPORT)
        try:
            pages = list(ctx.pages)[:tabs]
            pages += [ctx.new_page() for _ in range(tabs - len(pages))]
            for i, pg in enumerate(pages):
                pg.set_default_timeout(60_000)
                pg.on("crash", lambda _pg, i=i: log(f"tab {i}: its renderer crashed"))
                pg.on("pageerror", lambda e, i=i: log(f"tab {i}: page error: {str(e)[:600]}"))
            yield ctx, pages
        finally:
            ctx.close()


# --- reading the runs back --------------------------------------------------------------------------------------
@dataclass
class RunFacts:
    id: str
    owner: str
    config: TrainConfig
    group: str | None
    created: float
    status: str
    started: float | None  # mtime of status.json when it switched to running
    ended: float | None
    starts: int  # switches to running seen
    steps_ok: bool  # its logged steps strictly increase and reach epochs x steps per epoch (none run twice)


def read_back(runs: Path, watcher: Watcher) -> tuple[list[RunFacts], list]:
    store = RunStore(runs)  # reading only: a store starts nothing until asked to
    facts = []
    for r in store.list():
        sw = watcher.switches.get(r.id, [])
        started = next((t for s, t in sw if s == "running"), None)
        ended = next((t for s, t in sw if s in ENDED), None)
        steps = [s for s, _ in r.snapshot.step_losses]
        steps_ok = steps == sorted(set(steps)) and (not steps or steps[-1] == r.config.epochs * r.snapshot.steps_per_epoch)
        facts.append(RunFacts(r.id, r.owner, r.config, r.group, r.created, r.snapshot.status, started, ended,
                              sum(1 for s, _ in sw if s == "running"), steps_ok and len(r.snapshot.history) == r.config.epochs))
    return sorted(facts, key=lambda f: f.created), store.damaged()


def order_check(facts: list[RunFacts], limits: Limits) -> tuple[int, int, list[str]]:
    """(starts that the scheduler's policy allows at that moment, starts checked, what was out of order). The state at
    each observed start: runs queued before it and not yet started wait, runs started and not ended train; a lab run
    waits for the run queued before it in its group (the twins' chain). A switch to running is a start the
    policy must have chosen: `to_start` on that state must list it."""
    after, last = {}, {}
    for f in facts:  # created order
        if f.group:
            after[f.id] = last.get(f.group)
            last[f.group] = f.id
    jobs = {f.id: Job(f.id, f.owner, memory_estimate(f.config).total, i, after.get(f.id)) for i, f in enumerate(facts)}
    ok, checked, wrong = 0, 0, []
    for f in facts:
        if f.started is None:
            continue
        t = f.started
        waiting = [jobs[g.id] for g in facts if g is f or (g.created <= t + EPS and (g.started is None or g.started >= t)
                                                           and not (g.started is None and g.ended is not None and g.ended <= t))]
        training = [jobs[g.id] for g in facts if g.started is not None and g.started < t and (g.ended is None or g.ended > t)]
        live = {g.id for g in facts if g.created <= t + EPS and (g.ended is None or g.ended > t)}
        _, start = scheduler.to_start(waiting, training, [], [], live, limits)
        checked += 1
        if f.id in {j.run_id for j in start}:
            ok += 1
        else:
            wrong.append(f"{f.id} (owner {f.owner}) started at +{t - facts[0].created:.1f} s; the policy would start "
                         f"{[j.run_id for j in start][:3]} then")
    return ok, checked, wrong


# --- one case --------------------------------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    title: str
    learners: int
    path: str  # the lesson link each learner opens
    env: dict = field(default_factory=dict)
    runs_per_learner: int = 1
    lab: dict | None = None  # BatchNorm lab: {"Epochs": 1, "Seeds per arm": 1, "Batches per epoch (0 = all)": 50}
    clicks: int = 10  # rounds of clicks over the tabs
    expect: dict = field(default_factory=dict)  # the run settings the link (or the lab's widgets) ask for


def run_case(case: Case, args, data_dir: str) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"bench-class-{case.name}-"))
    out: dict = {"case": case.name, "title": case.title, "learners": case.learners, "env": case.env,
                 "link": case.path, "lab": case.lab, "cpu": cpu_model()}
    log(f"case {case.name}: {case.title}; {case.learners} learners, lesson link {case.path}"
        + (f", BatchNorm lab {case.lab}" if case.lab else "") + f", server env {case.env}")
    try:
        with serve(work, data_dir, case.env) as server, browser(work, args.tabs + args.join_tabs) as (ctx, tabs):
            watcher = Watcher(server.pid, server.runs)
            watcher.start()
            try:
                _drive(case, args, server, watcher, tabs, out)
            except Exception:
                for i, tab in enumerate(tabs):  # what each tab showed, kept with --keep
                    try:
                        tab.screenshot(path=str(work / f"failed-tab{i}.png"))
                    except Exception:
                        pass
                raise
            finally:
                out["vmhwm_mb"] = (proc_kb(server.pid, "VmHWM") or 0) / 1024
                watcher.stop()
        out["rss_peak_mb"] = watcher.rss_peak_kb / 1024
        facts, damaged = read_back(server.runs, watcher)
        _figures(case, facts, damaged, watcher, out)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            out["work"] = str(work)
    return out


def _drive(case: Case, args, server: Server, watcher: Watcher, tabs: list, out: dict) -> None:
    # The teacher opens the Train page first: the server imports everything a page needs. Its RSS then is the base.
    t = tabs[-1]
    t.goto(f"{server.url}/train?teacher={TEACHER}")
    t.get_by_role("button", name="Start").first.wait_for(timeout=180_000)
    settle(t)
    time.sleep(2)
    out["base_mb"] = (proc_kb(server.pid, "VmRSS") or 0) / 1024
    log(f"server up, base RSS {out['base_mb']:.0f} MB")
    learners = [Learner(f"Learner {i + 1:02d}") for i in range(case.learners)]
    # The first learners join in the tabs that stay on their Train pages (clicked once everyone has pressed Start);
    # the others join in the remaining tabs, one learner after another.
    kept, reused = tabs[:args.tabs], tabs[args.tabs:]
    waves = [learners[:len(kept)]] + [learners[i:i + len(reused)] for i in range(len(kept), len(learners), len(reused))]
    deadline = time.time() + args.join_timeout
    t_join = time.time()
    for n, wave in enumerate(waves):
        for l, tab in zip(wave, kept if n == 0 else reused):
            l.tab = tab
        join_wave(server.url, case.path, wave, server.runs)
        if n == 0 and not case.lab and args.baseline_clicks:  # the same tabs and clicks with no run on the server
            base = measure_clicks(wave, 2 * ((args.baseline_clicks + 1) // 2), watcher)  # even: the switch ends off
            out["baseline_clicks"] = [c.__dict__ for c in base]
            out["load_during_baseline"] = load()
            log(f"{len(base)} clicks before any run: median {statistics.median(c.done for c in base):.3f} s, "
                f"p95 {pct([c.done for c in base], 95):.3f} s (rerun done)")
        for l in wave:
            if case.lab:
                l.tab.bring_to_front()
                settle(l.tab)
                for label, value in case.lab.items():
                    box = l.tab.get_by_role("spinbutton", name=label, exact=True)
                    box.fill(str(value))
                    box.press("Enter")
                    settle(l.tab)
                press(l, watcher, "Train twins", watcher.runs_on_disk() + case.runs_per_learner)
                if n == 0:
                    open_train_page(l, server.url)  # kept open on their Train page
            else:
                l.tab.bring_to_front()
                settle(l.tab)
                l.shown = shown_settings(l.tab)
                if any(k in case.expect and v != case.expect[k] for k, v in l.shown.items()) and args.keep:
                    l.tab.screenshot(path=str(Path(server.runs).parent / f"settings-{l.name.replace(' ', '-')}.png"))
                press(l, watcher, "Start", watcher.runs_on_disk() + case.runs_per_learner)
                l.page_wait = page_wait_text(l)
            if l.refused:
                log(f"{l.name} refused: {l.refused}")
        log(f"{sum(map(len, waves[:n + 1]))} of {len(learners)} learners joined and pressed Start; "
            f"{watcher.count('queued')} runs queued, {watcher.count('running')} running")
        if time.time() > deadline:
            raise RuntimeError(f"joining took over {args.join_timeout} s")
    out["join_seconds"] = time.time() - t_join
    out["last_page_wait"] = learners[-1].page_wait
    out["refused"] = [(l.name, l.refused) for l in learners if l.refused]
    out["page_waits"] = {l.id: l.page_wait for l in learners if l.page_wait}
    out["blank_pages"], BLANK[:] = list(BLANK), []
    out["shown_wrong"] = [(l.name, {k: v for k, v in l.shown.items() if k in case.expect and v != case.expect[k]})
                          for l in learners if any(k in case.expect and v != case.expect[k] for k, v in l.shown.items())]
    out["names"] = {l.id: l.name for l in learners}
    out["load_after_joins"] = load()
    clicks = measure_clicks(learners[:args.tabs], case.clicks, watcher) if case.clicks else []
    out["clicks"] = [c.__dict__ for c in clicks]
    out["load_during_clicks"] = load()
    if clicks:
        log(f"{len(clicks)} clicks: median {statistics.median(c.done for c in clicks):.3f} s, "
            f"p95 {pct([c.done for c in clicks], 95):.3f} s (rerun done); queue {min(c.queued for c in clicks)}-"
            f"{max(c.queued for c in clicks)} waiting")
    # Every tab leaves the server (only the watcher polls now); the runs drain.
    for tab in tabs:
        tab.goto("about:blank")
    deadline = time.time() + args.drain_timeout
    total = watcher.runs_on_disk()
    while time.time() < deadline:
        with watcher.lock:
            live = [s for s in watcher.status.values() if s not in ENDED]
        if not live and len(watcher.status) >= total:
            break
        time.sleep(0.5)
    else:
        log(f"{len(live)} runs still live after {args.drain_timeout} s: the server's shutdown stops them")
    out["load_end"] = load()


def _figures(case: Case, facts: list[RunFacts], damaged: list, watcher: Watcher, out: dict) -> None:
    limits = scheduler.limits_from_env(max_threads(), dict(os.environ, **case.env))  # as the server computes them
    by_owner: dict[str, int] = {}
    for f in facts:
        by_owner[f.owner] = by_owner.get(f.owner, 0) + 1
    durations = [f.ended - f.started for f in facts if f.started and f.ended]
    ok, checked, wrong = order_check(facts, limits)
    out |= {
        "slots": limits.slots, "memory_total_mb": limits.memory_total / 2**20,
        "runs": len(facts), "damaged": [d.id for d in damaged],
        "statuses": {s: sum(1 for f in facts if f.status == s) for s in sorted({f.status for f in facts})},
        "owners": len(by_owner), "runs_per_owner": sorted(set(by_owner.values())),
        "unowned_runs": by_owner.get("", 0),
        "started_twice": [f.id for f in facts if f.starts > 1],
        "settings_wrong": [(out.get("names", {}).get(f.owner, f.owner), {k: getattr(f.config, k) for k, v in
                            case.expect.items() if getattr(f.config, k) != v}) for f in facts
                           if any(getattr(f.config, k) != v for k, v in case.expect.items())],
        "steps_wrong": [f.id for f in facts if f.status == "finished" and not f.steps_ok],
        "run_seconds": (statistics.median(durations), min(durations), max(durations)) if durations else None,
        "waited": sorted(f.started - f.created for f in facts if f.started and f.started - f.created > 1),
        "order_ok": ok, "order_checked": checked, "order_wrong": wrong[:5],
        "max_running": max((sum(1 for g in facts if g.started and g.started <= f.started and (g.ended or 1e18) > f.started)
                            for f in facts if f.started), default=0),  # a run never seen ending counts to the end

    }
    firsts = [f for f in facts if f.started]
    if firsts and durations:
        last = max(firsts, key=lambda f: f.created)
        ahead = sum(1 for f in facts if f.created < last.created and (f.started is None or f.started > last.created))
        out["last_wait"] = {"wait": last.started - last.created, "runs_ahead_at_queue": ahead,
                            "ahead_over_slots_x_run": ahead / limits.slots * statistics.median(durations),
                            "learners_over_slots_x_run": case.learners * case.runs_per_learner / limits.slots
                            * statistics.median(durations)}
    out["peak_over_base_mb"] = out["rss_peak_mb"] - out["base_mb"]
    said = []  # (the page's estimate right after Start, the wait that followed), learners whose run was queued
    for f in facts:
        text = out.get("page_waits", {}).get(f.owner, "")
        if f.started and (m := re.search(r"starts (within seconds|in about ([0-9]+) (s|min))", text)):
            guess = 0.0 if m.group(1) == "within seconds" else float(m.group(2)) * (60 if m.group(3) == "min" else 1)
            said.append((guess, f.started - f.created))
    out["page_estimates"] = said


# --- the report ------------------------------------------------------------------------------------------------
def report(out: dict) -> None:
    print(f"\n== case {out['case']}: {out['title']}")
    print(f"CPU: {out['cpu']}; {out['learners']} learners; server env {out['env']}; lesson link {out['link']}"
          + (f"; lab settings {out['lab']}" if out.get("lab") else ""))
    print(f"load after the joins: {out.get('load_after_joins')}, during the clicks: {out.get('load_during_clicks')}, "
          f"at the end: {out.get('load_end')}")
    rows = [("joining and pressing Start, all learners", f"{out.get('join_seconds', 0):.0f} s", "")]
    if base := out.get("baseline_clicks"):
        done = [c["done"] for c in base]
        rows.append((f"page response before any run, click -> rerun done ({len(base)} clicks; {out['load_during_baseline']})",
                     f"median {statistics.median(done):.3f} s, p95 {pct(done, 95):.3f} s, max {max(done):.3f} s", ""))
    clicks = out.get("clicks") or []
    if clicks:
        done, vis = [c["done"] for c in clicks], [c["visible"] for c in clicks]
        q = [c["queued"] for c in clicks]
        rows += [(f"page response, click -> change visible ({len(clicks)} clicks, {min(q)}-{max(q)} runs waiting)",
                  f"median {statistics.median(vis):.3f} s, p95 {pct(vis, 95):.3f} s, max {max(vis):.3f} s", ""),
                 ("page response, click -> rerun done (no stale element)",
                  f"median {statistics.median(done):.3f} s, p95 {pct(done, 95):.3f} s, max {max(done):.3f} s",
                  "met" if pct(done, 95) < 1 else "NOT met (p95 < 1 s)")]
    limit = out["memory_total_mb"] + out["base_mb"]
    rows += [("server RSS before any run (base)", f"{out['base_mb']:.0f} MB", ""),
             ("peak RSS, sampled every 0.1 s / VmHWM", f"{out['rss_peak_mb']:.0f} MB / {out['vmhwm_mb']:.0f} MB",
              f"{'within' if out['vmhwm_mb'] <= limit else 'OVER'} MEMORY_TOTAL + base = {limit:.0f} MB"),
             ("runs / statuses", f"{out['runs']}: {out['statuses']}", f"damaged: {out['damaged'] or 'none'}"),
             ("runs per learner (owners)", f"{out['runs_per_owner']} ({out['owners']} owners, "
                                           f"{out['unowned_runs']} runs without an owner)", ""),
             ("refused at Start", f"{len(out['refused'])}", "; ".join(f"{n}: {r[:120]}" for n, r in out['refused'][:3])),
             ("started twice / steps not as planned", f"{len(out['started_twice'])} / {len(out['steps_wrong'])}", ""),
             ("runs not of the link's settings / pages that showed others at Start",
              f"{len(out['settings_wrong'])} / {len(out.get('shown_wrong', []))}",
              "; ".join(f"{n}: {w}" for n, w in (out['settings_wrong'] + out.get('shown_wrong', []))[:4])),
             ("Train pages still blank a minute after opening (reloaded)", f"{len(out.get('blank_pages', []))}",
              ", ".join(out.get("blank_pages", []))),
             ("most runs training at once", f"{out['max_running']}", f"slots {out['slots']}"),
             ("starts the scheduler's fair policy allows", f"{out['order_ok']} of {out['order_checked']}",
              "; ".join(out["order_wrong"][:2]))]
    if out.get("run_seconds"):
        m, lo, hi = out["run_seconds"]
        rows.append(("run time, start to end (median, min-max)", f"{m:.1f} s ({lo:.1f}-{hi:.1f})", ""))
    waited = out.get("waited", [])
    rows.append(("runs that waited over 1 s for a slot or memory", f"{len(waited)} of {out['runs']}",
                 f"longest {waited[-1]:.0f} s" if waited else ""))
    if lw := out.get("last_wait"):
        rows.append(("wait of the last learner's run", f"{lw['wait']:.0f} s",
                     f"{lw['runs_ahead_at_queue']} runs ahead / slots x run = {lw['ahead_over_slots_x_run']:.0f} s; "
                     f"all runs / slots x run = {lw['learners_over_slots_x_run']:.0f} s"
                     + (f"; the page said {out['last_page_wait']!r}" if out.get("last_page_wait") else "")))
    if said := [(g, w) for g, w in out.get("page_estimates", []) if w >= 5]:
        ratios = sorted(w / max(g, 2.5) for g, w in said)  # "within seconds" counts as 2.5 s
        rows.append(("queued runs: actual wait / the page's estimate at Start",
                     f"median {statistics.median(ratios):.2f}, range {ratios[0]:.2f}-{ratios[-1]:.2f} ({len(said)} runs)",
                     "1.00 = exact"))
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value}" + (f"   [{note}]" if note else ""))


def _terminated(signum, frame):
    raise KeyboardInterrupt  # the finally blocks stop the server (by its pid) and Chromium


def main() -> int:
    signal.signal(signal.SIGTERM, _terminated)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a short smoke version: few learners, tiny runs, few clicks")
    ap.add_argument("--cases", default="A,B,C", help="which cases to run, e.g. A or A,C")
    ap.add_argument("--learners", type=int, help="learners in cases A and B (30)")
    ap.add_argument("--tabs", type=int, help="tabs kept open on the first learners' Train pages and clicked (5)")
    ap.add_argument("--join-tabs", type=int, help="tabs the other learners join in, one after another (3)")
    ap.add_argument("--clicks", type=int, help="rounds of clicks over the tabs (10; a click a tab a round)")
    ap.add_argument("--baseline-clicks", type=int, help="cases A and C: rounds of the same clicks before any run (6)")
    ap.add_argument("--epochs", type=int, help="case A: epochs of each learner's run (3)")
    ap.add_argument("--max-batches", type=int, help="case A: batches per epoch, 0 = all 938 (0)")
    ap.add_argument("--bn-seeds", type=int, help="case B: seeds per arm (1: one BN / no-BN pair)")
    ap.add_argument("--bn-epochs", type=int, help="case B: epochs (2)")
    ap.add_argument("--bn-batches", type=int, help="case B: batches per epoch, 0 = all 938 (0)")
    ap.add_argument("--oom-learners", type=int, help="case C: learners, and TRAIN_SLOTS (25)")
    ap.add_argument("--oom-memory", help="case C: MEMORY_TOTAL (4G)")
    ap.add_argument("--slots", type=int, help="cases A and B: TRAIN_SLOTS (default: the server's own, one a core)")
    ap.add_argument("--memory-total", help="cases A and B: MEMORY_TOTAL (default: the server's own, half the memory)")
    ap.add_argument("--join-timeout", type=float, default=1200)
    ap.add_argument("--drain-timeout", type=float, help="seconds to wait for the runs to end once the clicks are done")
    ap.add_argument("--json", help="also write every figure to this file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary runs folders (printed)")
    args = ap.parse_args()
    if args.join_tabs is not None and args.join_tabs < 1:
        ap.error("--join-tabs: at least 1")
    quick = dict(learners=8, tabs=5, join_tabs=2, clicks=3, baseline_clicks=2, epochs=1, max_batches=100, bn_seeds=1, bn_epochs=1, bn_batches=50,
                 oom_learners=6, oom_memory="2G", drain_timeout=300)
    # Sized so that on this 2-core machine, quiet, the queue still holds runs while the tabs are clicked: 30 learners
    # join in about 1.5 min, and 30 runs of 3 epochs on 2 slots take about 3 min (60 twin runs of 2 epochs, 4.5 min).
    full = dict(learners=30, tabs=5, join_tabs=3, clicks=10, baseline_clicks=6, epochs=3, max_batches=0, bn_seeds=1, bn_epochs=2, bn_batches=0,
                oom_learners=25, oom_memory="4G", drain_timeout=1800)
    for k, v in (quick if args.quick else full).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    data_dir = os.environ.get("DATA_DIR") or str(ROOT / "data")
    if not (Path(data_dir) / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        print(f"MNIST is not in {data_dir}/MNIST/raw: set DATA_DIR (or run `make run` once online)")
        return 2
    if not os.path.exists(CHROMIUM):
        print(f"{CHROMIUM} is missing: install Debian's chromium package")
        return 2
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores); {load()}; uptime: "
          + subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    ab_env = {k: str(v) for k, v in (("TRAIN_SLOTS", args.slots), ("MEMORY_TOTAL", args.memory_total)) if v}
    cases = {
        "A": Case("A", "each learner starts one course run from the Train page", args.learners,
                  "/train?" + urlencode({"epochs": args.epochs, "max_batches": args.max_batches}), ab_env,
                  clicks=args.clicks, expect={"epochs": args.epochs, "max_batches": args.max_batches or None,
                                              "batch_size": 64, "batch_norm": False}),
        "B": Case("B", "each learner starts a BN twin set in the BatchNorm lab", args.learners, "/batchnorm", ab_env,
                  runs_per_learner=2 * args.bn_seeds, clicks=args.clicks,
                  lab={"Epochs": args.bn_epochs, "Seeds per arm": args.bn_seeds,
                       "Batches per epoch (0 = all)": args.bn_batches},
                  expect={"epochs": args.bn_epochs, "max_batches": args.bn_batches or None, "batch_size": 64}),
        "C": Case("C", "batch-60,000 BatchNorm runs against a memory budget that holds a few", args.oom_learners,
                  "/train?" + urlencode({"batch_size": 60000, "batch_norm": "true", "max_batches": 2, "epochs": 1}),
                  {"TRAIN_SLOTS": str(args.oom_learners), "MEMORY_TOTAL": args.oom_memory},
                  clicks=max(1, args.clicks // 3),
                  expect={"batch_size": 60000, "batch_norm": True, "max_batches": 2, "epochs": 1}),
    }
    results, failed = [], []
    for name in [c.strip().upper() for c in args.cases.split(",") if c.strip()]:
        try:
            out = run_case(cases[name], args, data_dir)
            report(out)
            results.append(out)
        except Exception as e:  # the next case still runs; the failure is said
            failed.append(name)
            log(f"case {name} FAILED: {type(e).__name__}: {e}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    print(f"\n{load()}; uptime: " + subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
