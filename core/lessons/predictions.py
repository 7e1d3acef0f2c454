"""Predict, then reveal: a learner commits to what an experiment will show, and the page scores it against what it
measured. Never a gate: a learner who predicts nothing sees the page as it always was.

Each question is a simple input whose answer an experiment measures: a choice (scored as right or wrong) or a
number with a tolerance (within range when |prediction - measured| <= tolerance; a prediction exactly on the
boundary is within). `Outcome`s are computed from the numbers the page itself computed (the lab's own summaries),
with a one-sentence reason built from those numbers, so the sentence changes when the measurement does.

The record is predictions.jsonl in the runs folder: append-only lines, a prediction when it is locked in, its
subject (the run group it is about) when the experiment starts, its outcome once measured. Read like every file
of the runs folder: a line that is not a record this module writes is skipped and said.
"""
from __future__ import annotations

import json
import math
import os
import statistics
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from core.store.files import StoreFileError, StoreFileMissing, append_lines, read_file
from core.store.records import OWNER

FILE = "predictions.jsonl"
MAX_FILE = 16 << 20
EPS = 1e-9  # "exactly on the boundary" survives the float rounding of a percentage


@dataclass(frozen=True)
class Question:
    id: str  # "<page>.<what>"
    text: str
    kind: str  # "choice" or "number"
    choices: tuple[str, ...] = ()
    tolerance: float = 0.0  # numbers: how far off still counts as within range
    unit: str = ""  # numbers: shown after the value ("epochs", "%", "points")
    lo: float = -math.inf
    hi: float = math.inf

    @property
    def page(self) -> str:
        return self.id.split(".", 1)[0]

    def check(self, value: Any) -> Any:
        """The value, if it is an answer to this question; ValueError otherwise."""
        if self.kind == "choice":
            if value not in self.choices:
                raise ValueError(f"{self.id}: choose one of {', '.join(self.choices)}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not self.lo <= value <= self.hi:
            raise ValueError(f"{self.id}: a number from {self.lo:g} to {self.hi:g}")
        return float(value)

    def shown(self, value: Any) -> str:
        if self.kind == "choice":
            return str(value)
        return f"{value:g}{self.after(value)}"

    def after(self, value: float) -> str:
        """The unit after a number: " epochs", " epoch" after 1, "" for none."""
        unit = self.unit[:-1] if value == 1 and self.unit.endswith("s") else self.unit
        return " " + unit if unit else ""


QUESTIONS: dict[str, Question] = {q.id: q for q in (
    Question("bn.first_to_97", "Which arm reaches 97% test accuracy first?", "choice",
             ("BN", "no-BN", "the same epoch", "neither")),
    Question("bn.epochs_apart", "How many epochs apart will they reach it?", "number", tolerance=1.0,
             unit="epochs", lo=0, hi=200),
    Question("bn.seeds_to_verdict", "After how many seeds will the verdict separate them (more than noise)?",
             "choice", ("3", "4", "5", "not within the seeds run")),
    Question("bn.train_mode_batch2", "Test accuracy in train mode at batch size 2 (eval mode: shown after)?",
             "number", tolerance=5.0, unit="%", lo=0, hi=100),
    Question("bn.sweep_best_lr", "Which learning rate of the sweep gives the no-BN network its best accuracy?",
             "choice", ("0.001", "0.01", "0.05")),
    Question("tuning.random_wins", "Will random search find a better learning rate than the grid, here?", "choice",
             ("random search", "the grid", "a tie")),
    Question("tuning.matters", "Which of the two parameters will matter?", "choice",
             ("the learning rate", "Adam's ε", "both alike")),
    Question("softmax.grad_true", "The gradient of the loss for the true class's logit, for these sliders?",
             "number", tolerance=0.02, lo=-20, hi=20),  # (ŷ − y)/T with T from 0.05: within ±20
    Question("softmax.double_floor", "The lowest loss double softmax can reach with 10 classes?", "number",
             tolerance=0.05, lo=0, hi=10),
    Question("frameworks.gap", "How far apart will the final test accuracies of Keras and PyTorch be?", "number",
             tolerance=0.5, unit="points", lo=0, hi=100),
)}


@dataclass(frozen=True)
class Outcome:
    measured: Any  # a choice, a number, or None when the experiment cannot answer (and `reason` says why)
    reason: str  # one sentence from the computed numbers


@dataclass(frozen=True)
class Score:
    within: bool | None  # None: nothing measured to score against
    off: float | None  # numbers: how far off

    def describe(self, q: Question) -> str:
        if self.within is None:
            return "not scored"
        if q.kind == "choice":
            return "right" if self.within else "wrong"
        return f"off by {self.off:g}{q.after(self.off)}: " + ("within range" if self.within else
                                                              f"outside the ±{q.tolerance:g} range")


def score(q: Question, value: Any, outcome: Outcome) -> Score:
    if outcome.measured is None:
        return Score(None, None)
    if q.kind == "choice":
        return Score(value == outcome.measured, None)
    off = abs(float(value) - float(outcome.measured))
    return Score(off <= q.tolerance + EPS, round(off, 9))


# --- outcomes, from what the labs compute --------------------------------------------------------------------
def bn_first_to_97(bn_reach: tuple, plain_reach: tuple) -> Outcome:
    """From summarize_arm(...).reach[0.97] of each arm: (mean epochs, mean seconds, runs that reached)."""
    (be, bs, _), (pe, ps, _) = bn_reach, plain_reach
    if be is None and pe is None:
        return Outcome("neither", "Neither arm reached 97% test accuracy in the epochs it trained.")
    if pe is None:
        return Outcome("BN", f"BN reached 97% at epoch {be:g} on average ({bs:.1f} s); no-BN never did.")
    if be is None:
        return Outcome("no-BN", f"no-BN reached 97% at epoch {pe:g} on average ({ps:.1f} s); BN never did.")
    first = "the same epoch" if be == pe else ("BN" if be < pe else "no-BN")
    return Outcome(first, f"BN reached 97% at epoch {be:g} on average ({bs:.1f} s of training), no-BN at epoch "
                          f"{pe:g} ({ps:.1f} s).")


def bn_epochs_apart(bn_reach: tuple, plain_reach: tuple) -> Outcome:
    be, pe = bn_reach[0], plain_reach[0]
    if be is None or pe is None:
        arm = "no-BN" if pe is None else "BN"
        return Outcome(None, f"{arm} did not reach 97% in the epochs it trained, so there is no gap to measure.")
    return Outcome(abs(pe - be), f"BN at epoch {be:g}, no-BN at epoch {pe:g} on average: {abs(pe - be):g} epochs "
                                 "apart.")


def bn_seeds_to_verdict(diffs: Sequence[float], alpha: float = 0.05, first: int = 3) -> Outcome:
    """The fewest seeds (from `first`) after which the paired t-test on the per-seed differences (BN - no-BN,
    seed order) says more than noise."""
    from core.lessons.batchnorm import paired_t_test

    for n in range(first, len(diffs) + 1):
        t = paired_t_test(diffs[:n])
        if t.p < alpha:
            return Outcome(str(n) if n <= 5 else "not within the seeds run",
                           f"With {n} seeds the paired t-test gave p = {t.p:.3f} (below {alpha:g}): the verdict "
                           "separates them from there.")
    if len(diffs) < first:
        return Outcome(None, f"Only {len(diffs)} seed(s) have ended: a verdict needs at least {first}.")
    t = paired_t_test(diffs)
    return Outcome("not within the seeds run", f"After all {len(diffs)} seeds the paired t-test still gave p = "
                                               f"{t.p:.3f}: not separable from seed-to-seed noise here.")


def bn_train_mode_batch2(results: Sequence) -> Outcome:
    """From train_vs_eval(...): ModeResult per batch size."""
    r = next((r for r in results if r.batch_size == 2), None)
    if r is None or r.train_acc is None:
        return Outcome(None, "Train mode was not measured at batch size 2.")
    return Outcome(round(r.train_acc * 100, 6), f"In train mode at batch size 2 the network classified "
                                                f"{r.train_acc:.1%} of the images, in eval mode {r.eval_acc:.1%}: "
                                                "each pair's own mean and variance replace what BN learned.")


def bn_sweep_best_lr(final_by_lr: dict[float, float]) -> Outcome:
    """From the sweep's no-BN runs: final test accuracy by learning rate."""
    if not final_by_lr:
        return Outcome(None, "No no-BN run of the sweep has finished an epoch.")
    best = max(final_by_lr, key=final_by_lr.get)
    rest = ", ".join(f"{lr:g}: {acc:.2%}" for lr, acc in sorted(final_by_lr.items()))
    return Outcome(f"{best:g}", f"Without BN the final test accuracy was {rest}: {best:g} was best.")


def tuning_random_wins(random_best: float | None, grid_best: float | None) -> Outcome:
    if random_best is None or grid_best is None:
        return Outcome(None, "One of the two studies has no completed trial yet.")
    who = "a tie" if random_best == grid_best else ("random search" if random_best > grid_best else "the grid")
    return Outcome(who, f"Best test accuracy: random search {random_best:.2%}, the grid {grid_best:.2%}.")


def tuning_matters(spread_lr: float, spread_eps: float, ratio: float = 2.0) -> Outcome:
    """From the grid of the random-vs-grid lesson (core.lessons.tuning.spread_along): how far the mean accuracy
    moves across each parameter's values; one matters when it moves the accuracy `ratio` times as far as the other."""
    if spread_lr >= ratio * spread_eps:
        who = "the learning rate"
    elif spread_eps >= ratio * spread_lr:
        who = "Adam's ε"
    else:
        who = "both alike"
    return Outcome(who, f"In the grid the mean test accuracy moved by {spread_lr * 100:.2f} points across its "
                        f"learning rates and by {spread_eps * 100:.2f} points across its values of Adam's ε.")


def softmax_grad_true(p_true: float, temp: float = 1.0) -> Outcome:
    """The true class's gradient (ŷ − y)/T, from the softmax's probability of it and the temperature."""
    g = (p_true - 1.0) / temp
    if temp == 1.0:
        return Outcome(round(g, 9), f"The softmax gave the true class {p_true:.3f}, so its gradient is ŷ − y = "
                                    f"{p_true:.3f} − 1 = {g:.3f}.")
    return Outcome(round(g, 9), f"The softmax gave the true class {p_true:.3f} at temperature {temp:g}, so its "
                                f"gradient is (ŷ − y)/T = ({p_true:.3f} − 1)/{temp:g} = {g:.3f}.")


def softmax_double_floor(floor: float, n_classes: int = 10) -> Outcome:
    return Outcome(round(floor, 9), f"A perfect one-hot output still goes through softmax again: the loss cannot go "
                                    f"below log(e + {n_classes - 1}) − 1 = {floor:.4f}.")


def frameworks_gap(pytorch_acc: float | None, keras_acc: float | None, yardstick: float | None = None) -> Outcome:
    if pytorch_acc is None or keras_acc is None:
        return Outcome(None, "One of the twins has not completed an epoch.")
    gap = abs(keras_acc - pytorch_acc) * 100
    also = f" (the same PyTorch twin on another thread count differs by {yardstick:.2f} points)" \
        if yardstick is not None else ""
    return Outcome(round(gap, 6), f"Final test accuracy: PyTorch {pytorch_acc:.2%}, Keras {keras_acc:.2%}: "
                                  f"{gap:.2f} points apart{also}.")


# --- the record ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prediction:
    id: str
    question: str
    value: Any
    learner: str  # "" without class mode
    made: float
    subject: str = ""  # the run group (or case) it is about; "" until the experiment starts
    outcome: Outcome | None = None
    scored: Score | None = None

    @property
    def q(self) -> Question:
        return QUESTIONS[self.question]


@dataclass
class _Lines:
    predictions: dict[str, Prediction] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class PredictionBook:
    """Every prediction of this runs folder (thread-safe; one server writes it)."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / FILE
        self._lock = threading.Lock()

    def _read(self) -> _Lines:
        out = _Lines()
        try:
            raw = read_file(self.path, MAX_FILE)
        except StoreFileMissing:
            return out
        except StoreFileError as e:
            out.problems.append(f"{FILE} cannot be used ({e})")
            return out
        for i, line in enumerate(raw.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                self._apply(out.predictions, json.loads(line.decode("utf-8")))
            except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError) as e:
                out.problems.append(f"{FILE} line {i} skipped ({type(e).__name__}: {str(e)[:60]})")
        return out

    @staticmethod
    def _apply(preds: dict[str, Prediction], rec: dict) -> None:
        kind, pid = rec["kind"], rec["id"]
        if not (isinstance(pid, str) and len(pid) <= 40):
            raise ValueError("not an id")
        if kind == "prediction":
            q = QUESTIONS[rec["question"]]
            learner = rec["learner"]
            if not (learner == "" or (isinstance(learner, str) and OWNER.fullmatch(learner))):
                raise ValueError("not a learner")
            made = rec["made"]
            if isinstance(made, bool) or not isinstance(made, (int, float)) or not 0 <= made < 1e11:
                raise ValueError("not a time")
            preds[pid] = Prediction(pid, q.id, q.check(rec["value"]), learner, float(made))
        elif kind == "subject":
            subject = rec["subject"]
            if not (isinstance(subject, str) and 0 < len(subject) <= 80):
                raise ValueError("not a subject")
            p = preds[pid]
            preds[pid] = Prediction(p.id, p.question, p.value, p.learner, p.made, subject, p.outcome, p.scored)
        elif kind == "outcome":
            p = preds[pid]
            measured = rec["measured"]
            if measured is not None:
                measured = p.q.check(measured) if p.q.kind == "choice" else float(measured)
            reason = rec["reason"]
            if not (isinstance(reason, str) and len(reason) <= 1000):
                raise ValueError("not a reason")
            outcome = Outcome(measured, reason)
            preds[pid] = Prediction(p.id, p.question, p.value, p.learner, p.made, p.subject, outcome,
                                    score(p.q, p.value, outcome))
        else:
            raise ValueError(f"unknown kind {str(kind)[:20]!r}")

    def _append(self, rec: dict) -> None:
        """One line; after a torn last line (a process killed mid-write) on a line of its own, so the fragment
        stays one skipped line instead of spoiling this one."""
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
            try:
                size = os.fstat(fd).st_size
                torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
            finally:
                os.close(fd)
        except OSError:
            torn = False
        append_lines(self.path, ([""] if torn else []) + [json.dumps(rec)])

    def predict(self, question: str, value: Any, learner: str = "") -> Prediction:
        """Lock in a prediction (ValueError for an answer the question does not take)."""
        q = QUESTIONS[question]
        value = q.check(value)
        p = Prediction(f"p-{uuid.uuid4().hex[:10]}", q.id, value, learner, time.time())
        with self._lock:
            self._append({"kind": "prediction", "id": p.id, "question": q.id, "value": value, "learner": learner,
                          "made": p.made})
        return p

    def attach(self, page: str, learner: str, subject: str, questions: Sequence[str] | None = None) -> list[Prediction]:
        """The experiment started: the learner's pending predictions of this page (only `questions`, for a page that
        runs several experiments) are about `subject` now."""
        with self._lock:
            pending = [p for p in self._read().predictions.values() if _pending(p, page, learner, questions)]
            for p in pending:
                self._append({"kind": "subject", "id": p.id, "subject": subject})
        return pending

    def reveal(self, prediction: Prediction, outcome: Outcome) -> Prediction:
        """Record what was measured (once: a prediction keeps its first outcome) and score it."""
        with self._lock:
            current = self._read().predictions.get(prediction.id, prediction)
            if current.outcome is not None:
                return current
            self._append({"kind": "outcome", "id": prediction.id, "measured": outcome.measured,
                          "reason": outcome.reason})
            return Prediction(**{**asdict(current), "outcome": outcome, "scored": score(current.q, current.value,
                                                                                       outcome)})

    def all(self) -> tuple[list[Prediction], list[str]]:
        with self._lock:
            lines = self._read()
        return sorted(lines.predictions.values(), key=lambda p: p.made), lines.problems

    def pending(self, page: str, learner: str, questions: Sequence[str] | None = None) -> list[Prediction]:
        return [p for p in self.all()[0] if _pending(p, page, learner, questions)]

    def about(self, subject: str, learner: str | None = None) -> list[Prediction]:
        return [p for p in self.all()[0] if p.subject == subject and (learner is None or p.learner == learner)]

    def of(self, learner: str) -> list[Prediction]:
        return [p for p in self.all()[0] if p.learner == learner]


def _pending(p: Prediction, page: str, learner: str, questions: Sequence[str] | None) -> bool:
    """Locked in by `learner` on `page` (and one of `questions`, when given) and not yet about an experiment."""
    return (p.learner == learner and not p.subject and p.q.page == page
            and (questions is None or p.question in questions))


def calibration(predictions: Sequence[Prediction]) -> tuple[int, int]:
    """(within range, scored) over the learner's predictions."""
    scored = [p for p in predictions if p.scored is not None and p.scored.within is not None]
    return sum(p.scored.within for p in scored), len(scored)


