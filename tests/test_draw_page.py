"""AppTest for the Draw page, with the canvas monkeypatched to return a drawing."""
import sys
import types

import pytest
from streamlit.testing.v1 import AppTest

from core import TrainConfig
from tests.test_preprocess import SEVEN, SEVEN_SMALL_CORNER, canvas
from ui import keys as K


@pytest.fixture
def draw(app_env, monkeypatch):
    state = {"image": None}
    fake = types.ModuleType("streamlit_drawable_canvas")  # the real one imports only inside a running server
    fake.st_canvas = lambda **kw: types.SimpleNamespace(image_data=state["image"], json_data={"objects": []})
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", fake)
    return AppTest.from_file("../app.py", default_timeout=120).run(), state


def test_no_model_offers_quick_training(draw):
    at, _ = draw
    at.switch_page("pages/draw.py").run()
    assert not at.exception
    assert "No trained MNIST model yet" in " ".join(i.value for i in at.info)
    assert at.button(key=K.DRAW_QUICK_TRAIN)


def test_blank_then_drawn_digit_and_save(draw):
    at, state = draw
    from ui.registry import get_store
    store = get_store()
    run = store.start(TrainConfig(batch_norm=True, epochs=1, max_batches=300))
    store.trainer(run.id).join(120)
    at.switch_page("pages/draw.py").run()
    assert not at.exception
    assert any("Draw a digit" in i.value for i in at.info)  # blank canvas: no prediction
    assert not any("Prediction" in m.value for m in at.markdown)
    state["image"] = canvas(SEVEN)
    at.run()
    assert not at.exception
    shown = " ".join(m.value for m in at.markdown)
    assert "**Prediction: 7**" in shown
    at.number_input(key=K.DRAW_LABEL).set_value(7)
    at.button(key=K.DRAW_SAVE).click().run()
    assert "100.0%" in " ".join(m.value for m in at.metric)
    from core.drawing.collection import DrawingStore
    (saved,) = DrawingStore().list()
    assert saved.label == 7 and saved.input28().shape == (28, 28)


def test_bn_model_classifies_single_image_in_eval_mode(data_dir, tmp_path):
    from core.drawing.predict import predict_digit, saliency_map
    from core.drawing.preprocess import preprocess
    from core.store.runs import RunStore
    store = RunStore(tmp_path, data_dir)
    run = store.start(TrainConfig(batch_norm=True, epochs=1, max_batches=300))
    store.trainer(run.id).join(120)
    model = store.load_model(run.id)
    model.train()  # predict_digit must switch to eval: one image has no batch statistics
    p = predict_digit(model, preprocess(canvas(SEVEN)).model_input())
    x = preprocess(canvas(SEVEN)).model_input()
    assert p.top == 7 and p.probs.sum() == pytest.approx(1, abs=1e-5) and saliency_map(model, x).shape == (28, 28)
    assert not model.training
    small = predict_digit(model, preprocess(canvas(SEVEN_SMALL_CORNER, 5)).model_input())
    assert small.top == p.top == 7  # drawn small in a corner or large in the middle: the same answer
