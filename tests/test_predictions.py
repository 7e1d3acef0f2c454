"""Predict, then reveal (core/lessons/predictions.py): predictions kept in the runs folder, scored against what the
labs measured, with reasons built from the measured numbers. Each test names the wrong implementation it catches."""
import pytest

from core.lessons import predictions as P
from core.lessons.batchnorm import ModeResult


def test_numbers_are_within_range_on_the_boundary_and_outside_beyond_it():
    """Catches a strict '<' (a prediction exactly on the boundary counted as a miss) and a percentage compared with
    a fraction."""
    q = P.QUESTIONS["bn.train_mode_batch2"]  # tolerance 5 points
    measured = P.bn_train_mode_batch2([ModeResult(2, 0.97, 0.625, None)])
    assert measured.measured == pytest.approx(62.5)
    assert P.score(q, 57.5, measured).within is True  # exactly 5 points below
    assert P.score(q, 67.5, measured).within is True  # exactly 5 points above
    assert P.score(q, 57.4, measured).within is False and P.score(q, 57.4, measured).off == pytest.approx(5.1)
    assert P.score(q, 0.625, measured).within is False


def test_choices_and_unmeasured_outcomes():
    q = P.QUESTIONS["bn.first_to_97"]
    out = P.bn_first_to_97((2.0, 10.0, 3), (4.0, 21.0, 3))
    assert out.measured == "BN" and P.score(q, "BN", out).within and not P.score(q, "no-BN", out).within
    assert P.bn_first_to_97((None, None, 0), (None, None, 0)).measured == "neither"
    gap = P.bn_epochs_apart((2.0, 10.0, 3), (None, None, 0))
    assert gap.measured is None and P.score(P.QUESTIONS["bn.epochs_apart"], 1, gap).within is None


def test_the_reason_is_built_from_the_measurement():
    """Catches a canned sentence: the reason must change when the numbers do."""
    a = P.bn_first_to_97((2.0, 10.0, 3), (4.0, 21.0, 3))
    b = P.bn_first_to_97((3.0, 15.5, 3), (3.0, 16.0, 3))
    assert a.reason != b.reason and "epoch 2" in a.reason and "epoch 4" in a.reason
    assert b.measured == "the same epoch" and "15.5 s" in b.reason
    assert P.softmax_grad_true(0.7).measured == pytest.approx(-0.3) and "0.700 − 1 = -0.300" in P.softmax_grad_true(0.7).reason
    assert P.frameworks_gap(0.9513, 0.9419, 0.05).measured == pytest.approx(0.94)


def test_seeds_to_verdict_uses_the_paired_test_seed_by_seed():
    """A shared seed effect with a steady BN edge separates at 3 seeds (paired); independent noise around zero never
    does. Catches counting seeds from 1 (no verdict is given under 3) and an unpaired comparison."""
    steady = [0.0021, 0.0019, 0.0020, 0.0022]
    assert P.bn_seeds_to_verdict(steady).measured == "3"
    noisy = [0.004, -0.003, 0.001, -0.002, 0.0005]
    assert P.bn_seeds_to_verdict(noisy).measured == "not within the seeds run"
    assert P.bn_seeds_to_verdict([0.002, 0.002]).measured is None


def test_predictions_survive_a_restart_and_keep_their_first_outcome(tmp_path):
    book = P.PredictionBook(tmp_path)
    p = book.predict("bn.first_to_97", "no-BN", learner="l-ann")
    book.predict("softmax.double_floor", 1.5)
    with pytest.raises(ValueError):
        book.predict("bn.first_to_97", "maybe")
    assert [x.id for x in book.pending("bn", "l-ann")] == [p.id]
    book.attach("bn", "l-ann", "twins-abc123")
    again = P.PredictionBook(tmp_path)  # a reload, a restart
    (kept,) = again.about("twins-abc123")
    assert kept.value == "no-BN" and kept.learner == "l-ann" and again.pending("bn", "l-ann") == []
    revealed = again.reveal(kept, P.bn_first_to_97((2.0, 10.0, 3), (4.0, 21.0, 3)))
    assert revealed.scored.within is False
    again.reveal(kept, P.bn_first_to_97((5.0, 10.0, 3), (4.0, 21.0, 3)))  # a later measurement does not rewrite it
    (final,) = P.PredictionBook(tmp_path).about("twins-abc123")
    assert final.outcome.measured == "BN" and P.calibration(P.PredictionBook(tmp_path).of("l-ann")) == (0, 1)


def test_hostile_lines_are_skipped_and_said(tmp_path):
    book = P.PredictionBook(tmp_path)
    p = book.predict("bn.epochs_apart", 2)
    with open(tmp_path / P.FILE, "ab") as f:
        f.write(b'{"kind": "prediction", "id": "x", "question": "nope", "value": 1, "learner": "", "made": 1}\n')
        f.write(b'{"kind": "prediction", "id": "y", "question": "bn.epochs_apart", "value": 1e999, "learner": "", '
                b'"made": 1}\n\xff\xfe\n{"kind": "outcome", "id": "zz", "measured": 1, "reason": "r"}\n')
        f.write(b'{"kind": "prediction", "id": "torn", "quest')  # a writer killed mid-line
    book.predict("bn.epochs_apart", 3)  # appended on a line of its own
    preds, problems = P.PredictionBook(tmp_path).all()
    assert [x.value for x in preds] == [2.0, 3.0] and preds[0].id == p.id
    assert len(problems) == 5


