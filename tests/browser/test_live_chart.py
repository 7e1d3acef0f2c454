"""The Train page in Chromium at 1400x900, as a learner meets it: a second tab open before the run starts, Start,
charts with real ranges before their data, the live curves in view without scrolling and growing by themselves,
Pause and Stop seen in the other tab; the run picker's label once a run has finished by itself.

    make screenshot     # the same test, also writing the README's image (README_SCREENSHOT=docs/train-page.png)
"""
import os
import shutil
import time

from tests.browser.conftest import VIEWPORT

# Per chart on screen (a chart being replaced by the next second's is briefly out of the layout: left out), its title,
# how many points its traces hold, its y range, its annotations, and where it sits on screen.
CHARTS = """() => [...document.querySelectorAll('.js-plotly-plot')].filter(g => g.getClientRects().length).map(g => {
  const r = g.getBoundingClientRect();
  const L = g._fullLayout || {};
  return {title: ((L.title && L.title.text) || '').replace(/<[^>]+>/g, ''), points: (g.data || []).reduce((n, t) => n + (t.x ? t.x.length : 0), 0),
          y: L.yaxis ? L.yaxis.range : null, ytype: L.yaxis ? L.yaxis.type : null,
          notes: (L.annotations || []).map(a => a.text),
          top: r.top, bottom: r.bottom, width: r.width};
})"""
SCROLLED = "() => document.querySelector('[data-testid=\"stMain\"]').scrollTop + window.scrollY"
# A deadline for the other tab, not a measured speed: it polls every second, and a loaded machine adds the page
# run; the test prints what it took.
SECOND_TAB_DEADLINE_MS = 10_000


def charts(page) -> dict:
    return {c["title"]: c for c in page.evaluate(CHARTS)}


def loss_points(page) -> int:
    return next((c["points"] for t, c in charts(page).items() if t.startswith("Training loss")), 0)


