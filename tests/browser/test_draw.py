"""Draw digits with the mouse on the real canvas and read the prediction; prints mouse-up -> prediction latency.

    .venv/bin/python -m pytest -s tests/browser/test_draw.py     # the latency line is printed (and asserted)
"""
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
PREDICTION = re.compile(r"Prediction: (\d)")

# Strokes in canvas pixels (the canvas is 280 x 280), as a person would draw them.
DIGITS = {
    0: [[(140 + 55 * math.sin(t / 24 * 2 * math.pi), 140 - 85 * math.cos(t / 24 * 2 * math.pi)) for t in range(25)]],
    1: [[(150, 50), (145, 140), (140, 230)]],
    7: [[(80, 60), (200, 60)], [(200, 60), (150, 145), (115, 230)]],
}


def draw_stroke(page, box, points, steps_between=4) -> None:
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        for i in range(1, steps_between + 1):
            f = i / steps_between
            page.mouse.move(box["x"] + x0 + f * (x1 - x0), box["y"] + y0 + f * (y1 - y0))


def shown_prediction(page) -> str:
    texts = page.get_by_text(PREDICTION).all_inner_texts()
    return texts[0] if texts else ""


# Timed inside the page, so that the harness adds nothing: from the browser's mouseup event to the first frame
# that shows new logits (a mutation observer sees the "Logits: ..." caption change, requestAnimationFrame marks the
# next frame). The caption is looked up by itself: the element a mutation reports may hold the whole column.
TIMER_JS = """
window.__lat = {up: 0, frame: 0, pending: false, text: ''};
addEventListener('mouseup', () => Object.assign(window.__lat, {up: performance.now(), frame: 0, pending: false}), true);
new MutationObserver(() => {
  const lat = window.__lat;
  if (!lat.up || lat.frame || lat.pending) return;
  const text = [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
    .map(e => e.textContent || '').find(t => t.startsWith('Logits:')) || '';
  if (text && text !== lat.text) {
    lat.text = text;
    lat.pending = true;
    requestAnimationFrame(() => { lat.frame = performance.now(); });
  }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def core_ms(runs_dir, data_dir) -> float:
    """Median time of preprocess + predict_digit on a 280x280 drawing with the model the page uses."""
    from core.drawing.predict import predict_digit
    from core.drawing.preprocess import preprocess
    from core.store.runs import RunStore
    from tests.test_preprocess import SEVEN, canvas

    store = RunStore(runs_dir, data_dir)
    model, image = store.load_model(store.list()[0].id), canvas(SEVEN)
    times = []
    for _ in range(30):
        t0 = time.perf_counter()
        predict_digit(model, preprocess(image).model_input())
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def open_draw_page(page, server: str) -> None:
    """The Draw page, once it has settled: on a server's first visit it draws the drawing-like test set in the
    background and reruns itself when the set is there (ui/drawings.py), which would cut into the strokes."""
    page.goto(f"{server}/draw")
    page.get_by_text("Draw a digit on the canvas").wait_for(timeout=60_000)
    building = page.get_by_text("as mouse strokes on the canvas, to measure the models")
    wait_until(lambda: building.count() == 0, 240, 0.5, "the drawing-like test set and the page's rerun")


# Every drawing surface in the page (they sit in shadow roots): its size and whether it is laid out.
CANVASES = """() => { const found = [];
  const walk = root => root.querySelectorAll('*').forEach(e => {
    if (e.matches('canvas.upper-canvas')) { const r = e.getBoundingClientRect();
      found.push({w: r.width, h: r.height, top: r.top, connected: e.isConnected, shown: !!e.offsetParent}); }
    if (e.shadowRoot) walk(e.shadowRoot); });
  walk(document); return found; }"""


def draw_digits(page) -> tuple[list[float], dict[int, list[int]]]:
    """Draw each digit of DIGITS twice on the Draw page: (mouse-up -> prediction seconds per stroke, predictions)."""
    latencies, predicted = [], {}
    for digit, strokes in list(DIGITS.items()) * 2:
        # the newest visible canvas: after Clear (a new key mounts a fresh canvas) the old one may still be in the
        # page, hidden
        canvas = page.locator("canvas.upper-canvas").filter(visible=True).last
        try:
            canvas.wait_for(timeout=30_000)
        except Exception as e:
            raise AssertionError(f"no visible canvas; canvases in the page: {page.evaluate(CANVASES)}") from e
        box = canvas.bounding_box()
        for stroke in strokes:
            draw_stroke(page, box, stroke)
            page.mouse.up()
            # the page must change by itself after the stroke: no button press
            page.wait_for_function("() => window.__lat.frame > 0", timeout=20_000, polling=50)
            latencies.append(page.evaluate("() => window.__lat.frame - window.__lat.up") / 1000)
            page.wait_for_timeout(600)  # let the canvas' debounce window close before the next stroke
        predicted.setdefault(digit, []).append(int(PREDICTION.search(shown_prediction(page)).group(1)))
        page.get_by_role("button", name="Clear").click()
        page.get_by_text("Draw a digit on the canvas").wait_for(timeout=30_000)
    return latencies, predicted


def report(latencies: list[float], when: str) -> float:
    median_ms = statistics.median(latencies) * 1000
    print(f"\nmouse-up -> new prediction on screen (next frame, timed in the page){when}: median {median_ms:.0f} ms "
          f"over {len(latencies)} strokes (min {min(latencies) * 1000:.0f}, max {max(latencies) * 1000:.0f}); "
          "the canvas itself waits ~200 ms")
    return median_ms


@pytest.fixture(scope="module")
def draw_page(server, runs_dir, data_dir, browser_page):
    """The browser page with the latency timer, and a model trained on real MNIST inside the test (BN, 2 epochs:
    a few seconds on a CPU) for the Draw page to use."""
    out = subprocess.run([sys.executable, "-m", "core.train", "--bn", "--epochs", "2", "--runs-dir", str(runs_dir),
                          "--data-dir", data_dir, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    browser_page.add_init_script(TIMER_JS)
    return browser_page


def test_drawn_digits_are_recognised(server, runs_dir, data_dir, draw_page):
    page = draw_page
    open_draw_page(page, server)
    latencies, predicted = draw_digits(page)
    median_ms = report(latencies, "")
    print(f"preprocessing + inference of one drawing, in process: median {core_ms(runs_dir, data_dir):.2f} ms")
    assert predicted == {d: [d, d] for d in DIGITS}, predicted
    assert median_ms < 1000  # the 300 ms target is reported above; this only catches a broken update path


def start_long_run(train, server: str) -> None:
    """Start a run from the Train page, long enough to outlast the drawing, and wait until it trains."""
    train.bring_to_front()  # a tab behind another gets its timers and frames throttled (see below)
    train.goto(f"{server}/train")
    epochs = train.get_by_label("Epochs", exact=True)
    epochs.fill("100", timeout=60_000)
    epochs.press("Enter")
    train.wait_for_timeout(1000)  # the rerun that takes the new value
    train.get_by_role("button", name="Start", exact=True).click(timeout=60_000)
    train.get_by_role("button", name="Pause").wait_for(timeout=60_000)  # the run is live


def running(runs_dir: Path) -> list[str]:
    """Runs the server is training, read from their status files (a second RunStore could act on them)."""
    return [d.name for d in runs_dir.iterdir() if (d / "status.json").is_file()
            and json.loads((d / "status.json").read_text()).get("status") == "running"]


TRAIN_TAB_OPEN = pytest.mark.skipif(not os.environ.get("DRAW_LATENCY_TRAIN_TAB"), reason=(
    "a measurement, not a check: with the Train tab's live charts redrawn in the same headless browser, set "
    "DRAW_LATENCY_TRAIN_TAB=1 (make draw-latency does)"))


@pytest.mark.parametrize("train_tab", ["closed", pytest.param("open", marks=TRAIN_TAB_OPEN)])
def test_drawing_while_a_run_trains_in_the_server(server, runs_dir, draw_page, train_tab):
    """The same strokes while the server trains a run started from the Train page: the trainer thread and the
    Draw page share the server process and the cores (the CPU policy's case). Closed, the run goes on in the
    background; open, behind the Draw tab, its live view reruns once a second in the same browser and server too."""
    train = draw_page.context.new_page()
    try:
        start_long_run(train, server)
        if train_tab == "closed":
            train.close()
        page = draw_page
        # the tab a person draws in is the front one; left behind the newer Train tab, Chromium throttles the Draw
        # tab's timers (the canvas' debounce among them) to about one a second: 1.0-1.1 s a stroke, measured
        page.bring_to_front()
        open_draw_page(page, server)
        latencies, predicted = draw_digits(page)
        assert running(runs_dir), "the run stopped before the drawing ended"
        # every stroke got its prediction within draw_digits' deadline; the latency is reported, not asserted:
        # it depends on the machine and its load (benchmarks/README.md)
        report(latencies, f", a run training in the server, its Train tab {train_tab}")
        assert sorted(predicted) == sorted(DIGITS)
    finally:
        train.close()


def test_canvas_whole_and_drawable_at_800_px(server, draw_page):
    """At 800 px the canvas lies wholly inside the window, nothing covers its right side, a stroke along its whole
    width reaches the model, and Clear shows its whole label. Catches a column narrower than the canvas (at 800 px
    with a 300 px sidebar the canvas was cut to about 226 of its 280 px, and Clear showed as "C…")."""
    from tests.browser.conftest import NARROW, VIEWPORT

    page = draw_page
    page.set_viewport_size(NARROW)
    try:
        open_draw_page(page, server)
        canvas = page.locator("canvas.upper-canvas").filter(visible=True).last
        # in the middle of the window, as a learner scrolls to it ("if needed" leaves an element that shows all but
        # a fraction of a pixel where it is: 620.14 + 280 px in a 900 px window)
        canvas.evaluate("e => e.scrollIntoView({block: 'center'})")
        box = canvas.bounding_box()
        assert 279 <= box["width"] <= 281 and 279 <= box["height"] <= 281, box
        assert box["x"] >= 0 and box["x"] + box["width"] <= NARROW["width"], box
        assert box["y"] >= 0 and box["y"] + box["height"] <= NARROW["height"], box
        # what a click at the canvas' right edge lands on: the canvas itself (it sits in a shadow root)
        hit = page.evaluate("""([x, y]) => { let e = document.elementFromPoint(x, y);
            while (e && e.shadowRoot) { const inner = e.shadowRoot.elementFromPoint(x, y); if (!inner || inner === e) break; e = inner; }
            return e ? e.className : null; }""", [box["x"] + box["width"] - 4, box["y"] + box["height"] / 2])
        assert hit and "upper-canvas" in hit, hit
        # a 7 whose bar runs from near the left edge to near the right edge: its ink is as wide as the canvas
        draw_stroke(page, box, [(15, 40), (265, 40), (140, 260)])
        page.mouse.up()
        page.get_by_text(PREDICTION).first.wait_for(timeout=30_000)
        caption = page.get_by_text(re.compile(r"2 cropped to the ink \((\d+)x(\d+)\)")).first
        caption.wait_for(timeout=30_000)
        width = int(re.search(r"\((\d+)x", caption.inner_text()).group(1))
        assert width >= 250, f"the ink reached only {width} px across: the canvas' right side did not draw"
        clear = page.get_by_role("button", name="Clear")
        assert clear.evaluate("b => b.scrollWidth <= b.clientWidth && b.innerText.includes('Clear')"), \
            clear.inner_text()
        clear.click()
    finally:
        page.set_viewport_size(VIEWPORT)


# The saliency chart: its colour bar's fill, the heatmap's plot area, and the cell of the smallest value there.
SALIENCY = """() => { const g = [...document.querySelectorAll('.js-plotly-plot')]
    .find(p => ((p._fullLayout.title || {}).text || '').includes('Saliency'));  // the theme wraps it in <b>
  if (!g) return null;
  const bar = g.querySelector('.cbfill').getBoundingClientRect();
  const area = g.querySelector('.nsewdrag').getBoundingClientRect();
  const z = g.calcdata[0][0].z; let best = [0, 0, Infinity];  // the decoded 2-D values
  z.forEach((row, r) => row.forEach((v, c) => { if (v < best[2]) best = [r, c, v]; }));
  const xa = g._fullLayout.xaxis, ya = g._fullLayout.yaxis;
  return {bar: [bar.left, bar.top, bar.width, bar.height], min: best[2],
          cell: [area.left + xa.l2p(best[1]), area.top + ya.l2p(best[0])]}; }"""


def pixel(page, x: float, y: float) -> tuple[int, int, int]:
    """The colour Chromium drew at (x, y) of the window, read from a screenshot of that one pixel."""
    import io

    from PIL import Image

    png = page.screenshot(clip={"x": round(x), "y": round(y), "width": 1, "height": 1})
    return Image.open(io.BytesIO(png)).convert("RGB").getpixel((0, 0))


def test_saliency_zero_is_drawn_black(server, draw_page):
    """The saliency map's colour scale as drawn on screen: its zero end is Inferno's black (0, 0, 4), and the map's
    smallest cell has Inferno's colour for its value. Catches the theme's colour swap (Streamlit replaces the strings
    #000001-#000010 in a figure with its palette: Inferno's #000004 zero was drawn pink, about (242, 162, 165))."""
    import plotly.colors as pc

    page = draw_page
    open_draw_page(page, server)
    box = page.locator("canvas.upper-canvas").filter(visible=True).last.bounding_box()
    for stroke in DIGITS[7]:
        draw_stroke(page, box, stroke)
        page.mouse.up()
        page.wait_for_timeout(600)
    page.wait_for_function(f"() => {{ const s = ({SALIENCY})(); return s && s.bar[3] > 20; }}", timeout=30_000)
    page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')].find(p => ((p._fullLayout.title || {})
        .text || '').includes('Saliency')).scrollIntoView({block: 'center'})""")
    page.wait_for_timeout(1000)  # the chart's last frame, in view
    s = page.evaluate(SALIENCY)
    x, y, w, h = s["bar"]
    zero = pixel(page, x + w / 2, y + h - 2)  # the colour bar's bottom: the colour of 0
    assert max(abs(a - b) for a, b in zip(zero, (0, 0, 4))) <= 12, f"zero is drawn as {zero}, not black"
    expected = tuple(int(float(v)) for v in re.findall(r"[\d.]+", pc.sample_colorscale("Inferno", [s["min"]])[0]))
    cell = pixel(page, *s["cell"])
    assert max(abs(a - b) for a, b in zip(cell, expected)) <= 16, (cell, expected, s["min"])
    page.get_by_role("button", name="Clear").click()
