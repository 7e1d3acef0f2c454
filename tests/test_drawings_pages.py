"""The Draw and Runs pages with each model's accuracy on the drawing-like set (AppTest)."""
import json
import sys
import types

import pytest
from streamlit.testing.v1 import AppTest

from core import TrainConfig
from core.drawing import drawing_set as D
from tests.waiting import wait_until
from ui import keys as K
from ui.drawings import COLUMN, MEASURING


@pytest.fixture
def app(app_env, monkeypatch):
    fake = types.ModuleType("streamlit_drawable_canvas")  # the real one imports only inside a running server
    fake.st_canvas = lambda **kw: types.SimpleNamespace(image_data=None, json_data={"objects": []})
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", fake)
    monkeypatch.setattr(D, "_results", {})
    for cache in ("_sets", "_building", "_errors"):  # sets another test of this process built (same SIZE) are gone
        monkeypatch.setattr(D, cache, {})
    return AppTest.from_file("../app.py", default_timeout=120).run()


def trained(name: str, max_batches: int, seed: int = 0, **kw) -> str:
    from ui.registry import get_store

    store = get_store()
    run = store.start(TrainConfig(batch_norm=True, epochs=1, max_batches=max_batches, seed=seed, **kw), name=name)
    store.trainer(run.id).join(120)
    assert store.get(run.id).snapshot.status == "finished"
    return run.id


def measured_as(run_id: str, acc: float) -> None:
    """Keep a number in the run folder as run_accuracy does (a test stand-in for measuring on 10,000 drawings)."""
    from ui.registry import get_store

    run_dir = get_store().root / run_id
    (run_dir / D.RESULT_FILE).write_text(json.dumps({"key": D.set_key(), "weights": list(D._weights_stat(run_dir)),
                                                     "accuracy": acc}))


def test_draw_page_picks_the_model_that_reads_drawings_best(app):
    from ui.registry import get_store

    good_on_mnist = trained("more MNIST", 200)
    good_on_drawings = trained("reads drawings", 40, seed=1)
    assert get_store().get(good_on_mnist).snapshot.final.test_acc > get_store().get(good_on_drawings).snapshot.final.test_acc
    measured_as(good_on_mnist, 0.80)
    measured_as(good_on_drawings, 0.90)
    app.switch_page("pages/draw.py").run()
    assert not app.exception
    assert app.selectbox(key=K.DRAW_MODEL).value == good_on_drawings
    assert "On drawings: **90.0%** of 10,000" in " ".join(m.value for m in app.markdown)

    better = trained("reads drawings better", 40, seed=2)  # a newer, better model: the default follows it
    measured_as(better, 0.95)
    app.run()
    assert app.selectbox(key=K.DRAW_MODEL).value == better
    app.selectbox(key=K.DRAW_MODEL).set_value(good_on_mnist).run()  # the learner's choice stays
    measured_as(trained("best yet", 40, seed=3), 0.97)
    app.run()
    assert app.selectbox(key=K.DRAW_MODEL).value == good_on_mnist
    assert "On drawings: **80.0%**" in " ".join(m.value for m in app.markdown)


def test_draw_page_offers_the_robust_quick_model(app):
    from ui.registry import get_store

    app.switch_page("pages/draw.py").run()
    app.button(key=K.DRAW_QUICK_TRAIN).click().run()
    assert not app.exception
    (run,) = get_store().list()
    assert run.config == D.QUICK_MODEL and run.config.robust and run.config.batch_norm
    get_store().stop(run.id, wait=60)


def test_draw_page_without_robust_model_offers_one(app):
    measured_as(trained("course recipe", 40), 0.85)
    app.switch_page("pages/draw.py").run()
    assert app.button(key=K.DRAW_QUICK_TRAIN).label == "Quick-train a model for drawings"
    measured_as(trained("robust", 40, seed=1, robust=True), 0.9)
    app.run()
    assert not [b for b in app.button if b.key == K.DRAW_QUICK_TRAIN]


