"""Predict, then reveal in the BatchNorm lab, the Tuning lab and on the teacher's Class page (AppTest). Each
prediction widget's value is kept in the runs folder and survives a reload; a prediction is attached only to the
experiment it was asked for; it is scored against the stored runs' measured numbers (exactly on the tolerance's
boundary is within range); the reveal's reason is built from the measurement; predicting nothing leaves the page
as it was. Training stays tiny (1 epoch of a few batches)."""
import json
import re
import statistics
import time
import uuid
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Block

from core import TrainConfig
from core.lessons import predictions as P
from core.lessons.batchnorm import group_runs, lab_groups, train_vs_eval
from core.store.groups import LabKind
from tests.waiting import open_part, texts, wait_ended, wait_until
from ui import keys as K

TIMEOUT = 120
TWINS = ("bn.first_to_97", "bn.epochs_apart", "bn.seeds_to_verdict")


def key(qid: str) -> str:
    return f"{K.PREDICT}_{qid}"


def session(page: str) -> AppTest:
    """A new browser session on `page` (a reload): the prediction book is opened from the runs folder again."""
    import ui.predict

    ui.predict._book.clear()
    at = AppTest.from_file("../app.py", default_timeout=TIMEOUT).run()
    return at.switch_page(page).run()


def book() -> P.PredictionBook:
    from ui.registry import get_store

    return P.PredictionBook(get_store().root)  # read from disk, not the page's cached one


def shown(at) -> str:
    """Every text on the page, Markdown escapes and bold removed."""
    return re.sub(r"\\(.)", r"\1", texts(at).replace("**", ""))


def layout(node) -> list:
    """The page's elements in order (type, key, text), the "Predict first" expander left out."""
    if isinstance(node, Block):
        if node.type == "expander" and node.label.startswith("Predict first"):
            return []
        return [(node.type, [x for child in node.children.values() for x in layout(child)])]
    value = getattr(node, "value", None)
    return [(node.type, getattr(node, "key", None), value if isinstance(value, str) else None)]


def same_without_predictions(at, monkeypatch, module, *names) -> None:
    """The page as it is now equals the page drawn with the prediction functions `names` of `module` removed (the
    page as it was before predictions), but for the collapsed "Predict first" expander."""
    assert "Your predictions" not in shown(at)
    (box,) = [e for e in at.expander if e.label.startswith("Predict first")]
    assert not box.proto.expanded  # nothing locked in: closed
    now = layout(at.main)
    with monkeypatch.context() as m:
        for name in names:
            m.setattr(module, name, lambda *a, **kw: None)
        at.run()
        assert layout(at.main) == now
    at.run()


# --- the BatchNorm lab --------------------------------------------------------------------------------------------
def plant(runs: Path, group: str, seed: int, bn: bool, accs: list[float], created: float) -> None:
    """A finished run as the store writes it, one test accuracy per epoch, 1.5 s an epoch (no weights)."""
    d = runs / f"20260101-120000-{uuid.uuid4().hex[:6]}"
    d.mkdir(parents=True)
    cfg = TrainConfig(epochs=len(accs), batch_norm=bn, seed=seed)
    (d / "config.json").write_text(json.dumps({"config": cfg.to_dict(), "name": f"{group} {seed} {bn}",
                                               "created": created, "group": group}))
    (d / "status.json").write_text(json.dumps({"status": "finished", "error": None}))
    (d / "metrics.jsonl").write_text("".join(json.dumps(
        {"epoch": e, "train_loss": 0.1, "train_acc": a, "test_loss": 0.1, "test_acc": a, "seconds": 1.5}) + "\n"
        for e, a in enumerate(accs, start=1)))


def lock_twins(at, first: str, apart: float, seeds: str) -> None:
    at.radio(key=key("bn.first_to_97")).set_value(first)
    at.number_input(key=key("bn.epochs_apart")).set_value(apart)
    at.radio(key=key("bn.seeds_to_verdict")).set_value(seeds).run()  # a change reruns: "Lock in" is enabled
    at.button(key=f"{K.PREDICT}_bn_twins_lock").click().run()
    assert not at.exception


