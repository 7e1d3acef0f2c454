"""A real Streamlit server on 127.0.0.1 and Debian's Chromium driven by Playwright, at 1400x900 (and 800 px wide
where a test says so: the narrowest window the dashboard is laid out for).

Screenshots go to a temporary folder (printed), or to SCREENSHOT_DIR when set; a test run never writes a tracked
file (`make screenshot` sets README_SCREENSHOT to refresh the README's image on purpose)."""
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 900}  # a laptop screen: what must be visible without scrolling is judged here
NARROW = {"width": 800, "height": 900}  # the narrowest window every page must work in


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _need_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing (install Debian's chromium package)")
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package to run the browser tests")


@contextlib.contextmanager
def serve(tmp_path_factory, **env_vars):
    """The dashboard on a free port, with `env_vars` (RUNS_DIR, DATA_DIR, ...) in its environment; its URL."""
    port = _free_port()
    env = dict(os.environ, DRAWINGS_DIR=str(tmp_path_factory.mktemp("drawings")), **env_vars)
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true",
                             "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)  # a file: a full pipe would stall it
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("streamlit did not start:\n" + log.read_text())
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def server(tmp_path_factory, data_dir, runs_dir):
    _need_chromium()
    with serve(tmp_path_factory, RUNS_DIR=str(runs_dir), DATA_DIR=data_dir) as url:
        yield url


@pytest.fixture(scope="module")
def offline_server(tmp_path_factory):
    """A dashboard whose data folder is empty, as on a machine that never went online."""
    _need_chromium()
    with serve(tmp_path_factory, RUNS_DIR=str(tmp_path_factory.mktemp("runs")),
               DATA_DIR=str(tmp_path_factory.mktemp("empty-data"))) as url:
        yield url


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    _need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path_factory.mktemp("chrome-profile")),
                                                   executable_path=CHROMIUM, headless=True, args=FLAGS,
                                                   viewport=VIEWPORT)
        yield ctx
        ctx.close()


@pytest.fixture(scope="module")
def browser_page(browser_context):
    return browser_context.new_page()


def page_urls(page, base: str) -> list[tuple[str, str]]:
    """(name, URL) of every page in the menu at the top, pages added later included; the name is the URL's last
    part ('train', 'runs', ...; 'home' for the default page). Read at 1400 px, where the menu shows every page."""
    nav = page.get_by_test_id("stTopNav")
    nav.get_by_role("link").first.wait_for(timeout=30_000)
    links = nav.get_by_role("link")
    urls = [links.nth(i).get_attribute("href") for i in range(links.count())]
    return [(url.rstrip("/").rsplit("/", 1)[-1] if url.rstrip("/") != base.rstrip("/") else "home", url)
            for url in urls]