def test_runs_page_shows_accuracy_on_drawings(app):
    measured_as(trained("measured", 40), 0.9123)
    trained("fashion", 40, seed=1, dataset="fashion-mnist")
    app.switch_page("pages/runs.py").run()
    assert not app.exception
    table = app.dataframe[0].value
    assert list(table.columns).index(COLUMN) == list(table.columns).index("final test acc") + 1
    by_name = dict(zip(table["name"], table[COLUMN]))
    assert by_name == {"measured": "91.23%", "fashion": "–"}


def test_pages_wait_for_the_set_without_blocking(app, monkeypatch):
    """An unmeasured run: the page shows what it knows at once while the set is built in the background, then
    measures the run once it is there."""
    import threading

    from ui.registry import get_store

    monkeypatch.setattr(D, "SIZE", 100)
    go, real = threading.Event(), D.build_drawing_set
    monkeypatch.setattr(D, "build_drawing_set", lambda *a: go.wait(120) and real(*a))
    trained("new", 40)
    app.switch_page("pages/runs.py").run()
    assert not app.exception
    assert app.dataframe[0].value[COLUMN][0] == MEASURING
    assert "Drawing 100 MNIST test digits" in " ".join(c.value for c in app.caption)
    go.set()
    wait_until(lambda: D.ready_or_building(get_store().data_dir, n=100), timeout=120, every=0.1, what="the drawing set")
    app.run()
    assert app.dataframe[0].value[COLUMN][0].endswith("%")


def test_a_failed_build_is_said(app, monkeypatch):
    monkeypatch.setattr(D, "SIZE", 90)

    def fail(*a):
        raise OSError("disk on fire")
    monkeypatch.setattr(D, "build_drawing_set", fail)
    trained("new", 40)
    app.switch_page("pages/runs.py").run()
    said = lambda: any("disk on fire" in w.value for w in app.warning)
    wait_until(lambda: said() or (app.run() and said()), timeout=60, every=0.2, what="the page to say why")
    assert not app.exception
    assert app.dataframe[0].value[COLUMN][0] in ("–", MEASURING)


def test_data_gone_nothing_is_built_and_nothing_claims_to_be_measuring(app, app_env, monkeypatch):
    """Runs trained earlier, the MNIST files gone since: the set is not built (nor MNIST downloaded behind the
    learner's back), the column says '–' instead of 'measuring…' for ever, and the quick model's button waits for
    the data with the page's notice."""
    import streamlit as st

    trained("earlier", 40)
    empty = app_env / "no-data"
    empty.mkdir()
    monkeypatch.setenv("DATA_DIR", str(empty))
    st.cache_resource.clear()  # a new server start: the store now reads an empty data folder

    def must_not_build(*a, **kw):
        raise AssertionError("the drawing set was built without the data")
    monkeypatch.setattr(D, "ready_or_building", must_not_build)
    app.switch_page("pages/runs.py").run()
    assert not app.exception
    assert list(app.dataframe[0].value[COLUMN]) == ["–"]
    assert not any("Drawing" in c.value for c in app.caption)
    app.switch_page("pages/draw.py").run()
    assert not app.exception
    assert "MNIST is not on disk" in " ".join(e.value for e in app.error)
    assert app.button(key=K.DRAW_QUICK_TRAIN).disabled


def test_draw_page_never_defaults_to_a_diverged_model(app):
    from ui.registry import get_store

    finished = trained("finished", 40)
    diverged = trained("diverged later", 40, seed=1)
    measured_as(finished, 0.80)
    measured_as(diverged, 0.95)
    (get_store().root / diverged / "status.json").write_text(json.dumps(
        {"status": "diverged", "error": "the training loss was nan at step 41"}))
    import streamlit as st
    st.cache_resource.clear()  # read the runs again, as after a server start
    app.switch_page("pages/draw.py").run()
    assert not app.exception
    assert get_store().get(diverged).snapshot.status == "diverged"
    assert app.selectbox(key=K.DRAW_MODEL).value == finished
