"""AppTest of the Tuning page: the lessons' instant numbers, and a tiny study started, stopped and resumed."""
import pytest
from streamlit.testing.v1 import AppTest

from tests.waiting import open_part, wait_until
from ui import keys as K
from ui.registry import plain

TIMEOUT = 120


@pytest.fixture
def page(app_env):
    at = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/tuning.py").run()
    yield at
    from ui.tuning import get_tuner

    get_tuner().stop_all(wait=30)  # before app_env stops the runs: a runner would start the next trial


def texts(at) -> str:
    return " ".join(str(e.value) for coll in (at.markdown, at.caption, at.info, at.warning, at.error) for e in coll)


def test_scale_lessons_show_their_numbers_before_any_training(page):
    assert not page.exception
    open_part(page, K.TUNE_TAB, "Scale: learning rate")
    lr = next(t.value for t in page.dataframe if "uniform draws" in t.value.columns)
    top = lr.iloc[-1]
    assert top["decade"] == "0.1 – 1" and abs(float(top["uniform draws"].rstrip("%")) - 90) < 2
    assert all(abs(float(v.rstrip("%")) - 25) < 4 for v in lr["log-scale draws"])
    open_part(page, K.TUNE_TAB, "Scale: Adam's β1")
    beta = next(t.value for t in page.dataframe if "steps averaged" in t.value.columns)
    assert list(beta["steps averaged"]) == ["100 – 1000", "10 – 100"]
    assert abs(float(beta.iloc[0]["1 - β1 log scale"].rstrip("%")) - 50) < 4
    assert "passes over the 60,000 training images" in texts(page)
    assert "on this machine" in texts(page)  # every start button states its duration first


def test_start_stop_and_resume_a_tiny_study(page):
    from ui.registry import get_store
    from ui.tuning import get_tuner

    at, store, tuner = page, get_store(), get_tuner()
    open_part(at, K.TUNE_TAB, "Your own study")
    at.number_input(key=K.TUNE_EPOCHS).set_value(2)
    at.number_input(key=K.TUNE_BATCHES).set_value(400)  # long enough to be stopped in the middle
    at.multiselect(key=K.TUNE_OWN_PARAMS).set_value(["lr"])
    at.number_input(key=K.TUNE_OWN_N).set_value(2)
    at.text_input(key=K.TUNE_OWN_NAME).set_value("tiny")
    at.button(key=K.TUNE_OWN_START).click().run()
    assert not at.exception
    assert tuner.running("tiny")
    wait_until(lambda: any(r.live for r in store.list()), TIMEOUT, 0.02, "the first trial's run to start")
    at.run()
    assert "trials · running here" in texts(at)
    at.button(key=K.TUNE_STOP + "view").click().run()
    wait_until(lambda: not tuner.running("tiny"), TIMEOUT, 0.05, "the study to stop")
    at.run()
    assert "stopped: press Resume" in texts(at)
    stopped = store.list()[0]  # the newest
    assert stopped.snapshot.status == "stopped" and stopped.tags["study"] == "tiny"
    table = at.dataframe[-1].value
    assert list(table["state"]).count("fail") == 1 and list(table["state"])[-1] == "waiting"
    assert "stopped before it finished" in list(table["note"])

    at.button(key=K.TUNE_RESUME + "view").click().run()
    wait_until(lambda: not tuner.running("tiny"), TIMEOUT, 0.05, "the study to finish")
    at.run()
    assert not at.exception
    assert "**tiny**: 2 of 2 trials · done · best" in texts(at)
    table = at.dataframe[-1].value
    assert sorted(table["state"]) == ["complete", "complete", "fail"]
    assert len([r for r in store.list() if r.snapshot.status == "finished"]) == 2


def test_random_beats_grid_lesson_counts_what_each_search_tried(page):
    """The lesson's counts, and how often random search has won, from the finished repetitions. Catches an
    experiment that reseeds only the sampler (the grid then replays its runs) and a fixed 'random wins' claim."""
    from ui.tuning import get_tuner

    at, tuner = page, get_tuner()
    at.number_input(key=K.TUNE_EPOCHS).set_value(1)
    at.number_input(key=K.TUNE_BATCHES).set_value(2)
    at.button(key=K.TUNE_GVR_START).click().run()
    assert not at.exception
    names = [n for n, _ in tuner.specs()]
    assert len(names) == 2 and all(n.startswith("grid-vs-random-") for n in names)
    wait_until(lambda: not any(tuner.running(n) for n in names), TIMEOUT, 0.05, "both studies to finish")
    at.run()
    shown = texts(at)
    assert "**grid**: 3 distinct learning rates in 9 trials" in shown
    assert "**random**: 9 distinct learning rates in 9 trials" in shown
    assert all(f"**{plain(n)}**: 9 of 9 trials · done" in shown for n in names)  # names shown as text
    # The experiment drew new training seeds (else the grid replays the same runs), and the page says how often
    # random search has won over the finished repetitions, computed from the two studies' best trials.
    import core.lessons.tuning as T
    specs = dict(tuner.specs())
    grid, random = (next(s for n, s in specs.items() if s.lesson == k) for k in ("grid", "random"))
    assert grid.base.seed == grid.seed == random.base.seed != 0
    bests = [T.best_row(T.trial_rows(tuner.open(n)[0])).accuracy for n in sorted(names)]  # -grid, -random
    winner = "1" if bests[1] > bests[0] else "0"
    assert f"**Over 1 finished repetition, random search found the better learning rate in {winner}**" in shown
    repeat = at.button(key=K.TUNE_GVR_REPEAT)
    assert repeat.label.startswith("Repeat the experiment 5 times (about") and "90 trials" in repeat.label
