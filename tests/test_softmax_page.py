"""AppTest for each panel of the softmax explorer."""
import pytest
from streamlit.testing.v1 import AppTest

from ui import keys as K


@pytest.fixture
def page(app_env):
    at = AppTest.from_file("../app.py", default_timeout=120).run()
    at.switch_page("pages/softmax.py").run()
    assert not at.exception
    return at


def md(at) -> str:
    return " ".join(m.value for m in at.markdown)


def test_multiclass_preset_reproduces_worked_example(page):
    page.button(key=K.SM_PRESET).click().run()
    df = page.dataframe[0].value
    assert list(df["ŷ"].round(6)) == [0.1, 0.2, 0.7]
    assert list(df["dL/dz"].round(6)) == [0.1, 0.2, -0.3]
    assert "= **0.3567**" in md(page)
    assert any("equal torch autograd" in s.value for s in page.success) and not page.error


def test_multiclass_sliders_and_classes(page):
    page.number_input(key=K.SM_N).set_value(5).run()
    page.slider(key=f"{K.SM_LOGIT}4").set_value(9.5).run()
    df = page.dataframe[0].value
    assert len(df) == 5 and df["ŷ"].idxmax() == 4
    assert any("equal torch autograd" in s.value for s in page.success)


def test_binary_panel(page):
    text = md(page)
    assert "-0.6000 and +0.6000" in text and "σ(-0.4055) = 0.4000" in text
    page.slider(key=K.SM_P_CAT).set_value(0.9).run()
    assert "-0.1000 and +0.1000" in md(page)


def test_labels_panel_and_live_experiment(page, monkeypatch):
    import core.lessons.softmax_experiments as ex
    calls = {}
    real = ex.regression_vs_softmax

    def small(data_dir=None, **kw):
        calls["data_dir"] = data_dir
        return real(data_dir, n_train=640, epochs=1)
    monkeypatch.setattr(ex, "regression_vs_softmax", small)  # the real code path, on 640 images
    page.button(key=K.SM_RUN_EXPERIMENT).click().run()
    assert "data_dir" in calls
    labels = [m.label for m in page.metric]
    assert "10-way softmax + cross-entropy" in labels and "Regression on the digit value" in labels


def test_double_softmax_panel_trains_both(page):
    from ui.registry import get_store
    assert "**1.461**" in md(page)
    page.button(key=K.SM_TRAIN_BOTH).click().run()
    store = get_store()
    runs = store.list()
    assert sorted(r.config.double_softmax for r in runs) == [False, True]
    for r in runs:
        store.trainer(r.id).join(120)
    page.run()
    captions = " ".join(c.value for c in page.caption)
    assert "double softmax: final training loss" in captions and "correct: final training loss" in captions
