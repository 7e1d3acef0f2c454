"""The drawing-like test set: MNIST test digits redrawn as mouse strokes and preprocessed like the Draw page."""
import json
import os

import numpy as np
import pytest
import torch
from scipy import ndimage

from core.drawing import drawing_set as D
from core.drawing.preprocess import CENTRE, center_of_mass
from core.engine.config import TrainConfig
from core.engine.data import load_dataset
from core.engine.strokes import thin

N = 120  # digits per test: the whole set takes seconds to draw


@pytest.fixture(scope="module")
def test_split(data_dir):
    d = load_dataset("mnist", data_dir)
    return d.test_x[:N], d.test_y[:N]


def test_same_seed_same_drawings_other_seed_others(test_split):
    x, y = test_split
    a, b, c = D.build_drawing_set(x, y, 0), D.build_drawing_set(x, y, 0), D.build_drawing_set(x, y, 1)
    assert a.x.shape == (N, 28, 28) and a.x.dtype == torch.uint8
    assert torch.equal(a.x, b.x) and a.key == b.key
    assert torch.equal(a.y, y)  # the MNIST labels
    assert (a.x != c.x).flatten(1).any(1).float().mean() > 0.9 and a.key != c.key


def test_digit_i_is_drawn_the_same_whatever_the_set_size():
    few, many = D.draw_params(10, 7), D.draw_params(500, 7)
    for name in few.__dataclass_fields__:
        assert np.array_equal(getattr(few, name), getattr(many, name)[:10])


def test_preprocessing_the_ink_window_equals_preprocessing_the_whole_canvas(test_split):
    """The set preprocesses only the part of the canvas around the ink, for speed: the same model input."""
    images = test_split[0].numpy()[:60]
    for full, window in zip(D.canvas_drawings(images, 0, full=True), D.canvas_drawings(images, 0)):
        assert full.shape == (D.CANVAS, D.CANVAS)
        assert np.array_equal(D.model_input(full), D.model_input(window))


def test_drawings_are_canvas_sized_with_canvas_strokes(test_split):
    images = test_split[0].numpy()
    p = D.draw_params(N, 0)
    for i, ink in enumerate(D.canvas_drawings(images, 0, full=True)):
        rows, cols = np.nonzero(ink)
        assert rows.min() > 0 and cols.min() > 0 and rows.max() < D.CANVAS - 1 and cols.max() < D.CANVAS - 1
        height = rows.max() - rows.min() + 1
        assert D.HEIGHT[0] * D.CANVAS - 2 <= height <= D.HEIGHT[1] * D.CANVAS  # a third to all of the canvas
        assert height == pytest.approx(p.height[i], abs=3) or height < p.height[i]  # shrunk only to fit across
        stroke = np.clip(p.rel_stroke[i] * p.height[i], *D.STROKE_PX)
        # the stroke's width: twice the distance from its centre line to the nearest blank pixel
        inside = ink > 127
        width = 2 * np.median(ndimage.distance_transform_edt(inside)[thin(inside[None])[0]])
        assert width == pytest.approx(stroke, abs=2.5)


def test_strokes_range_from_thinner_to_thicker_than_mnist(data_dir):
    """MNIST's own stroke width relative to the digit's height, measured from the training data: the drawings'
    range reaches past it on both sides."""
    x = load_dataset("mnist", data_dir).train_x[:5000].numpy()
    ink = x >= 128
    width = x.sum((1, 2)) / 255 / thin(ink).sum((1, 2))
    rows = ink.any(2)
    height = 28 - rows.argmax(1) - rows[:, ::-1].argmax(1)
    rel = width / height
    assert D.REL_STROKE[0] < np.percentile(rel, 5) and D.REL_STROKE[1] > np.percentile(rel, 95)
    assert np.median(rel) == pytest.approx(0.137, abs=0.01)  # the figure quoted next to REL_STROKE


def test_model_inputs_are_placed_as_mnist_places_digits(test_split):
    ds = D.build_drawing_set(*test_split, 0)
    for img in ds.x.numpy():
        r, c = center_of_mass(img)
        assert abs(r - CENTRE) <= 0.5 and abs(c - CENTRE) <= 0.5
        rows, cols = np.nonzero(img >= 8)
        assert max(np.ptp(rows), np.ptp(cols)) + 1 in (20, 21, 22)  # longer side 20 px, plus the anti-aliasing


# --- a run's accuracy on drawings, kept with the run -------------------------------------------
@pytest.fixture
def small_set(monkeypatch):
    monkeypatch.setattr(D, "SIZE", N)
    monkeypatch.setattr(D, "_results", {})


def trained(store, **kw):
    run = store.start(TrainConfig(batch_norm=True, epochs=1, max_batches=40, **kw))
    store.trainer(run.id).join(120)
    assert store.get(run.id).snapshot.status == "finished"
    return run.id


def test_run_accuracy_is_measured_once_and_kept_with_the_run(store, small_set, monkeypatch):
    run_id = trained(store)
    assert D.needs_measuring(store, store.get(run_id))
    acc = D.run_accuracy(store, run_id)
    ds = D.drawing_set(store.data_dir, n=N)
    assert acc == D.accuracy_on(store.load_model(run_id), ds) and 0.3 < acc <= 1
    saved = json.loads((store.root / run_id / D.RESULT_FILE).read_text())
    assert saved["accuracy"] == acc and saved["key"] == D.set_key() == ds.key
    assert not D.needs_measuring(store, store.get(run_id))
    monkeypatch.setattr(D, "_results", {})  # a new process: read from the run folder, not measured
    monkeypatch.setattr(D, "accuracy_on", lambda *a: pytest.fail("measured again"))
    assert D.run_accuracy(store, run_id) == acc


def test_new_weights_or_another_set_are_measured_again(store, small_set):
    run_id = trained(store)
    D.run_accuracy(store, run_id)
    weights = store.root / run_id / "weights.safetensors"
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # weights saved again
    assert D.stored_accuracy(store, run_id) is None and D.needs_measuring(store, store.get(run_id))
    assert D.run_accuracy(store, run_id) is not None
    saved = json.loads((store.root / run_id / D.RESULT_FILE).read_text())
    (store.root / run_id / D.RESULT_FILE).write_text(json.dumps({**saved, "key": "another recipe"}))
    D._results.clear()
    assert D.stored_accuracy(store, run_id) is None


def test_runs_that_cannot_be_measured(store, small_set):
    fashion = trained(store, dataset="fashion-mnist")
    assert D.run_accuracy(store, fashion) is None and not D.needs_measuring(store, store.get(fashion))
    damaged = trained(store)
    (store.root / damaged / "weights.safetensors").write_bytes(b"not safetensors")
    assert D.run_accuracy(store, damaged) is None
    assert not D.needs_measuring(store, store.get(damaged))  # not tried again on every page refresh
    (store.root / damaged / D.RESULT_FILE).write_text("{broken")
    assert D.stored_accuracy(store, damaged) is None
