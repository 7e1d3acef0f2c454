"""AppTest for the dashboard pages: seeded state, widgets by key, assertions on what the page shows."""
import time

import pytest
from streamlit.testing.v1 import AppTest

from core import TrainConfig
from tests.waiting import open_part, wait_until
from ui import keys as K

TIMEOUT = 120


@pytest.fixture
def app(app_env):
    return AppTest.from_file("../app.py", default_timeout=TIMEOUT)


def wait_finished(store, timeout=TIMEOUT):
    wait_until(lambda: not any(r.live for r in store.list()), timeout, 0.05, "every run to end")


def texts(at) -> str:
    return " ".join(str(e.value) for coll in (at.markdown, at.caption, at.info, at.warning, at.error, at.metric)
                    for e in coll)


def test_home_links_every_page(app):
    app.run()
    assert not app.exception
    assert "real PyTorch" in texts(app)


def test_train_page_without_runs(app):
    app.run()
    app.switch_page("pages/train.py").run()
    assert not app.exception
    assert "No runs yet" in texts(app)
    assert app.button(key=K.TRAIN_START).disabled is False


def test_invalid_hidden_sizes_cannot_be_submitted(app):
    app.run()
    app.switch_page("pages/train.py").run()
    app.text_input(key=K.TRAIN_HIDDEN).set_value("512, zero").run()
    assert "hidden" in " ".join(e.value for e in app.error)
    assert app.button(key=K.TRAIN_START).disabled


def test_start_tiny_run_and_see_final_numbers(app):
    from ui.registry import get_store
    app.run()
    app.switch_page("pages/train.py").run()
    app.number_input(key=K.TRAIN_EPOCHS).set_value(2)
    app.number_input(key=K.TRAIN_MAX_BATCHES).set_value(30)
    app.toggle(key=K.TRAIN_BN).set_value(True)
    app.selectbox(key=K.TRAIN_PRECISION).set_value("fp32")
    app.button(key=K.TRAIN_START).click().run()
    assert not app.exception
    store = get_store()
    (run,) = store.list()
    assert run.config == TrainConfig(batch_norm=True, epochs=2, max_batches=30, precision="fp32")
    wait_finished(store)
    app.run()
    final = store.get(run.id).snapshot.final
    shown = texts(app)
    assert "finished" in shown and f"{final.test_acc:.2%}" in shown
    assert len(app.get("plotly_chart")) == 2
    assert "2 of 2 epochs completed" in [p.proto.text for p in app.get("progress")]


def test_duplicate_start_is_refused_then_confirmed(app):
    from ui.registry import get_store
    app.run()
    app.switch_page("pages/train.py").run()
    app.number_input(key=K.TRAIN_EPOCHS).set_value(50)
    app.button(key=K.TRAIN_START).click().run()
    app.button(key=K.TRAIN_START).click().run()
    assert len(get_store().list()) == 1
    assert "already training" in " ".join(w.value for w in app.warning)
    app.button(key=K.TRAIN_CONFIRM_DUPLICATE).click().run()
    assert len(get_store().list()) == 2


def test_pause_resume_stop_buttons(app):
    from ui.registry import get_store
    app.run()
    app.switch_page("pages/train.py").run()
    app.number_input(key=K.TRAIN_EPOCHS).set_value(50)
    app.button(key=K.TRAIN_START).click().run()
    store = get_store()
    (run,) = store.list()
    app.button(key=K.TRAIN_PAUSE).click().run()
    wait_until(lambda: store.get(run.id).snapshot.status == "paused", 30, 0.02, "the pause")
    app.run()
    assert store.get(run.id).snapshot.status == "paused"
    app.button(key=K.TRAIN_RESUME).click().run()
    app.button(key=K.TRAIN_STOP).click().run()
    store.trainer(run.id).join(30)
    assert store.get(run.id).snapshot.status == "stopped"


def test_failed_run_shows_its_message(app, monkeypatch):
    import core.engine.data as data
    import core.engine.trainer as tr
    monkeypatch.setattr(tr, "load_dataset", lambda name, root: (_ for _ in ()).throw(
        data.DataUnavailableError(f"The mnist dataset is not available in {root}")))  # gone after the page's check
    from ui.registry import get_store
    app.run()
    app.switch_page("pages/train.py").run()
    app.button(key=K.TRAIN_START).click().run()
    wait_finished(get_store())
    app.run()
    errors = " ".join(e.value for e in app.error)
    assert "failed" in errors and "not available" in errors


