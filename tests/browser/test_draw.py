"""Draw digits with the mouse on the real canvas and read the prediction; prints mouse-up -> prediction latency.

    .venv/bin/python -m pytest -s tests/browser/test_draw.py     # the latency line is printed (and asserted)
"""
import math
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

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


def test_drawn_digits_are_recognised(server, runs_dir, data_dir, browser_page):
    # A model trained on real MNIST, inside the test (BN, 2 epochs: a few seconds on a CPU).
    out = subprocess.run([sys.executable, "-m", "core.train", "--bn", "--epochs", "2", "--runs-dir", str(runs_dir),
                          "--data-dir", data_dir, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    page = browser_page
    page.add_init_script(TIMER_JS)
    page.goto(f"{server}/draw")
    page.get_by_text("Draw a digit on the canvas").wait_for(timeout=60_000)
    latencies, predicted = [], {}
    for digit, strokes in list(DIGITS.items()) * 2:
        canvas = page.locator("canvas.upper-canvas")
        canvas.wait_for(timeout=30_000)
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
    median_ms = statistics.median(latencies) * 1000
    print(f"\nmouse-up -> new prediction on screen (next frame, timed in the page): median {median_ms:.0f} ms over {len(latencies)} strokes "
          f"(min {min(latencies) * 1000:.0f}, max {max(latencies) * 1000:.0f}); the canvas itself waits ~200 ms")
    print(f"preprocessing + inference of one drawing, in process: median {core_ms(runs_dir, data_dir):.2f} ms")
    assert predicted == {d: [d, d] for d in DIGITS}, predicted
    assert median_ms < 1000  # the 300 ms target is reported above; this only catches a broken update path