def test_twin_predictions_are_scored_against_stored_twins_on_the_boundary(app_env, monkeypatch):
    """Two twin sets on disk: A, 3 seeds, BN at 97% in epoch 2 and no-BN in epoch 4 (2 apart, BN's edge steady:
    the paired test separates them at 3 seeds); B, 1 seed, BN in epoch 1, no-BN in epoch 4 (3 apart). Catches a
    strict '<' (3 epochs predicted for A's 2, tolerance 1, counted as a miss), a reveal scored against the set on
    screen instead of the one predicted about, a canned reason (A's and B's differ, each with its own epochs and
    seconds), a locked-in value lost on reload, and any element predictions add for a learner who predicts nothing."""
    runs, now = app_env / "runs", time.time()
    a, b = LabKind.TWINS.new_id(), LabKind.TWINS.new_id()
    for seed, (bn_last, plain_last) in enumerate(((0.982, 0.971), (0.983, 0.9715), (0.981, 0.9705))):
        plant(runs, a, seed, True, [0.95, 0.972, 0.978, bn_last], now - 100)
        plant(runs, a, seed, False, [0.93, 0.95, 0.96, plain_last], now - 100)
    plant(runs, b, 0, True, [0.971, 0.98, 0.98, 0.985], now)
    plant(runs, b, 0, False, [0.90, 0.95, 0.96, 0.975], now)
    at = session("pages/batchnorm.py")
    at.selectbox(key=K.BN_GROUP).set_value(a).run()
    assert not at.exception and "BN reached" not in shown(at)
    import ui.bnlab
    same_without_predictions(at, monkeypatch, ui.bnlab, "twins_predict_box", "reveal")

    lock_twins(at, "BN", 3.0, "3")  # A measures 2 epochs apart: exactly on the ±1 boundary
    at = session("pages/batchnorm.py")  # a reload: the values come back from the runs folder
    text = shown(at)
    assert "Which arm reaches 97% test accuracy first? BN · locked in" in text
    assert "How many epochs apart will they reach it? 3 epochs · locked in" in text
    assert [(p.question, p.value) for p in book().pending("bn", "", TWINS)] == [
        ("bn.first_to_97", "BN"), ("bn.epochs_apart", 3.0), ("bn.seeds_to_verdict", "3")]
    book().attach("bn", "", a, TWINS)  # as "Train twins" does for the set it starts
    at.run()
    lock_twins(at, "no-BN", 4.5, "4")  # about B: 3 apart, so 1.5 off
    book().attach("bn", "", b, TWINS)

    at.selectbox(key=K.BN_GROUP).set_value(a).run()
    text = shown(at)
    assert "You: BN · measured: BN · right" in text
    assert "You: 3 epochs · measured: 2 epochs · off by 1 epoch: within range" in text
    assert "You: 3 · measured: 3 · right" in text
    assert "BN reached 97% at epoch 2 on average (3.0 s of training), no-BN at epoch 4 (6.0 s)." in text
    assert "BN at epoch 2, no-BN at epoch 4 on average: 2 epochs apart." in text
    assert "With 3 seeds the paired t-test gave p = " in text
    assert "Your predictions so far: 3 of 3 within range." in text
    at.selectbox(key=K.BN_GROUP).set_value(b).run()
    text = shown(at)
    assert "You: no-BN · measured: BN · wrong" in text
    assert "You: 4.5 epochs · measured: 3 epochs · off by 1.5 epochs: outside the ±1 range" in text
    assert "BN reached 97% at epoch 1 on average (1.5 s of training), no-BN at epoch 4 (6.0 s)." in text
    assert "BN at epoch 1, no-BN at epoch 4 on average: 3 epochs apart." in text
    assert "Only 1 seed(s) have ended: a verdict needs at least 3." in text  # not scored: nothing to measure
    assert "Your predictions so far: 3 of 5 within range." in text
    scored = {(p.subject, p.question): p.scored and p.scored.within for p in book().all()[0]}  # None: unmeasured
    assert scored == {(a, "bn.first_to_97"): True, (a, "bn.epochs_apart"): True, (a, "bn.seeds_to_verdict"): True,
                      (b, "bn.first_to_97"): False, (b, "bn.epochs_apart"): False, (b, "bn.seeds_to_verdict"): None}


