"""Open the dashboard, start a run, and watch the loss chart grow with no further interaction."""
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"

POINTS = """() => {
  const g = document.querySelector('.js-plotly-plot');
  return g && g.data ? g.data.reduce((n, t) => n + (t.x ? t.x.length : 0), 0) : 0;
}"""


def test_loss_chart_grows_by_itself_and_screenshot(server, browser_page):
    page = browser_page
    page.goto(f"{server}/train")  # the server's first request is a direct page URL (ui/navigation.py)
    page.get_by_role("heading", name="Train a network").wait_for(timeout=30_000)
    nav = page.get_by_test_id("stSidebarNav")
    for title in ("Runs & evaluation", "BatchNorm lab", "Draw a digit"):  # app.py's titles, not file names
        nav.get_by_text(title).wait_for(timeout=10_000)
    page.get_by_role("button", name="Start").click()
    page.wait_for_function(f"({POINTS})() > 0", timeout=60_000)
    first = page.evaluate(POINTS)
    counts = [first]
    deadline = time.time() + 30
    while time.time() < deadline and len(set(counts)) < 3:  # no clicks: the fragment must poll by itself
        time.sleep(1.0)
        counts.append(page.evaluate(POINTS))
    assert counts[-1] > first, f"loss chart did not grow: {counts}"
    assert counts == sorted(counts)
    time.sleep(2)
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / "train-page.png"), full_page=True)
    page.get_by_role("button", name="Stop").click()
    page.get_by_text("stopped").first.wait_for(timeout=30_000)
