"""Class mode (TEACHER_KEY set): learners with their own runs, the store and the pages refusing another learner, the
teacher's Class page, the challenge's leaderboard, and lesson links that round-trip a page's settings."""
import json
from urllib.parse import parse_qsl, urlsplit

import pytest
import torch
from streamlit.testing.v1 import AppTest

from tests.waiting import texts, wait_ended

from core.engine.config import TrainConfig, trainable_parameters
from core.engine.models import build_model
from core.engine.snapshot import EpochMetrics, RunSnapshot
from core.lessons.challenge import Challenge, leaderboard, load_challenge, save_challenge
from core.store.learners import LearnerBook, LearnerError
from core.store.runs import RunInfo
from ui import keys as K

TEACHER = "teacher-secret-123"


# --- the learner book --------------------------------------------------------------------------------------
def test_learners_get_unguessable_keys_kept_only_as_hashes(tmp_path):
    """Catches keys stored in clear (a copy of the runs folder would let anyone act as a learner), names that clash,
    and ids that give the key away."""
    book = LearnerBook(tmp_path)
    ada, key = book.register("  Ada   Lovelace ")
    assert ada.name == "Ada Lovelace" and len(key) >= 24 and key not in ada.id
    assert book.lookup(key) == ada and book.lookup(key + "x") is None and book.lookup(None) is None
    raw = (tmp_path / "learners.json").read_text()
    assert key not in raw and ada.id in raw
    assert LearnerBook(tmp_path).lookup(key) == ada  # kept across a restart
    with pytest.raises(LearnerError, match="taken"):
        book.register("ada lovelace")
    for bad in ("", "x" * 41, "nul\x00", "esc\x1b[31m", "evil\u202egnp"):
        with pytest.raises(LearnerError):
            book.register(bad)


@pytest.mark.parametrize("content", [b"not json", b'{"learners": [{"id": "../x", "name": "a", "key_sha256": "0"}]}',
                                     b"\xff\xfe", b'{"learners": 5}'])