def test_each_experiment_of_the_lab_gets_only_its_own_predictions(app_env, monkeypatch):
    """A sweep prediction locked in first stays pending when twins start, and is attached to the sweep when it
    starts; train vs eval mode is scored exactly on its ±5-point boundary against the page's own measurement.
    Catches predictions attached by page (the sweep's guess scored against a twin set) and widgets sharing keys."""
    import ui.bnlab
    from ui.registry import get_store

    monkeypatch.setattr(ui.bnlab, "TrainConfig", lambda **kw: TrainConfig(**{**kw, "max_batches": 3}))  # tiny sweep
    at = session("pages/batchnorm.py")
    open_part(at, K.BN_TAB, "Learning-rate headroom")
    at.radio(key=key("bn.sweep_best_lr")).set_value("0.01").run()
    at.button(key=f"{K.PREDICT}_bn_sweep_lock").click().run()
    at = session("pages/batchnorm.py")  # reload
    at.number_input(key=K.BN_EPOCHS).set_value(1)
    at.number_input(key=K.BN_SEEDS).set_value(1)
    at.number_input(key=K.BN_MAX_BATCHES).set_value(3)
    at.radio(key=key("bn.first_to_97")).set_value("neither").run()
    at.button(key=f"{K.PREDICT}_bn_twins_lock").click().run()
    at.button(key=K.BN_START).click().run()
    store = get_store()
    wait_ended(store)
    at.run()
    assert not at.exception
    (twins,) = lab_groups(store, LabKind.TWINS)
    assert [p.question for p in book().about(twins)] == ["bn.first_to_97"]
    assert [p.value for p in book().pending("bn", "", ("bn.sweep_best_lr",))] == ["0.01"]  # still the sweep's
    text = shown(at)
    assert "You: neither · measured: neither · right" in text  # 3 batches reach nowhere near 97%
    assert "Neither arm reached 97% test accuracy in the epochs it trained." in text

    # Train vs eval mode: the prediction exactly 5 points from what the page measures
    bn_run = next(r for r in group_runs(store, twins) if r.config.batch_norm)
    modes = train_vs_eval(store.load_model(bn_run.id), bn_run.config.dataset, store.data_dir)  # as the page does
    measured, at2 = P.bn_train_mode_batch2(modes).measured, next(m for m in modes if m.batch_size == 2)
    guess = measured + 5 if measured <= 95 else measured - 5
    open_part(at, K.BN_TAB, "Train vs eval mode")
    at.number_input(key=key("bn.train_mode_batch2")).set_value(guess).run()
    at.button(key=f"{K.PREDICT}_bn_modes_lock").click().run()
    at.button(key=K.BN_MODES).click().run()
    assert not at.exception
    text = shown(at)
    assert f"measured: {measured:g} % · off by 5 %: within range" in text
    assert f"In train mode at batch size 2 the network classified {at2.train_acc:.1%} of the images" in text
    (p,) = book().about(f"bn-modes:{bn_run.id}")
    assert p.scored.within is True and p.value == pytest.approx(guess)

    open_part(at, K.BN_TAB, "Learning-rate headroom")
    assert "Which learning rate of the sweep gives the no-BN network its best accuracy? 0.01 · locked in" in shown(at)
    at.button(key=K.BN_SWEEP_START).click().run()
    wait_ended(store)
    at.run()
    assert not at.exception
    (sweep,) = lab_groups(store, LabKind.LR_SWEEP)
    final = {r.config.lr: r.snapshot.final.test_acc for r in group_runs(store, sweep) if not r.config.batch_norm}
    best = max(final, key=final.get)
    text = shown(at)
    assert f"You: 0.01 · measured: {best:g} · {'right' if best == 0.01 else 'wrong'}" in text
    assert f"Without BN the final test accuracy was 0.001: {final[1e-3]:.2%}, 0.01: {final[1e-2]:.2%}" in text
    assert [p.question for p in book().about(sweep)] == ["bn.sweep_best_lr"]
    assert [p.question for p in book().about(twins)] == ["bn.first_to_97"]


# --- the Tuning lab -------------------------------------------------------------------------------------------
@pytest.fixture
def tuning(app_env):
    yield
    from ui.tuning import get_tuner

    get_tuner().stop_all(wait=30)


def run_gvr(at) -> str:
    """Start the random-vs-grid lesson on the tiniest budget, wait for it, and return its group."""
    from ui.tuning import get_tuner

    at.number_input(key=K.TUNE_EPOCHS).set_value(1)
    at.number_input(key=K.TUNE_BATCHES).set_value(1)
    at.button(key=K.TUNE_GVR_START).click().run()
    assert not at.exception
    tuner, group = get_tuner(), at.session_state[K.TUNE_GVR_GROUP]
    wait_until(lambda: not any(tuner.running(n) for n, _ in tuner.specs()), TIMEOUT, 0.05, "both studies to end")
    at.run()
    assert not at.exception
    return group


def measured_by_hand(group: str) -> tuple[float, float, float, float]:
    """(grid's best, random's best, range of the grid's mean accuracy over its learning rates, over its ε)."""
    from ui.tuning import get_tuner

    tuner = get_tuner()
    rows = {s.lesson: [t for t in tuner.open(n)[0].trials if t.value is not None]
            for n, s in tuner.specs() if s.group == group}
    spreads = []
    for param in ("lr", "eps"):
        means = [statistics.mean(t.value for t in rows["grid"] if t.params[param] == v)
                 for v in {t.params[param] for t in rows["grid"]}]
        spreads.append(max(means) - min(means))
    return max(t.value for t in rows["grid"]), max(t.value for t in rows["random"]), *spreads