def test_runs_page_overlay_rename_delete_and_evaluate(app, data_dir):
    from ui.registry import get_store
    app.run()
    store = get_store()
    for seed in (0, 1):
        store.start(TrainConfig(epochs=1, max_batches=40, seed=seed), name=f"seed {seed}")
    wait_finished(store)
    a, b = store.list()
    app.switch_page("pages/runs.py").run()
    assert not app.exception
    assert len(app.get("plotly_chart")) == 2  # the part open first: the overlay (loss, accuracy)
    table = app.dataframe[0].value
    assert set(table["name"]) == {"seed 0", "seed 1"}
    # rename
    open_part(app, K.RUNS_TAB, "Manage runs")
    app.selectbox(key=K.RUNS_EDIT).set_value(a.id)
    app.text_input(key=K.RUNS_NEW_NAME).set_value("my best run")
    app.button(key=K.RUNS_RENAME).click().run()
    assert store.get(a.id).name == "my best run"
    # evaluation: confusion counts add up to the test set, accuracy agrees with training's own evaluation
    open_part(app, K.RUNS_TAB, "Evaluate a run")
    assert len(app.get("plotly_chart")) == 2  # confusion matrix, accuracy per class
    app.selectbox(key=K.RUNS_EVAL).set_value(b.id).run()
    acc = store.get(b.id).snapshot.final.test_acc
    assert f"{acc:.2%}" in texts(app)
    # delete needs confirmation
    open_part(app, K.RUNS_TAB, "Manage runs")
    app.selectbox(key=K.RUNS_EDIT).set_value(a.id).run()
    assert app.button(key=K.RUNS_DELETE).disabled
    app.checkbox(key=K.RUNS_CONFIRM_DELETE).check().run()
    app.button(key=K.RUNS_DELETE).click().run()
    assert [r.id for r in store.list()] == [b.id]


def test_evaluation_report_is_consistent(data_dir, tmp_path):
    from core.lessons.evaluation import evaluate_model
    from core.store.runs import RunStore
    store = RunStore(tmp_path, data_dir)
    run = store.start(TrainConfig(epochs=1, max_batches=40, batch_norm=True))
    store.trainer(run.id).join(60)
    rep = evaluate_model(store.load_model(run.id), "mnist", data_dir)
    assert rep.confusion.sum() == 10000
    assert rep.accuracy == pytest.approx(store.get(run.id).snapshot.final.test_acc)
    losses = [m.loss for m in rep.mistakes]
    assert losses == sorted(losses, reverse=True) and all(m.true != m.predicted for m in rep.mistakes)


def test_every_download_button_names_its_file():
    """A download without file_name reaches the browser under a generic name; check every call in pages/ and ui/
    (the Draw page's drawings section lives in ui/my_drawings.py)."""
    import ast
    from pathlib import Path

    calls = []
    root = Path(__file__).resolve().parent.parent
    for page in sorted([*root.glob("pages/*.py"), *root.glob("ui/*.py")]):
        for node in ast.walk(ast.parse(page.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "download_button":
                calls.append((page.name, node.lineno, {k.arg for k in node.keywords}))
    assert len(calls) >= 2  # the run zip and the drawings zip
    for name, line, kwargs in calls:
        assert "file_name" in kwargs, f"{name}:{line}"


def test_home_says_where_its_numbers_come_from(app):
    app.run()
    text = texts(app)
    assert "All numbers come from the runs you start" not in text
    assert "the Softmax explorer computes its panels from the values you set" in text


def test_double_softmax_caption_states_computed_numbers(app):
    """The Train page's warning names the real harm with computed numbers (248x less gradient at 98% on a wrong
    digit, the loss between 1.461 and 2.461), not the uniform 10x at the start. Catches the old caption."""
    from core.lessons.softmax import double_softmax_harm
    h = double_softmax_harm()
    app.run()
    app.switch_page("pages/train.py").run()
    app.toggle(key=K.TRAIN_DOUBLE_SOFTMAX).set_value(True).run()
    text = texts(app)
    assert f"between {h.floor:.3f} and {h.ceiling:.3f}" in text and "between 1.461 and 2.461" in text
    assert f"{h.wrong.ratio:.0f}× less than the correct form" in text and "248× less" in text
    assert "small from the start" not in text


def test_runs_table_labels_the_best_epoch_as_picked_on_the_test_set(app):
    """The highest per-epoch test accuracy is a maximum chosen on the test set: the Runs table says so (as the
    BatchNorm lab does) and the final test accuracy stays beside it. Catches the bare 'best test acc' column."""
    from ui.registry import get_store
    store = get_store()
    run = store.start(TrainConfig(epochs=2, max_batches=10))
    wait_finished(store)
    app.run()
    app.switch_page("pages/runs.py").run()
    assert not app.exception
    table = app.dataframe[0].value
    best = "highest test acc (epoch picked on the test set)"
    assert best in table.columns and "best test acc" not in table.columns and "final test acc" in table.columns
    snap = store.get(run.id).snapshot
    assert list(table[best]) == [f"{max(h.test_acc for h in snap.history):.2%}"]
