"""Shutting down while a run trains: SIGTERM to the Streamlit server, a double Ctrl-C in the command line. Each
in a real subprocess: the process exits with 0 or 130, the run is recorded "stopped", its files load.

The server test starts a run the way a learner does, through the Train page in Chromium (Playwright): a run can
only be started inside the server's process, and the page is the real path to it; no test-only switch."""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core.store.runs import RunStore
from tests.browser.conftest import CHROMIUM, FLAGS, _free_port
from tests.browser.test_pages import settle
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent


def one_run_with_weights(runs: Path) -> Path | None:
    """The run folder under `runs` once it has saved an epoch's weights and says it is running."""
    for d in runs.iterdir() if runs.exists() else ():
        try:
            running = json.loads((d / "status.json").read_text())["status"] == "running"
        except (OSError, ValueError):
            continue
        if running and (d / "weights.safetensors").exists():
            return d
    return None


def assert_stopped_and_loadable(runs: Path, data_dir: str) -> None:
    store = RunStore(runs, data_dir)
    (run,) = store.list()
    assert run.snapshot.status == "stopped", run.snapshot
    assert run.snapshot.epoch >= 1 and not run.problems, run.problems
    store.load_model(run.id)
    assert json.loads((runs / run.id / "status.json").read_text())["status"] == "stopped"


@contextlib.contextmanager
def command_line(runs: Path, log: Path, data_dir: str, *args: str):
    """`python -m core.train ARGS` training into `runs`, its progress written to `log`; killed if still running."""
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "core.train", *args, "--runs-dir", str(runs),
                                 "--data-dir", data_dir], cwd=ROOT, stderr=err)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()


def test_double_ctrl_c_in_the_command_line(tmp_path, data_dir):
    runs, log = tmp_path / "runs", tmp_path / "cli.log"
    # Batches of 2000 images through 2000x2000 take about a second each here, so the second Ctrl-C
    # surely arrives while the run is still finishing its batch.
    with command_line(runs, log, data_dir, "--hidden", "2000,2000", "--batch-size", "2000", "--max-batches", "2",
                      "--epochs", "200") as proc:
        wait_until(lambda: one_run_with_weights(runs) or proc.poll() is not None, 180, 0.05, "an epoch saved")
        proc.send_signal(signal.SIGINT)
        time.sleep(0.1)
        proc.send_signal(signal.SIGINT)  # impatient: the second Ctrl-C while the run is stopping
        rc = proc.wait(120)
    out = log.read_text()
    assert rc in (0, 130), out
    assert "Traceback" not in out and "terminate called" not in out
    assert "stopping after the current batch" in out
    assert_stopped_and_loadable(runs, data_dir)


def test_ctrl_c_while_the_command_line_exits(tmp_path, data_dir):
    """Ctrl-C after Ctrl-C once the run is saved, until Python has shut down: the exit status is still the
    command's own (130 once a Ctrl-C arrived before it returned), never death by SIGINT (-2)."""
    runs, log = tmp_path / "runs", tmp_path / "cli.log"
    with command_line(runs, log, data_dir, "--max-batches", "2", "--epochs", "1") as proc:
        wait_until(lambda: "saved to" in log.read_text() or proc.poll() is not None, 180, 0.01, "the run saved")
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:  # Ctrl-C all the way to the process' end
            proc.send_signal(signal.SIGINT)
            time.sleep(0.005)
        rc = proc.wait(60)
    out = log.read_text()
    assert rc in (0, 130), out
    assert "Traceback" not in out


def test_sigterm_to_the_server_during_a_run(tmp_path, data_dir):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package to run the browser tests")
    from playwright.sync_api import sync_playwright

    runs, log, port = tmp_path / "runs", tmp_path / "server.log", _free_port()
    env = dict(os.environ, RUNS_DIR=str(runs), DATA_DIR=data_dir, DRAWINGS_DIR=str(tmp_path / "drawings"))
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                                 "--server.address", "127.0.0.1", "--server.headless", "true",
                                 "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: healthy(url), 60, 0.3, "the server to answer")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{url}/train")
            page.get_by_role("heading", name="Train a network").wait_for(timeout=60_000)
            for label, value in (("Epochs", "200"), ("Batches per epoch (0 = all)", "30")):
                # each field once the page has finished its rerun after the one before: during a rerun Streamlit may
                # show a field twice for a moment (the run before's, stale, beside the new), and a value typed into
                # the stale one is lost (seen in CI: max_batches None)
                settle(page, 0.5)
                box = page.get_by_label(label, exact=True)
                box.fill(value)
                box.press("Enter")
            settle(page, 0.5)
            page.get_by_role("button", name="Start").click()
            wait_until(lambda: one_run_with_weights(runs), 120, 0.1, "an epoch saved by the server's run")
            browser.close()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert rc in (0, 130), text[-2000:]
    assert "terminate called" not in text and "Traceback" not in text
    assert_stopped_and_loadable(runs, data_dir)
    (run,) = RunStore(runs, data_dir).list()
    assert run.config.epochs == 200 and run.config.max_batches == 30  # the page's settings reached the run
    assert "shut down" in run.snapshot.error


def healthy(url: str) -> bool:
    try:
        return urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok"
    except OSError:
        return False