def test_train_page_live_in_view_and_seen_by_another_tab(server, browser_context, browser_page, screenshots):
    page = browser_page
    page.goto(f"{server}/train")  # the server's first request is a direct page URL (ui/navigation.py)
    page.get_by_role("heading", name="Train a network").wait_for(timeout=30_000)
    nav = page.get_by_test_id("stTopNav")
    for title in ("Runs & evaluation", "BatchNorm lab", "Draw a digit"):  # app.py's titles, not file names
        nav.get_by_text(title).wait_for(timeout=10_000)
    other = browser_context.new_page()  # a second tab, open before the run exists
    other.goto(f"{server}/train")
    other.get_by_text("No runs yet").wait_for(timeout=30_000)
    # this tab in front again: Chromium throttles the timers and frames of a tab behind another (plotly draws in
    # animation frames); the other tab only has to see changes, within SECOND_TAB_DEADLINE_MS
    page.bring_to_front()

    # batches of 8: an epoch of 7,500 steps, so that the state before the first epoch's end is surely seen
    batch = page.get_by_label("Batch size", exact=True)
    batch.fill("8")
    batch.press("Enter")
    page.wait_for_timeout(1000)  # the rerun that takes the new value
    page.get_by_role("button", name="Start").click()
    # both live charts drawn, read in the same frame as the check (a plot that plotly is still laying out has a
    # layout without its title yet)
    drawn = page.wait_for_function(f"() => {{ const cs = ({CHARTS})(); return cs.filter(c => c.title.startsWith("
                                   "'Training loss') || c.title === 'Accuracy per epoch').length >= 2 && cs; }",
                                   timeout=60_000)
    first = {c["title"]: c for c in drawn.json_value()}
    assert "Accuracy per epoch" in first, first
    acc = first["Accuracy per epoch"]
    assert acc["points"] == 0, "the first epoch cannot have ended yet"  # the state before data, seen
    assert acc["y"][0] == 0 and 1 <= acc["y"][1] <= 1.01, acc  # 0-100%, not plotly's placeholder -1..4
    assert any("Waiting for the first epoch" in n for n in acc["notes"]), acc
    loss = next(c for t, c in first.items() if t.startswith("Training loss"))
    # the untrained network's ln 10 = 2.30 in range: a log axis' range is in powers of ten
    top = 10 ** loss["y"][1] if loss["ytype"] == "log" else loss["y"][1]
    assert top >= 2.3 and (loss["ytype"] == "log" or loss["y"][0] >= 0), loss
    assert loss["points"] or any("Waiting" in n for n in loss["notes"]), loss

    # the other tab sees the new run by itself, without a reload
    t0 = time.monotonic()
    # any chart drawn: a live chart is replaced every second, and the one being drawn is briefly hidden; polled by
    # the clock, since a tab behind another gets no animation frames (Playwright's default polling)
    other.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot')].some(g => g.getClientRects()"
                            ".length && getComputedStyle(g).visibility !== 'hidden')", timeout=SECOND_TAB_DEADLINE_MS,
                            polling=200)
    print(f"\nthe other tab showed the new run {time.monotonic() - t0:.1f} s after this tab's charts appeared")

    page.wait_for_function(f"({CHARTS})().some(c => c.title.startsWith('Training loss') && c.points > 0)",
                           timeout=60_000)
    counts = [loss_points(page)]
    deadline = time.time() + 30
    while time.time() < deadline and len(set(counts)) < 3:  # no clicks: the fragment must poll by itself
        time.sleep(1.0)
        counts.append(loss_points(page))
    assert counts[-1] > counts[0], f"loss chart did not grow: {counts}"
    assert counts == sorted(counts)
    assert page.evaluate(SCROLLED) == 0
    for title, c in charts(page).items():  # both live charts in view at 1400x900, without scrolling
        assert 0 <= c["top"] and c["bottom"] <= VIEWPORT["height"] and c["width"] > 250, (title, c)
    time.sleep(2)
    page.screenshot(path=str(screenshots / "train-page.png"))
    if target := os.environ.get("README_SCREENSHOT"):  # only `make screenshot` sets it
        shutil.copyfile(screenshots / "train-page.png", target)

    page.get_by_role("button", name="Pause").click()
    other.get_by_role("button", name="Resume").wait_for(timeout=SECOND_TAB_DEADLINE_MS)
    page.get_by_role("button", name="Resume").click()
    page.get_by_role("button", name="Stop").click()
    page.get_by_text("stopped").first.wait_for(timeout=30_000)
    other.get_by_text("stopped").first.wait_for(timeout=SECOND_TAB_DEADLINE_MS)
    other.close()


PICKER = """() => { const box = document.querySelector('input[aria-label="Run shown"]'); return box ? box.value : ''; }"""


def test_picker_label_follows_the_run_to_its_end(server, browser_page):
    """A short run that finishes by itself: the "Run shown" box says "finished" as soon as the caption under the
    charts does. Catches a picker whose browser side keeps the label it got with its value ("· running") when only
    the label changed (Streamlit sends a keyed widget's value, with its label, only when the value changes)."""
    page = browser_page
    page.goto(f"{server}/train")
    page.get_by_role("heading", name="Train a network").wait_for(timeout=30_000)
    for label, value in (("Epochs", "1"), ("Batches per epoch (0 = all)", "30")):
        box = page.get_by_label(label, exact=True)
        box.fill(value)
        box.press("Enter")
        page.wait_for_timeout(800)  # the rerun that takes the new value
    page.get_by_role("button", name="Start").click()
    caption = page.get_by_test_id("stCaptionContainer").filter(has_text="finished ·")  # under the charts
    caption.first.wait_for(timeout=120_000)
    t0 = time.monotonic()
    deadline = time.monotonic() + 5  # the caption and the picker are redrawn by the same rerun
    while "· finished" not in (label := page.evaluate(PICKER)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "· finished" in label, f"5 s after the run ended, the picker still says: {label}"
    print(f"\nthe picker said finished {time.monotonic() - t0:.1f} s after the caption did: {label}")
