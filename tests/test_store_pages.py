"""What the pages show of the store: damaged and failed runs (and deleting them in one action), one accuracy for
a stopped run, an unusable runs folder, run names as text."""
import json
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from core import TrainConfig
from tests.waiting import open_part, texts, wait_ended, wait_until
from ui import keys as K
from ui.registry import plain

TIMEOUT = 120


@pytest.fixture
def app(app_env):
    return AppTest.from_file("../app.py", default_timeout=TIMEOUT)


def test_damaged_and_failed_runs_shown_and_deleted_in_one_action(app, monkeypatch):
    from ui.registry import get_store
    import core.engine.trainer as tr

    app.run()
    store = get_store()
    good = store.start(TrainConfig(epochs=1, max_batches=20), name="good")
    wait_ended(store)
    with monkeypatch.context() as m:
        m.setattr(tr, "load_dataset", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no data here")))
        failed = store.start(TrainConfig(epochs=1, max_batches=20, seed=1), name="will fail")
        wait_ended(store)
    damaged = store.root / "20260101-120000-abcdef"
    shutil.copytree(store.root / good.id, damaged)
    (damaged / "config.json").write_text('{"config": {"lr": "fast"}}')
    (store.root / good.id / "status.json").write_text('{"status": "exploded"}')
    import streamlit as st

    st.cache_resource.clear()  # as after a restart: the store reads the folder again
    app.switch_page("pages/runs.py").run()
    assert not app.exception
    runs_table = app.dataframe[0].value
    assert "no data here" in runs_table.set_index("name").loc["will fail", "message"]
    assert runs_table.set_index("name").loc["good", "problems reading it"] == 1
    assert "2 failed or damaged runs" in texts(app)  # said under the table: where to clean up
    open_part(app, K.RUNS_TAB, "Manage runs")
    damaged_table = next(df.value for df in app.dataframe if "why it cannot be read" in df.value.columns)
    assert list(damaged_table["id"]) == [damaged.name] and "lr" in damaged_table.iloc[0, 1]
    app.selectbox(key=K.RUNS_EDIT).set_value(good.id).run()
    assert "'exploded' is not a status" in " ".join(w.value for w in app.warning)
    assert app.button(key=K.RUNS_DELETE_FAILED).disabled
    app.checkbox(key=K.RUNS_CONFIRM_DELETE_FAILED).check().run()
    app.button(key=K.RUNS_DELETE_FAILED).click().run()
    assert not app.exception
    store = get_store()
    assert [r.id for r in store.list()] == [good.id] and store.damaged() == []
    assert not damaged.exists() and not (store.root / failed.id).exists()
    assert "Deleted 2 run(s)." in " ".join(s.value for s in app.success)


def test_stopped_run_has_one_accuracy_everywhere(app):
    """A run stopped during epoch 2: the picker label, the runs table and Evaluate all give epoch 1's accuracy."""
    from ui.registry import get_store, run_label

    app.run()
    store = get_store()
    run = store.start(TrainConfig(epochs=3, max_batches=300), name="stopped early")
    trainer = store.trainer(run.id)
    wait_until(lambda: trainer.snapshot.epoch >= 1 and trainer.snapshot.epoch_step >= 20 or not trainer.alive,
               TIMEOUT, what="epoch 2 to be under way")
    store.stop(run.id, wait=60)
    info = store.get(run.id)
    assert info.snapshot.status == "stopped" and info.snapshot.epoch == 1
    acc = f"{info.snapshot.final.test_acc:.2%}"
    assert run_label(info).endswith(acc)
    app.switch_page("pages/runs.py").run()
    assert not app.exception
    assert app.dataframe[0].value.set_index("name").loc["stopped early", "final test acc"] == acc
    open_part(app, K.RUNS_TAB, "Evaluate a run")
    assert [m.value for m in app.metric if m.label == "Test accuracy"] == [acc]  # evaluated afresh from the weights
    assert "those of epoch 1" in texts(app)


def test_diverged_run_is_shown_as_diverged(app):
    from ui.registry import get_store

    app.run()
    store = get_store()
    store.start(TrainConfig(lr=10.0, optimizer="sgd", max_batches=50, epochs=1), name="too fast")
    wait_ended(store)
    app.switch_page("pages/runs.py").run()
    assert app.dataframe[0].value.iloc[0]["status"] == "diverged"
    open_part(app, K.RUNS_TAB, "Manage runs")
    assert "Diverged: the training loss became nan" in " ".join(e.value for e in app.error)
    app.switch_page("pages/train.py").run()
    assert "diverged" in texts(app)


@pytest.mark.parametrize("page", ["pages/train.py", "pages/runs.py", "pages/batchnorm.py", "pages/draw.py"])
def test_unusable_runs_folder_message_on_every_page(app, app_env, monkeypatch, page):
    a_file = app_env / "runs-file"
    a_file.write_text("a file, not a folder")
    monkeypatch.setenv("RUNS_DIR", str(a_file))
    app.run()
    app.switch_page(page).run()
    assert not app.exception
    errors = [e.value for e in app.error]
    assert len(errors) == 1 and plain(f"The runs folder {a_file} is a file") in errors[0]
    assert "RUNS\\_DIR" in errors[0]  # escaped: shown as written, not as Markdown
    monkeypatch.setenv("RUNS_DIR", str(app_env / "runs"))  # the fixture's teardown opens the store


def test_hidden_sizes_typed_on_the_train_page(app):
    app.run()
    app.switch_page("pages/train.py").run()
    for text, ok in (("512,,3", False), ("1_000", False), ("100000", False), (" 64 , 32 ", True), ("", False)):
        app.text_input(key=K.TRAIN_HIDDEN).set_value(text).run()
        errors = " ".join(e.value for e in app.error)
        assert app.button(key=K.TRAIN_START).disabled is not ok, text
        assert ("hidden" in errors) is not ok, (text, errors)
    app.text_input(key=K.TRAIN_HIDDEN).set_value("100000").run()
    assert "needs about 1.23 GB" in " ".join(e.value for e in app.error)


def test_run_names_are_text_in_figures_and_messages():
    from core.engine.snapshot import EpochMetrics, RunSnapshot
    from ui.figures import accuracy_figure, bar_figure, line_figure, loss_figure
    name = '<b>bold</b> <a href="http://x">link</a> %{y} & co'
    short = "<b>bold</b> %{y} & co"  # within a legend's length
    snap = RunSnapshot(status="finished", step_losses=((10, 1.0),), history=(EpochMetrics(1, 1, .5, 1, .5, 1),))
    two = [(short, snap), (name, snap)]  # several runs: the legend names them
    names = [t.name for fig in (loss_figure(two), accuracy_figure(two)) for t in fig.data]
    assert names and all("<" not in n and "&lt;b&gt;bold&lt;/b&gt;" in n for n in names)
    assert "&lt;b&gt;bold&lt;/b&gt; %{y} &amp; co" in names and any(n.endswith("…") for n in names)
    line = line_figure([1, 2], {name: [1, 2]}, "t", "x", "y")
    assert "<b>" not in line.data[0].name and name not in line.data[0].hovertemplate
    assert bar_figure([name], [1.0], "t").data[0].x[0].startswith("&lt;b&gt;")
    assert plain("**x** [a](http://e) <b>") == r"\*\*x\*\* \[a\]\(http\://e\) \<b\>"