def test_tuning_predictions_are_revealed_from_the_studies(tuning, monkeypatch):
    """Catches a reveal that is not the studies' own numbers (best accuracies and the grid's main effects, recomputed
    here from Optuna's trials), predictions lost on reload, and elements added for a learner who predicts nothing."""
    import ui.tuning_lessons

    at = session("pages/tuning.py")
    first = run_gvr(at)
    same_without_predictions(at, monkeypatch, ui.tuning_lessons, "predict_box", "gvr_reveal")

    at.radio(key=key("tuning.random_wins")).set_value("random search")
    at.radio(key=key("tuning.matters")).set_value("the learning rate").run()
    at.button(key=f"{K.PREDICT}_tuning_gvr_lock").click().run()
    at = session("pages/tuning.py")  # reload
    assert "Will random search find a better learning rate than the grid, here? random search · locked in" in shown(at)
    second = run_gvr(at)
    assert second != first and [p.question for p in book().about(second)] == ["tuning.random_wins", "tuning.matters"]
    book().predict("tuning.random_wins", "the grid")  # and one about the first repetition, to compare the reasons
    book().attach("tuning", "", first, ["tuning.random_wins"])
    reasons = {}
    for group in (first, second):
        at.session_state[K.TUNE_GVR_GROUP] = group
        at.run()
        text = shown(at)
        grid, random, lr, eps = measured_by_hand(group)
        winner = "a tie" if random == grid else "random search" if random > grid else "the grid"
        reasons[group] = f"Best test accuracy: random search {random:.2%}, the grid {grid:.2%}."
        assert reasons[group] in text
        you = "random search" if group == second else "the grid"
        assert f"You: {you} · measured: {winner} · {'right' if you == winner else 'wrong'}" in text
    matters = "the learning rate" if lr >= 2 * eps else "Adam's ε" if eps >= 2 * lr else "both alike"
    assert (f"In the grid the mean test accuracy moved by {lr * 100:.2f} points across its learning rates and by "
            f"{eps * 100:.2f} points across its values of Adam's ε.") in text
    assert f"You: the learning rate · measured: {matters} ·" in text
    assert (reasons[first] != reasons[second]) == (measured_by_hand(first)[:2] != measured_by_hand(second)[:2])


# --- the Class page -------------------------------------------------------------------------------------------
def test_the_class_page_shows_the_class_predictions_without_names(app_env, monkeypatch):
    """Catches a learner's name, key or id on the Class page's predictions, an experiment counted once per
    prediction instead of once, and a distribution that drops the choices nobody took."""
    from core.store.learners import LearnerBook
    from ui.registry import get_store

    monkeypatch.setenv("TEACHER_KEY", "teacher-secret-123")
    learners = LearnerBook(get_store().root)
    people = [learners.register(name) for name in ("Ann", "Ben", "Cy")]
    predictions = book()
    for (learner, _), first, gap in zip(people, ("BN", "BN", "no-BN"), (0.5, 1.0, 2.0)):
        p = predictions.predict("bn.first_to_97", first, learner.id)
        predictions.attach("bn", learner.id, "twins-aaaaaa")
        predictions.reveal(p, P.bn_first_to_97((2.0, 3.0, 3), (4.0, 6.0, 3)))
        predictions.predict("frameworks.gap", gap, learner.id)
    at = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    at.query_params["teacher"] = "teacher-secret-123"
    at.run().switch_page("pages/class_room.py").run()
    assert not at.exception
    (table,) = [d.value for d in at.table if "the class predicted" in d.value.columns]
    rows = table.set_index("question")
    bn = rows.loc["Which arm reaches 97% test accuracy first?"]
    assert bn["predictions"] == 3
    assert bn["the class predicted"] == "BN: 2 · no-BN: 1 · the same epoch: 0 · neither: 0"
    assert bn["measured"] == "BN" and bn["within range"] == "2 of 3"  # one experiment, three predictions about it
    gap = rows.loc["How far apart will the final test accuracies of Keras and PyTorch be?"]
    assert gap["the class predicted"] == "median 1 point (middle half 0.5–2, all 0.5–2)"
    assert gap["measured"] == "not yet" and gap["within range"] == "–"
    words = table.to_string()
    for learner, secret in people:
        assert learner.name not in words and learner.id not in words and secret not in words