def test_a_damaged_book_is_kept_aside_and_said(tmp_path, content):
    (tmp_path / "learners.json").write_bytes(content)
    book = LearnerBook(tmp_path)
    assert book.all() == [] and "could not be read" in book.problem
    kept = list(tmp_path.glob("learners.json.damaged-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == content  # nothing lost
    book.register("Grace")  # and the class goes on


# --- the challenge ---------------------------------------------------------------------------------------
def test_trainable_parameters_count_what_the_optimizer_updates():
    for cfg in (TrainConfig(), TrainConfig(batch_norm=True, hidden=(100, 30))):
        assert trainable_parameters(cfg) == sum(p.numel() for p in build_model(cfg).parameters())


def run(owner, acc, epochs=2, seconds=(3.0, 3.0), status="finished", **cfg):
    config = TrainConfig(epochs=epochs, **cfg)
    history = tuple(EpochMetrics(i + 1, 0.1, 0.9, 0.1, a, s) for i, (a, s) in enumerate(zip(acc, seconds)))
    snap = RunSnapshot(status=status, epoch=len(history), epochs=epochs, history=history)
    return RunInfo(f"20260101-120000-{abs(hash((owner, acc, epochs, str(cfg)))) % 16**6:06x}", config,
                   f"{owner} {acc}", 0.0, snap, owner=owner)


def test_the_leaderboard_ranks_by_the_rule_and_excludes_a_run_that_breaks_it():
    """Catches a board that ranks every run (one per learner is the rule), takes a rule-breaking run's higher score,
    reads the best epoch instead of the run's own final one, or ranks a speed challenge the wrong way round."""
    small = dict(hidden=(64, 32))  # 52,650 parameters
    runs = [run("l-ann", (0.95, 0.96), **small), run("l-ann", (0.97, 0.965), **small),
            run("l-ben", (0.96, 0.99), epochs=3, seconds=(1, 1, 1), **small),  # 3 epochs: breaks the rule
            run("l-ben", (0.94, 0.955), **small), run("l-cho", (0.98, 0.985))]  # the course network: too big
    board = leaderboard(Challenge("2 epochs, 100k", max_epochs=2, max_parameters=100_000), runs, ["l-dan"])
    assert [(r.owner, r.best and r.best.score) for r in board] == [("l-ann", 0.965), ("l-ben", 0.955),
                                                                   ("l-cho", None), ("l-dan", None)]
    assert board[1].not_qualifying[0].broken == ("3 epochs, more than 2",)
    assert "parameters, more than 100,000" in board[2].not_qualifying[0].broken[0]
    speed = leaderboard(Challenge("to 96%", goal="speed", target=0.96), [
        run("l-ann", (0.95, 0.97), seconds=(2, 2)), run("l-ben", (0.965, 0.97), seconds=(3, 3)),
        run("l-cho", (0.90, 0.95))])
    assert [(r.owner, r.best and r.best.score) for r in speed] == [("l-ben", 3.0), ("l-ann", 4.0), ("l-cho", None)]


def test_a_challenge_file_is_read_like_every_file(tmp_path):
    save_challenge(tmp_path, Challenge("c", max_epochs=2))
    assert load_challenge(tmp_path) == (Challenge("c", max_epochs=2), None)
    (tmp_path / "challenge.json").write_text(json.dumps({"title": "c", "max_epochs": -3}))
    challenge, problem = load_challenge(tmp_path)
    assert challenge is None and "max_epochs" in problem


# --- the pages -------------------------------------------------------------------------------------------
@pytest.fixture
def class_app(app_env, monkeypatch):
    monkeypatch.setenv("TEACHER_KEY", TEACHER)
    yield app_env


def session(**params) -> AppTest:
    at = AppTest.from_file("../app.py", default_timeout=120)
    at.query_params.update(params)
    return at.run()


def join(name: str) -> tuple[AppTest, str]:
    at = session()
    assert at.title[0].value == "Join the class" and not at.exception
    # Joined on the Train page: AppTest runs a second run of the default page as pages/home.py alone, without app.py
    # (its pages manager starts each run in the legacy pages-folder mode); a server does not (ui/navigation.py).
    at.switch_page("pages/train.py").run()
    at.text_input(key=K.SESSION_NAME).input(name)
    at.button[0].click().run()
    key = at.query_params["learner"]
    key = key[0] if isinstance(key, list) else key
    return at, key


def test_without_teacher_key_nothing_is_asked(app_env, monkeypatch):
    monkeypatch.delenv("TEACHER_KEY", raising=False)
    at = session()
    assert at.title[0].value != "Join the class" and "Class" not in texts(at)


def test_two_learners_see_their_own_runs_and_cannot_touch_the_others(class_app):
    from ui.registry import get_store

    ann, ann_key = join("Ann")
    ben, ben_key = join("Ben")
    assert ann_key != ben_key
    ann = session(learner=ann_key)
    ann.switch_page("pages/train.py").run()
    ann.number_input(key=K.TRAIN_EPOCHS).set_value(1)
    ann.number_input(key=K.TRAIN_MAX_BATCHES).set_value(10)
    ann.button(key=K.TRAIN_START).click().run()
    store = get_store()
    wait_ended(store)
    (anns,) = store.list()
    assert anns.owner != "" and store.get(anns.id).owner == LearnerBook(store.root).lookup(ann_key).id
    ben = session(learner=ben_key)
    ben.switch_page("pages/train.py").run()
    assert "No runs of yours yet" in texts(ben)  # never another learner's run by default
    ben.toggle(key=f"{K.SESSION_CLASS_RUNS}_train").set_value(True).run()
    assert ben.selectbox(key=K.TRAIN_RUN_ID).value == anns.id  # visible on request, read-only
    from core.store.runs import RunPermissionError
    with pytest.raises(RunPermissionError):
        store.delete(anns.id, by=LearnerBook(store.root).lookup(ben_key).id)


def test_the_runs_page_lists_a_learners_own_runs_and_shows_the_others_read_only(class_app):
    """Catches a Runs page that lists everyone's runs in a class, chooses another learner's run in its pickers, or
    offers rename / download / delete on a run that is not the learner's (the store refuses them too)."""
    from ui.registry import get_store
    from tests.waiting import open_part

    _, ann_key = join("Ann")
    _, ben_key = join("Ben")
    store, book = get_store(), LearnerBook(get_store().root)
    ann_id = book.lookup(ann_key).id
    run = store.start(TrainConfig(epochs=1, max_batches=3), name="Ann's run", owner=ann_id)
    wait_ended(store)
    ann = session(learner=ann_key)
    ann.switch_page("pages/runs.py").run()
    assert list(ann.dataframe[0].value["name"]) == ["Ann's run"] and list(ann.dataframe[0].value["learner"]) == ["Ann"]
    open_part(ann, K.RUNS_TAB, "Manage runs")
    assert ann.button(key=K.RUNS_RENAME) and not ann.exception

    ben = session(learner=ben_key)
    ben.switch_page("pages/runs.py").run()
    assert "No runs yet" in texts(ben) and not ben.dataframe
    ben.toggle(key=f"{K.SESSION_CLASS_RUNS}_runs").set_value(True).run()
    assert list(ben.dataframe[0].value["name"]) == ["Ann's run"]
    open_part(ben, K.RUNS_TAB, "Manage runs")
    assert not ben.exception and "Ann's run: you can look at it" in texts(ben)
    assert not [b for b in ben.button if b.key in (K.RUNS_RENAME, K.RUNS_DELETE)]
    from core.store.runs import RunPermissionError
    for act in (lambda: store.rename(run.id, "mine now", by=book.lookup(ben_key).id),
                lambda: store.export_zip(run.id, by=book.lookup(ben_key).id)):
        with pytest.raises(RunPermissionError):
            act()


def test_a_learners_page_redraws_for_their_runs_not_for_every_run_of_the_class(tmp_path, data_dir):
    """Catches a class where every learner's page reruns whole whenever any run of the class starts or ends (30 pages
    redrawn for each of hundreds of status changes): a learner's revision moves with their own runs only, the
    teacher's (None) with every run."""
    from core.store.runs import RunStore

    store = RunStore(tmp_path / "runs", data_dir)
    ann, everyone = store.revision("ann-1a2b3c"), store.revision()
    ben_run = store.start(TrainConfig(epochs=1, max_batches=2), owner="ben-4d5e6f")
    store.trainer(ben_run.id).join(120)
    assert store.revision("ann-1a2b3c") == ann and store.revision() != everyone
    ann_run = store.start(TrainConfig(epochs=1, max_batches=2, seed=1), owner="ann-1a2b3c")
    assert store.revision("ann-1a2b3c") != ann
    store.trainer(ann_run.id).join(120)
    ended = store.revision("ann-1a2b3c")
    store.rename(ann_run.id, "mine")
    assert store.revision("ann-1a2b3c") != ended


def test_a_learners_tuning_trials_are_theirs(tmp_path, data_dir):
    """Catches studies whose trials belong to nobody: in a class one learner's study would fill the queue as
    "everyone" (no fairness against the others' runs) and nobody could stop its trials; a journal naming an owner
    that is no learner's id is refused like every other bad field."""
    from core.store.runs import RunStore
    from core.tuning.study import StudySpec, Tuner, make_spec

    store = RunStore(tmp_path / "runs", data_dir)
    tuner = Tuner(store, str(tmp_path / "runs" / "studies.journal"))
    spec = make_spec(1, epochs=1, max_batches=2, pruner="none", sampler="random", owner="ann-1a2b3c")
    assert StudySpec.from_dict(spec.to_dict()) == spec
    tuner.create("anns", spec)
    tuner.start("anns").join(120)  # the runner already at work on it
    assert [r.owner for r in store.list()] == ["ann-1a2b3c"]
    with pytest.raises(ValueError, match="owner"):
        StudySpec.from_dict({**spec.to_dict(), "owner": "../../etc"})


def test_a_learners_twins_in_the_batchnorm_lab_are_theirs(class_app):
    """Catches the lab starting runs for nobody: in a class every learner's twins counted as one learner's in the
    queue (no fairness between them, the class's 13th waiting twin refused) and were nobody's to stop."""
    from ui.registry import get_store

    _, key = join("Ann")
    ann = session(learner=key)
    ann.switch_page("pages/batchnorm.py").run()
    ann.number_input(key=K.BN_EPOCHS).set_value(1)
    ann.number_input(key=K.BN_SEEDS).set_value(1)
    ann.number_input(key=K.BN_MAX_BATCHES).set_value(5)
    ann.button(key=K.BN_START).click().run()
    assert not ann.exception
    store = get_store()
    wait_ended(store)
    assert [r.owner for r in store.list()] == [LearnerBook(store.root).lookup(key).id] * 2


def test_the_teacher_sees_the_class_page_and_learners_do_not(class_app):
    from ui.registry import get_store

    _, key = join("Ann")
    learner = session(learner=key)
    assert not any(p.endswith("class_room.py") for p in str(learner).split()) and "Class" not in \
        [n for n in texts(learner).split("\n")]
    teacher = session(teacher=TEACHER)
    teacher.switch_page("pages/class_room.py").run()
    assert not teacher.exception and teacher.title[0].value == "Class"
    assert [m.value for m in teacher.metric if m.label == "Learners"] == ["1"]
    teacher.text_input(key=K.CLASS_TITLE).input("Two epochs")
    teacher.button[-1].click()  # the form's submit comes last in the form
    teacher.run()
    challenge, _ = load_challenge(get_store().root)
    assert challenge is not None
    home = session(learner=key)  # a learner sees the challenge on their Home page, their row marked
    assert not home.exception and "Two epochs" in texts(home)
    assert list(home.dataframe[0].value["learner"]) == ["Ann (you)"]


def test_train_settings_round_trip_through_the_url(app_env, monkeypatch):
    """Every Train setting set on one page reproduces in a session opened from its link; a bad or stale parameter
    names itself in a notice and keeps the default (never an exception)."""
    monkeypatch.delenv("TEACHER_KEY", raising=False)
    at = session()
    at.switch_page("pages/train.py").run()
    at.toggle(key=K.TRAIN_BN).set_value(True)
    at.number_input(key=K.TRAIN_EPOCHS).set_value(3)
    at.number_input(key=K.TRAIN_SEED).set_value(7)
    at.text_input(key=K.TRAIN_HIDDEN).input("300, 100")
    at.select_slider(key=K.TRAIN_LR).set_value(0.01).run()
    from ui.links import config_params
    params = {p.name: p.show(at.session_state[p.key]) for p in config_params(K.TRAIN) if p.key in at.session_state}
    assert params["batch_norm"] == "true" and params["hidden"] == "300, 100" and params["lr"] == "0.01"
    opened = AppTest.from_file("../app.py", default_timeout=120).run()
    opened.switch_page("pages/train.py")
    opened.query_params.update(params)
    opened.run()
    assert not opened.exception
    assert opened.toggle(key=K.TRAIN_BN).value is True and opened.number_input(key=K.TRAIN_EPOCHS).value == 3
    assert opened.select_slider(key=K.TRAIN_LR).value == 0.01 and opened.text_input(key=K.TRAIN_HIDDEN).value == "300, 100"
    bad = AppTest.from_file("../app.py", default_timeout=120).run()
    bad.switch_page("pages/train.py")
    bad.query_params.update({"epochs": "many", "lr": "0.002", "colour": "red", "seed": "5"})
    bad.run()
    assert not bad.exception
    warning = " ".join(w.value for w in bad.warning)
    assert "epochs=many" in warning and "colour" in warning and "seed" not in warning
    assert bad.number_input(key=K.TRAIN_EPOCHS).value == 10 and bad.number_input(key=K.TRAIN_SEED).value == 5


def test_every_train_setting_widget_carries_its_current_value_as_its_default(app_env, monkeypatch):
    """Catches a widget drawn without a default while the session holds its value: a browser that draws it afresh (its
    run interrupted before the page reached it, as reruns are under load) shows the widget's own default, the
    minimum or first option, and sends that back. In benchmarks/bench_class.py learners who followed a lesson link
    started runs of batch size 1, learning rate 1e-06 and 60,000 steps an epoch, which held the class's slots."""
    from core.engine import config as C
    from ui.config_form import field_key

    monkeypatch.delenv("TEACHER_KEY", raising=False)
    at = AppTest.from_file("../app.py", default_timeout=120).run()
    at.switch_page("pages/train.py")
    at.query_params.update({"epochs": "2", "lr": "0.01", "batch_norm": "true", "hidden": "300, 100"})
    at.run()
    at.run()  # a later run: the values come from the session, not from the link any more
    keys = {field_key(K.TRAIN, name) for name, _, _ in C.config_options()}
    widgets = [w for kind in ("number_input", "toggle", "select_slider", "selectbox", "text_input")
               for w in getattr(at, kind) if w.key in keys]
    assert len(widgets) >= 12 and at.number_input(key=K.TRAIN_EPOCHS).value == 2
    for w in widgets:
        p = w.proto
        if w.type == "select_slider":
            shown = p.options[int(p.default[0])]
            assert shown == f"{w.value:g}", w.key
        elif w.type == "selectbox":
            assert p.default == w.index, w.key
        else:
            assert p.default == w.value, w.key