def test_the_class_distribution_is_anonymous():
    preds = [P.Prediction(f"p{i}", "bn.first_to_97", v, f"l-{i}", 0.0) for i, v in enumerate(["BN", "BN", "no-BN"])]
    d = P.distribution(preds, "bn.first_to_97")
    assert d == {"n": 3, "counts": {"BN": 2, "no-BN": 1, "the same epoch": 0, "neither": 0}}
    nums = [P.Prediction(f"p{i}", "frameworks.gap", float(v), "", 0.0) for i, v in enumerate([0, 1, 2, 3, 4])]
    assert P.distribution(nums, "frameworks.gap")["median"] == 2.0


def test_a_page_with_several_experiments_attaches_each_its_own_predictions(tmp_path):
    """The BatchNorm lab asks about the twins and about the sweep: a sweep prediction locked in first must stay
    pending when twins start. Catches attaching by page alone (the sweep's guess scored against a twin set)."""
    book = P.PredictionBook(tmp_path)
    sweep = book.predict("bn.sweep_best_lr", "0.01")
    twins = book.predict("bn.first_to_97", "BN")
    assert [p.id for p in book.attach("bn", "", "twins-aaaaaa", ("bn.first_to_97", "bn.epochs_apart"))] == [twins.id]
    assert [p.id for p in book.pending("bn", "", ("bn.sweep_best_lr",))] == [sweep.id]
    assert book.pending("bn", "", ("bn.first_to_97",)) == []
    book.attach("bn", "", "lr-sweep-bbbbbb", ("bn.sweep_best_lr",))
    assert [p.id for p in book.about("lr-sweep-bbbbbb")] == [sweep.id] and book.pending("bn", "") == []


def test_spread_along_a_parameter_is_the_range_of_its_means():
    """On a 2 x 2 grid by hand: accuracy 0.9/0.8 at lr 0.01 and 0.5/0.6 at lr 0.1 (means 0.85 and 0.55: 0.30 apart),
    ε means 0.70 and 0.70 (0 apart). Catches the range of single trials (0.40) instead of the means', and a failed
    trial counted as an accuracy."""
    from core.lessons.tuning import TrialRow, spread_along

    def row(n, lr, eps, acc, state="COMPLETE"):
        return TrialRow(n, state, {"lr": lr, "eps": eps}, acc, 1, 1.0, None, "")

    rows = [row(0, 0.01, 1e-8, 0.9), row(1, 0.01, 1e-6, 0.8), row(2, 0.1, 1e-8, 0.5), row(3, 0.1, 1e-6, 0.6),
            row(4, 1.0, 1e-8, None, "FAIL")]
    assert spread_along(rows, "lr") == pytest.approx(0.30) and spread_along(rows, "eps") == pytest.approx(0.0)
    assert spread_along(rows[:2], "lr") is None  # one value: nothing to compare
    out = P.tuning_matters(0.30, 0.0)
    assert out.measured == "the learning rate" and "30.00 points" in out.reason and "0.00 points" in out.reason
    assert P.tuning_matters(0.01, 0.012).measured == "both alike"
    assert P.tuning_matters(0.01, 0.05).measured == "Adam's ε"
    assert P.tuning_matters(0.01, 0.012).reason != P.tuning_matters(0.02, 0.012).reason


def test_class_rows_count_each_experiment_once_and_name_nobody():
    """Three learners predict about two twin sets (two about one, one about the other). Catches an experiment counted
    once per prediction (BN: 2 instead of 1), a learner's id in a row, and a number question's quartiles misread."""
    def pred(i, q, v, subject="", measured=None):
        o = P.Outcome(measured, "r") if measured is not None else None
        p = P.Prediction(f"p{i}", q, v, f"l-secret{i}", 0.0, subject, o)
        return P.Prediction(**{**p.__dict__, "scored": P.score(p.q, v, o) if o else None})

    rows = P.class_rows([pred(0, "bn.first_to_97", "BN", "twins-a", "BN"),
                         pred(1, "bn.first_to_97", "no-BN", "twins-a", "BN"),
                         pred(2, "bn.first_to_97", "BN", "twins-b", "neither"),
                         *(pred(3 + i, "bn.epochs_apart", v) for i, v in enumerate((1.0, 2.0, 4.0)))])
    first, apart = rows
    assert first == {"question": "Which arm reaches 97% test accuracy first?", "predictions": 3,
                     "the class predicted": "BN: 2 · no-BN: 1 · the same epoch: 0 · neither: 0",
                     "measured": "BN: 1 · neither: 1 (2 experiments)", "within range": "1 of 3"}
    assert apart["the class predicted"] == "median 2 epochs (middle half 1–4, all 1–4)"
    assert apart["measured"] == "not yet"
    assert "secret" not in repr(rows)