def distribution(predictions: Sequence[Prediction], question: str) -> dict[str, Any]:
    """The class's answers to one question, anonymised: counts of each choice, or the numbers' quartiles."""
    values = [p.value for p in predictions if p.question == question]
    q = QUESTIONS[question]
    if q.kind == "choice":
        return {"n": len(values), "counts": {c: values.count(c) for c in q.choices}}
    if not values:
        return {"n": 0}
    qs = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {"n": len(values), "min": min(values), "q1": qs[0], "median": qs[1], "q3": qs[2], "max": max(values)}


def _number(q: Question, v: float) -> str:
    return f"{v:.4g}{q.after(v)}"


def describe_distribution(q: Question, d: dict[str, Any]) -> str:
    """distribution(...) in words: every choice with its count, or the median, middle half and range."""
    if q.kind == "choice":
        return " · ".join(f"{c}: {k}" for c, k in d["counts"].items())
    if d["n"] == 0:
        return "–"
    if d["n"] == 1:
        return _number(q, d["median"])
    return (f"median {_number(q, d['median'])} (middle half {d['q1']:.4g}–{d['q3']:.4g}, all {d['min']:.4g}–"
            f"{d['max']:.4g})")


def class_rows(predictions: Sequence[Prediction]) -> list[dict[str, Any]]:
    """The class's predictions, one row per question anyone predicted, anonymised (no learner and no experiment
    named): what the class predicted, what their experiments measured (each experiment counted once), and how many
    predictions were within range of their own experiment's measurement."""
    rows = []
    for qid, q in QUESTIONS.items():
        asked = [p for p in predictions if p.question == qid]
        if not asked:
            continue
        measured = list({p.subject: p.outcome.measured for p in asked
                         if p.subject and p.outcome is not None and p.outcome.measured is not None}.values())
        if not measured:
            seen = "not yet"
        elif len(measured) == 1:
            seen = q.shown(measured[0]) if q.kind == "choice" else _number(q, measured[0])
        elif q.kind == "choice":
            seen = " · ".join(f"{c}: {measured.count(c)}" for c in q.choices if measured.count(c))
        else:
            seen = f"median {_number(q, statistics.median(measured))} (all {min(measured):.4g}–{max(measured):.4g})"
        right, scored = calibration(asked)
        rows.append({"question": q.text, "predictions": len(asked),
                     "the class predicted": describe_distribution(q, distribution(asked, qid)),
                     "measured": seen + (f" ({len(measured)} experiments)" if len(measured) > 1 else ""),
                     "within range": f"{right} of {scored}" if scored else "–"})
    return rows
