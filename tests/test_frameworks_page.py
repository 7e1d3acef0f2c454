"""AppTest: the Frameworks page (listings, live defaults, a quick twin run), the framework option on the Train
page, and a Keras run chosen on the Draw page."""
import json
import sys
import types

import pytest
from streamlit.testing.v1 import AppTest

from core.lessons.frameworks import pytorch_listing
from tests.test_preprocess import SEVEN, canvas
from tests.waiting import wait_until
from ui import keys as K

TIMEOUT = 240


@pytest.fixture
def app(app_env, monkeypatch):
    state = {"image": None}
    fake = types.ModuleType("streamlit_drawable_canvas")  # the real one imports only inside a running server
    fake.st_canvas = lambda **kw: types.SimpleNamespace(image_data=state["image"], json_data={"objects": []})
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", fake)
    return AppTest.from_file("../app.py", default_timeout=TIMEOUT).run(), state


def shown(at) -> str:
    return " ".join(str(e.value) for coll in (at.markdown, at.caption, at.info, at.error) for e in coll)


def test_frameworks_page_twin_run_then_draw_with_the_keras_model(app):
    at, state = app
    at.switch_page("pages/frameworks.py").run()
    assert not at.exception
    text = shown(at)
    code = pytorch_listing().code.splitlines()  # the double softmax, pointed out where the listing has it
    softmax_line = next(i for i, line in enumerate(code, 1) if "torch.softmax(z, dim=1) if self.double_softmax" in line)
    assert f"line {softmax_line}:" in text and "1.461" in text
    assert "No twin runs yet" in text and "is not on disk" not in text
    assert not at.button(key=K.FW_START).disabled
    table = at.table[0].value
    assert len(table) == 9 and "0.99: weight of the OLD running value" in set(table["Keras"])
    at.number_input(key=K.FW_EPOCHS).set_value(1)
    at.number_input(key=K.FW_MAX_BATCHES).set_value(20)
    at.toggle(key=K.FW_MATCH).set_value(True).run()
    at.radio(key=K.FW_SWITCH_BACK).set_value("adam_eps").run()
    assert "keras_defaults = pytorch-but-adam_eps" in shown(at)
    assert "Both: about" in shown(at) and "on this machine" in shown(at)  # the duration, before it starts
    code = [c.value for c in at.code]
    assert any(c.startswith("model = nn.Sequential(") for c in code)  # the course-style listings side by side
    assert any(c.startswith("model = keras.Sequential([") for c in code)
    assert [e.label for e in at.expander][0].startswith("The modules themselves")
    at.button(key=K.FW_START).click().run()
    assert not at.exception
    from ui.registry import get_store

    store = get_store()
    runs = {r.config.framework: r for r in store.list()}
    assert set(runs) == {"pytorch", "keras"} and runs["keras"].config.keras_defaults == "pytorch-but-adam_eps"
    assert runs["pytorch"].group == runs["keras"].group and runs["keras"].config.seed == runs["pytorch"].config.seed
    wait_until(lambda: not any(r.live for r in store.list()), TIMEOUT, 0.1, "both runs to end")
    at.run()
    assert not at.exception
    assert all(r.snapshot.status == "finished" for r in store.list()), [r.snapshot.error for r in store.list()]
    assert "the training losses agree within 0.1%" in shown(at) and "they differ by at most" in shown(at)
    # The yardstick: the PyTorch twin replayed in float64, beside the Keras gap, on request
    assert "How far apart should the curves be?" in shown(at)
    at.button(key=K.FW_YARDSTICK).click().run()
    assert not at.exception
    (table,) = [d.value for d in at.dataframe if "compared" in d.value.columns]
    assert list(table["compared"]) == ["Keras vs PyTorch (both float32)",
                                       "PyTorch float32 vs the same run in float64 (the yardstick)"]
    assert "the Keras gap is" in shown(at) and "× the yardstick's" in shown(at)
    (result,) = [d.value for d in at.dataframe if "framework" in d.value.columns]
    assert list(result["framework"]) == ["PyTorch", "Keras"] and list(result["epochs done"]) == [1, 1]
    assert all(acc.endswith("%") for acc in result["final test acc"])
    charts = {json.loads(c.proto.spec)["layout"]["title"]["text"].split(" (")[0]: json.loads(c.proto.spec)["layout"]
              for c in at.get("plotly_chart")}
    assert charts["Training loss"]["xaxis"]["range"] == [0, 20]  # the whole planned run: 1 epoch x 20 batches
    assert charts["Accuracy per epoch"]["yaxis"]["tickformat"].endswith("%")
    # The Keras run on the Draw page, classifying a drawing with the PyTorch model that holds its weights
    at.switch_page("pages/draw.py").run()
    keras_run = next(r for r in store.list() if r.config.framework == "keras")
    at.selectbox(key=K.DRAW_MODEL).set_value(keras_run.id)
    state["image"] = canvas(SEVEN)
    at.run()
    assert not at.exception
    assert "**Prediction:" in " ".join(m.value for m in at.markdown)


def test_train_page_offers_the_framework_and_only_what_applies(app):
    at, _ = app
    at.switch_page("pages/train.py").run()
    assert at.selectbox(key=K.TRAIN + "_framework").value == "pytorch"
    assert at.toggle(key=K.TRAIN_DOUBLE_SOFTMAX) and not [s for s in at.selectbox if s.key == K.TRAIN + "_keras_defaults"]
    at.selectbox(key=K.TRAIN + "_framework").set_value("keras").run()
    assert not at.exception
    keys = {w.key for coll in (at.selectbox, at.toggle, at.select_slider) for w in coll}
    assert K.TRAIN + "_keras_defaults" in keys
    assert not keys & {K.TRAIN_DOUBLE_SOFTMAX, K.TRAIN_OPTIMIZER, K.TRAIN_PRECISION, K.TRAIN + "_eps"}
    at.selectbox(key=K.TRAIN + "_keras_defaults").set_value("pytorch").run()
    assert K.TRAIN + "_eps" in {w.key for w in at.select_slider}  # PyTorch's ε now applies to the Keras run


def test_streamlit_leaves_keras_state_alone(monkeypatch):
    """Streamlit clears Keras' session after every script run (ui/keras_guard.py says why that breaks a Keras run
    training in another thread); importing ui replaces that cleanup. This fails when Streamlit renames it."""
    import inspect

    from streamlit.runtime.scriptrunner import script_runner

    import ui  # noqa: F401
    from ui.keras_guard import _clean_problem_modules_but_keras

    assert "_log_if_error(_clean_problem_modules)" in inspect.getsource(script_runner.ScriptRunner), "the cleanup moved"
    assert "backend.clear_session()" in inspect.getsource(script_runner)  # Streamlit still does it (else drop the guard)
    assert script_runner._clean_problem_modules is _clean_problem_modules_but_keras
    calls = []
    fake = types.SimpleNamespace(backend=types.SimpleNamespace(clear_session=lambda: calls.append(1)))
    monkeypatch.setitem(sys.modules, "keras", fake)
    script_runner._clean_problem_modules()
    assert calls == []
