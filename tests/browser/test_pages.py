"""Every page as a learner sees it, over a runs folder with lab runs in it (a BatchNorm twin set and a learning-rate
sweep, trained on real MNIST before the server's first page view): a screenshot of each at 1400x900 and at 800 px,
nothing wider than the window at 800 px, and the BatchNorm lab's two arms in one colour each on every chart."""
import re
import time

import pytest

from tests.browser.conftest import NARROW, VIEWPORT, page_urls
from tests.waiting import wait_until

SETTLED = """() => document.querySelector('[data-testid="stApp"]')?.getAttribute('data-test-script-state') === 'notRunning'
  && !document.querySelector('[data-testid="stSkeleton"]')"""
# Every trace's colours (line, markers, band fill, bars) by legend group, on every chart in the page.
TRACE_COLOURS = """() => [...document.querySelectorAll('.js-plotly-plot')].filter(g => g.getClientRects().length)
  .map(g => ({title: ((g._fullLayout.title || {}).text || ''), traces: (g._fullData || []).map(t => ({
    group: t.legendgroup || '', type: t.type,
    colours: [t.line && t.mode && t.mode.includes('lines') && (t.line.width ?? 1) > 0 ? t.line.color : null,
              t.mode && t.mode.includes('markers') && typeof t.marker.color === 'string' ? t.marker.color : null,
              t.fill && t.fill !== 'none' ? t.fillcolor : null,
              t.type === 'bar' ? (Array.isArray(t.marker.color) ? t.marker.color : [t.marker.color]) : null]
      .flat().filter(c => c)}))}))"""


def rgb(colour: str) -> tuple[int, int, int]:
    """'#rrggbb', 'rgb(r, g, b)' or 'rgba(r, g, b, a)' -> (r, g, b): a band's transparent fill is its line's colour."""
    if colour.startswith("#"):
        return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    r, g, b = (int(float(v)) for v in re.findall(r"[\d.]+", colour)[:3])
    return r, g, b


@pytest.fixture(scope="module")
def lab_runs(runs_dir, data_dir):
    """A BatchNorm twin set (2 seeds per arm, 2 short epochs, with the lab's probes) and a learning-rate sweep, written
    by the run store itself before the server reads the folder (it does at its first page view)."""
    from core import RunStore, TrainConfig
    from core.lessons.batchnorm import start_lr_sweep, start_twins

    store = RunStore(runs_dir, data_dir)
    store.start(TrainConfig(epochs=1, max_batches=100), name="mine")  # a run of the learner's, to evaluate
    start_twins(store, TrainConfig(epochs=2, max_batches=40), [0, 1])
    start_lr_sweep(store, TrainConfig(epochs=1, max_batches=20))
    wait_until(lambda: not any(r.live for r in store.list()), 600, 0.2, "the lab runs to finish")
    assert all(r.snapshot.status == "finished" for r in store.list()), [r.snapshot for r in store.list()]
    return runs_dir


def settle(page, quiet_s: float = 1.0) -> None:
    """Until the script has stopped and the page has not changed for `quiet_s` (charts drawn)."""
    page.wait_for_function(SETTLED, timeout=120_000)
    page.evaluate("() => { window.__changed = performance.now(); new MutationObserver(() => "
                  "{ window.__changed = performance.now(); }).observe(document.body, {subtree: true, childList: true,"
                  " attributes: true, characterData: true}); }")
    page.wait_for_function(f"() => performance.now() - window.__changed > {quiet_s * 1000} && ({SETTLED})()",
                           timeout=120_000, polling=200)


def test_every_page_at_1400_and_800_px(lab_runs, server, browser_page, screenshots):
    """Each page opened by its URL at 1400x900 and at 800x900, a screenshot of each (looked at before a page is called
    done), no exception shown, and at 800 px nothing in the main area wider than the window (a layout that needs
    sideways scrolling there would cut off a canvas, a metric or a button)."""
    page = browser_page
    page.set_viewport_size(VIEWPORT)
    page.goto(server)
    pages = page_urls(page, server)
    assert len(pages) >= 8
    for size in (VIEWPORT, NARROW):
        page.set_viewport_size(size)
        for name, url in pages:
            page.goto(url)
            page.locator("h1").first.wait_for(timeout=60_000)
            settle(page)
            assert page.get_by_test_id("stException").count() == 0, name
            page.screenshot(path=str(screenshots / f"page-{name}-{size['width']}.png"))
            sideways = page.evaluate("() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
                                     " return [m.scrollWidth, m.clientWidth]; }")
            assert sideways[0] <= sideways[1] + 1, (name, size, sideways)
    page.set_viewport_size(VIEWPORT)


