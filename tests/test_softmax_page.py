"""AppTest for each panel of the softmax explorer."""
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.waiting import open_part
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
    df = page.table[0].value
    assert list(df["ŷ"].round(6)) == [0.1, 0.2, 0.7]
    assert list(df["dL/dz"].round(6)) == [0.1, 0.2, -0.3]
    assert "= **0.3567**" in md(page)
    assert any("equal torch autograd" in s.value for s in page.success) and not page.error


def test_multiclass_sliders_and_classes(page):
    page.number_input(key=K.SM_N).set_value(5).run()
    page.slider(key=f"{K.SM_LOGIT}4").set_value(9.5).run()
    df = page.table[0].value
    assert len(df) == 5 and df["ŷ"].idxmax() == 4
    assert any("equal torch autograd" in s.value for s in page.success)


def test_binary_panel(page):
    text = md(open_part(page, K.SM_TAB, K.SM_PARTS[1]))
    assert "-0.6000 and +0.6000" in text and "σ(-0.4055) = 0.4000" in text
    page.slider(key=K.SM_P_CAT).set_value(0.9).run()
    assert "-0.1000 and +0.1000" in md(page)


def test_labels_panel_and_live_experiment(page, monkeypatch, data_dir):
    open_part(page, K.SM_TAB, K.SM_PARTS[2])
    import core.lessons.softmax_experiments as ex
    from core.engine.data import load_dataset
    calls = {}
    real = ex.regression_vs_softmax

    def small(data_dir=None, **kw):
        calls["data_dir"] = data_dir
        calls["result"] = real(data_dir, n_train=640, epochs=1)
        return calls["result"]
    monkeypatch.setattr(ex, "regression_vs_softmax", small)  # the real code path, on 640 images
    page.button(key=K.SM_RUN_EXPERIMENT).click().run()
    assert "data_dir" in calls and not page.exception
    labels = [m.label for m in page.metric]
    assert "10-way softmax + cross-entropy" in labels and "Regression on the digit value" in labels
    res = calls["result"]
    test_y = load_dataset("mnist", data_dir).test_y.numpy()
    for conf, acc in ((res.regression_confusion, res.regression_acc), (res.softmax_confusion, res.softmax_acc)):
        assert (conf.sum(1) == np.bincount(test_y, minlength=10)).all()  # every test image, by its true digit
        assert np.trace(conf) / len(test_y) == acc
    reg = res.regression_errors
    off = sum(res.regression_confusion[i, j] for i in range(10) for j in range(10) if abs(i - j) == 1)
    assert reg.off_by_one == off and reg.errors == len(test_y) - np.trace(res.regression_confusion)
    text = md(page)
    assert f"errors, **{reg.off_by_one_share:.0%}** are off by one" in text  # computed, not a fixed sentence
    assert "pulled towards 6 or 7" not in text + " ".join(c.value for c in page.caption)
    (table,) = [d.value for d in page.dataframe if "true digit" in d.value.columns]
    assert list(table["true digit"]) == list(range(10))
    assert table["errors"].sum() == reg.errors


def test_double_softmax_panel_states_computed_gradients(page):
    """The panel's first sentence names the harm on confidently wrong outputs with computed numbers, the table has
    the wrong-digit rows, and the uniform 10x of the start is explained behind the expander. Catches the old
    paragraph ('small from the start' as the harm) and a table without the wrong-digit rows."""
    from core.lessons.softmax import COMPARED_WRONG, double_softmax_harm, forms_at
    h = double_softmax_harm()
    text = md(open_part(page, K.SM_TAB, K.SM_PARTS[3]))
    assert (f"at 98% on a wrong digit ‖dL/dz‖ is **{h.wrong.double_grad:.4f}** instead of **{h.wrong.grad:.3f}** "
            f"({h.wrong.ratio:.0f}× smaller)") in text
    assert "**0.0056** instead of **1.399** (248× smaller)" in text and "log(e + 9) = **2.461**" in text
    assert "small from the start" not in text and "fades as the prediction gets confident" not in text
    assert [e.label for e in page.expander] == ["Why that, and not the small gradient at the start, is the harm"]
    assert f"{h.adam_scale:.4f}× as far" in text and f"{h.double_weight:.3f}×" in text
    (table,) = [d.value for d in page.dataframe if "the output puts" in d.value.columns]
    wrong_rows = table[table["the output puts"].str.contains("wrong")]
    assert len(wrong_rows) == len(COMPARED_WRONG)
    assert list(wrong_rows["times smaller"]) == [round(forms_at(p, wrong=True).ratio, 2) for p in COMPARED_WRONG]


def test_double_softmax_panel_trains_both(page):
    from ui.registry import get_store
    assert "**1.461**" in md(open_part(page, K.SM_TAB, K.SM_PARTS[3]))
    page.button(key=K.SM_TRAIN_BOTH).click().run()
    store = get_store()
    runs = store.list()
    assert sorted(r.config.double_softmax for r in runs) == [False, True]
    for r in runs:
        store.trainer(r.id).join(120)
    page.run()
    captions = " ".join(c.value for c in page.caption)
    assert "double softmax: final training loss" in captions and "correct: final training loss" in captions


def test_prediction_mode_hides_the_gradient_until_predicted_and_scores_it(page):
    """Catches a prediction that can be skipped by looking (the gradient shown beside the question), a reveal that
    ignores the temperature (the page shows (ŷ − y)/T: with T = 2 and the worked example's logits, ŷ[rabbit] = 0.523
    and the gradient −0.239, not ŷ − y = −0.477), and a boundary scored as a miss (a prediction exactly 0.02 off)."""
    from core.lessons.predictions import QUESTIONS
    from core.lessons.softmax import WORKED_PROBS, logits_for_probs, softmax_cross_entropy

    page.button(key=K.SM_PRESET).click().run()
    page.number_input(key=K.SM_TEMP).set_value(2.0).run()
    assert "dL/dz" in page.table[0].value.columns  # prediction mode off: the page as it always was
    page.toggle(key=f"{K.PREDICT}_softmax_mode").set_value(True).run()
    assert "dL/dz" not in page.table[0].value.columns
    (box,) = [n for n in page.number_input if n.key.startswith(f"{K.PREDICT}_softmax.grad_true_")]
    r = softmax_cross_entropy(np.array(logits_for_probs(WORKED_PROBS)), 2, 2.0)
    p_true, measured = float(r.probs[2]), float(r.grad[2])
    assert measured == pytest.approx((p_true - 1) / 2) and measured == pytest.approx(-0.2385, abs=1e-4)
    box.set_value(round(measured + QUESTIONS["softmax.grad_true"].tolerance, 9)).run()
    [b for b in page.button if b.key == box.key + "_lock"][0].click().run()
    assert not page.exception
    assert "dL/dz" in page.table[0].value.columns  # committed: the gradient is shown
    text = (md(page) + " ".join(c.value for c in page.caption)).replace("\\", "")  # markdown escapes out
    assert "within range" in text and f"({p_true:.3f} − 1)/2 = {measured:.3f}" in text
