"""Lesson links on the BatchNorm lab, the Tuning lab and the Draw page: the settings a learner set come back in a
session opened from the page's own "Link to these settings", and a bad or stale parameter names itself in a notice
and keeps the default (never an exception). The Train page's link is tested in tests/test_class_mode.py."""
import sys
import types
from urllib.parse import parse_qsl, urlsplit

import pytest
from streamlit.testing.v1 import AppTest

from core import TrainConfig
from tests.waiting import open_part, wait_until
from ui import keys as K


@pytest.fixture
def pages(app_env, monkeypatch):
    monkeypatch.delenv("TEACHER_KEY", raising=False)
    fake = types.ModuleType("streamlit_drawable_canvas")  # the real one imports only inside a running server
    fake.st_canvas = lambda **kw: types.SimpleNamespace(image_data=None, json_data={"objects": []})
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", fake)
    return app_env


def opened(page: str, params: dict[str, str]) -> AppTest:
    at = AppTest.from_file("../app.py", default_timeout=120).run()
    at.switch_page(page)
    at.query_params.update(params)
    return at.run()


def link_of(at: AppTest) -> dict[str, str]:
    """The query of the URL the page's "Link to these settings" shows."""
    (link,) = [c.value for c in at.code if "?" in c.value]
    return dict(parse_qsl(urlsplit(link).query))


def warning_of(at: AppTest) -> str:
    return " ".join(w.value for w in at.warning).replace("\\", "")  # markdown escapes taken out


def test_the_batchnorm_labs_settings_and_tab_round_trip(pages):
    """Catches a lab whose options a teacher cannot hand out: every option (dataset, epochs, seeds, learning rate,
    batches) and the open tab come back from the link; a value off the page's own choices is refused by name."""
    at = opened("pages/batchnorm.py", {})
    at.selectbox(key=K.BN_DATASET).set_value("fashion-mnist")
    at.number_input(key=K.BN_EPOCHS).set_value(2)
    at.number_input(key=K.BN_SEEDS).set_value(4)
    at.select_slider(key=K.BN_LR).set_value(0.01)
    at.number_input(key=K.BN_MAX_BATCHES).set_value(7).run()
    open_part(at, K.BN_TAB, "Learning-rate headroom")
    params = link_of(at)
    assert params == {"dataset": "fashion-mnist", "epochs": "2", "seeds": "4", "lr": "0.01", "max_batches": "7",
                      "part": "learning-rate-headroom"}
    b = opened("pages/batchnorm.py", params)
    assert not b.exception and not b.warning
    assert (b.selectbox(key=K.BN_DATASET).value, b.number_input(key=K.BN_EPOCHS).value,
            b.number_input(key=K.BN_SEEDS).value, b.select_slider(key=K.BN_LR).value,
            b.number_input(key=K.BN_MAX_BATCHES).value, b.session_state[K.BN_TAB]) == \
        ("fashion-mnist", 2, 4, 0.01, 7, "Learning-rate headroom")

    bad = opened("pages/batchnorm.py", {"lr": "0.5", "seeds": "9", "part": "nope", "epochs": "3", "dataset": "cifar"})
    assert not bad.exception
    said = warning_of(bad)
    assert all(f"{name}=" in said for name in ("lr", "seeds", "part", "dataset")) and "epochs=" not in said
    assert (bad.select_slider(key=K.BN_LR).value, bad.number_input(key=K.BN_SEEDS).value,
            bad.number_input(key=K.BN_EPOCHS).value, bad.selectbox(key=K.BN_DATASET).value) == (1e-3, 3, 3, "mnist")


def test_a_tuning_lesson_round_trips(pages):
    """Catches a tuning lesson that cannot be linked to: the budget and the lesson's tab come back."""
    at = opened("pages/tuning.py", {})
    at.number_input(key=K.TUNE_EPOCHS).set_value(2)
    at.number_input(key=K.TUNE_BATCHES).set_value(50).run()
    open_part(at, K.TUNE_TAB, K.TUNE_PARTS[2])
    params = link_of(at)
    assert params["epochs"] == "2" and params["max_batches"] == "50"
    b = opened("pages/tuning.py", params)
    assert not b.exception and not b.warning
    assert (b.number_input(key=K.TUNE_EPOCHS).value, b.number_input(key=K.TUNE_BATCHES).value,
            b.session_state[K.TUNE_TAB]) == (2, 50, K.TUNE_PARTS[2])
    bad = opened("pages/tuning.py", {"epochs": "0", "lesson": "the-best-one"})
    assert not bad.exception and "epochs=0" in warning_of(bad) and "lesson=the-best-one" in warning_of(bad)
    assert bad.number_input(key=K.TUNE_EPOCHS).value == 3


def test_the_draw_pages_models_round_trip(pages):
    """Catches a Draw page that opens on its own default model whatever the link said, or fails on a model that is
    gone (deleted since the link was made)."""
    from ui.registry import get_store

    store = get_store()
    first = store.start(TrainConfig(epochs=1, max_batches=3, seed=1), name="first").id
    second = store.start(TrainConfig(epochs=1, max_batches=3, seed=2, batch_norm=True), name="second").id
    wait_until(lambda: not any(r.live for r in store.list()), 120, what="two tiny runs")
    at = opened("pages/draw.py", {})
    at.selectbox(key=K.DRAW_MODEL).set_value(first)
    at.toggle(key=K.DRAW_COMPARE).set_value(True).run()
    at.selectbox(key=K.DRAW_COMPARE_MODEL).set_value(second).run()
    params = link_of(at)
    assert params == {"model": first, "compare": "true", "second_model": second}
    b = opened("pages/draw.py", params)
    assert not b.exception and not b.warning
    assert (b.selectbox(key=K.DRAW_MODEL).value, b.toggle(key=K.DRAW_COMPARE).value,
            b.selectbox(key=K.DRAW_COMPARE_MODEL).value) == (first, True, second)
    gone = opened("pages/draw.py", {"model": "20200101-000000-abcdef"})
    assert not gone.exception and "model=20200101-000000-abcdef" in warning_of(gone)
    assert gone.selectbox(key=K.DRAW_MODEL).value in (first, second)