def test_batchnorm_lab_one_colour_per_arm(lab_runs, server, browser_page, screenshots):
    """Every chart of the lab (twins, inside the network, the sweep) draws the BN arm in one colour and the no-BN arm
    in another: loss and accuracy bands, percentile panels, gradient norms, BN's statistics, γ and β, the sweep.
    Catches charts that colour by position in their own legend (the percentile chart once showed BN after BN in
    red, the no-BN colour of the charts above it, and no-BN in green)."""
    page = browser_page
    page.set_viewport_size(VIEWPORT)
    page.goto(f"{server}/batchnorm")
    page.get_by_role("heading", name="BatchNorm lab").wait_for(timeout=60_000)
    seen: dict[str, set] = {"BN": set(), "no-BN": set()}
    charts_with: dict[str, int] = {"BN": 0, "no-BN": 0}
    for tab, expected in (("Twins: BN vs no-BN", 2), ("Inside the network", 6), ("Learning-rate headroom", 1)):
        page.get_by_role("tab", name=tab).click()
        deadline = time.time() + 60
        while len(charts := page.evaluate(TRACE_COLOURS)) < expected and time.time() < deadline:
            time.sleep(0.3)
        settle(page)
        charts = page.evaluate(TRACE_COLOURS)
        assert len(charts) >= expected, (tab, [c["title"] for c in charts])
        page.screenshot(path=str(screenshots / f"batchnorm-{tab.split(':')[0].replace(' ', '-').lower()}.png"),
                        full_page=True)
        for chart in charts:
            arms = set()
            for t in chart["traces"]:
                if t["group"] in seen:
                    seen[t["group"]] |= {rgb(c) for c in t["colours"]}
                    arms.add(t["group"])
            for a in arms:
                charts_with[a] += 1
    assert charts_with["BN"] >= 9 and charts_with["no-BN"] >= 5, charts_with  # every chart of an arm counted
    assert len(seen["BN"]) == 1 and len(seen["no-BN"]) == 1, seen
    assert seen["BN"] != seen["no-BN"], seen


def test_a_click_on_a_confusion_cell_shows_that_pairs_mistakes(lab_runs, server, browser_page, screenshots):
    """Evaluate a run, click the off-diagonal cell with the most errors: the gallery's heading names that pair
    and its count, and every caption under the images is that pair; "Show every pair" brings the whole gallery
    back. Catches a click that is not read (plotly selects no heatmap cell) and a filter that keeps other pairs."""
    page = browser_page
    page.set_viewport_size(VIEWPORT)
    page.goto(f"{server}/runs")
    page.get_by_role("tab", name="Evaluate a run").click()
    page.get_by_text("Misclassified test images, highest loss first").wait_for(timeout=120_000)
    settle(page)
    cell = page.evaluate("""() => { const g = [...document.querySelectorAll('.js-plotly-plot')]
        .find(p => ((p._fullLayout.title || {}).text || '').includes('Confusion matrix'));
      g.scrollIntoView({block: 'center'});  // a click lands only inside the window
      const t = g._fullData[0]; let best = -1;  // trace 0: the off-diagonal cells
      t.marker.color.forEach((v, i) => { if (best < 0 || v > t.marker.color[best]) best = i; });
      const area = g.querySelector('.nsewdrag').getBoundingClientRect();
      return {x: area.left + g._fullLayout.xaxis.d2p(t.x[best]), y: area.top + g._fullLayout.yaxis.d2p(t.y[best]),
              true: t.y[best], predicted: t.x[best], count: t.text[best]}; }""")
    page.mouse.click(cell["x"], cell["y"])
    heading = page.get_by_test_id("stMarkdownContainer").filter(
        has_text=f"True {cell['true']}, read as {cell['predicted']}").first
    heading.wait_for(timeout=60_000)
    assert f": {cell['count']} of the" in heading.inner_text(), (heading.inner_text(), cell)
    settle(page)
    captions = page.get_by_test_id("stImageCaption").all_inner_texts()
    assert captions and all(c.startswith(f"{cell['true']}→{cell['predicted']} ") for c in captions), captions
    page.screenshot(path=str(screenshots / "runs-confusion-pair.png"), full_page=True)
    page.get_by_role("button", name="Show every pair").click()
    page.get_by_text("Misclassified test images, highest loss first").wait_for(timeout=60_000)
