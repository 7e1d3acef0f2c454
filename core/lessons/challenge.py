"""A class challenge and its leaderboard: rules composed from run settings and limits, checked by the server from
each run's own config and metrics (nothing a learner types is taken on trust).

Two goals:
    accuracy   the highest test accuracy (of the run's last completed epoch: one run, one accuracy)
    speed      reach `target` test accuracy in the fewest seconds of training (the epochs' own timing, pauses
               excluded; the first epoch that reaches it counts)
Limits: at most `max_epochs` epochs, at most `max_parameters` trainable parameters, a `dataset`, BatchNorm required
on or off, at most `max_batch_size`. A run that breaks a rule is shown as not qualifying, with the rule.

The challenge lives in the runs folder as challenge.json, read like every file there (checked field by field).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Sequence

from core.engine.config import trainable_parameters
from core.engine.data import DATASETS
from core.store.files import StoreFileError, StoreFileMissing, atomic_write_json, read_file
from core.store.runs import RunInfo

FILE = "challenge.json"
GOALS = ("accuracy", "speed")


@dataclass(frozen=True)
class Challenge:
    title: str
    goal: str = "accuracy"
    target: float | None = None  # speed: the test accuracy to reach (0-1)
    max_epochs: int | None = None
    max_parameters: int | None = None
    dataset: str | None = "mnist"
    batch_norm: bool | None = None  # required on (True) or off (False); None: either
    max_batch_size: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.title, str) or not 1 <= len(self.title.strip()) <= 120 or \
                not self.title.isprintable():
            raise ValueError("title: one line of 1 to 120 characters")
        if self.goal not in GOALS:
            raise ValueError(f"goal: one of {', '.join(GOALS)}")
        if self.goal == "speed" and not (_real(self.target) and 0 < self.target <= 1):
            raise ValueError("target: a speed challenge needs a test accuracy to reach, between 0 and 1")
        for name in ("max_epochs", "max_parameters", "max_batch_size"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ValueError(f"{name}: a whole number from 1, or none")
        if self.dataset is not None and self.dataset not in DATASETS:
            raise ValueError(f"dataset: one of {', '.join(DATASETS)}, or none")
        if self.batch_norm is not None and not isinstance(self.batch_norm, bool):
            raise ValueError("batch_norm: true, false or none")

    def rules(self) -> list[str]:
        out = []
        if self.dataset:
            out.append(f"trained on {self.dataset}")
        if self.max_epochs:
            out.append(f"at most {self.max_epochs} epoch{'s' if self.max_epochs > 1 else ''}")
        if self.max_parameters:
            out.append(f"at most {self.max_parameters:,} parameters")
        if self.batch_norm is not None:
            out.append("with BatchNorm" if self.batch_norm else "without BatchNorm")
        if self.max_batch_size:
            out.append(f"batch size at most {self.max_batch_size}")
        return out

    def describe(self) -> str:
        goal = ("highest test accuracy" if self.goal == "accuracy" else
                f"reach {self.target:.1%} test accuracy in the fewest seconds")
        return f"{goal}" + (f", {', '.join(self.rules())}" if self.rules() else "")

    def broken(self, run: RunInfo) -> list[str]:
        """The rules `run` breaks, from its own config."""
        c, out = run.config, []
        if self.dataset and c.dataset != self.dataset:
            out.append(f"trained on {c.dataset}, not {self.dataset}")
        if self.max_epochs and c.epochs > self.max_epochs:
            out.append(f"{c.epochs} epochs, more than {self.max_epochs}")
        if self.max_parameters and (n := trainable_parameters(c)) > self.max_parameters:
            out.append(f"{n:,} parameters, more than {self.max_parameters:,}")
        if self.batch_norm is not None and c.batch_norm != self.batch_norm:
            out.append("BatchNorm " + ("off" if self.batch_norm else "on") + ", the rules say " +
                       ("on" if self.batch_norm else "off"))
        if self.max_batch_size and c.batch_size > self.max_batch_size:
            out.append(f"batch size {c.batch_size}, more than {self.max_batch_size}")
        return out

    def score(self, run: RunInfo) -> float | None:
        """accuracy: the final test accuracy; speed: seconds of training until the first epoch at the target. None
        when the run has no result (yet) or never reached the target."""
        history = run.snapshot.history
        if not history or run.snapshot.status != "finished":
            return None
        if self.goal == "accuracy":
            return history[-1].test_acc
        elapsed = 0.0
        for h in history:
            elapsed += h.seconds
            if h.test_acc >= self.target:
                return elapsed
        return None

    def better(self, a: float, b: float) -> bool:
        return a > b if self.goal == "accuracy" else a < b


@dataclass(frozen=True)
class Entry:
    """One run as the leaderboard judges it."""
    run: RunInfo
    score: float | None
    broken: tuple[str, ...]

    @property
    def qualifies(self) -> bool:
        return not self.broken and self.score is not None


@dataclass(frozen=True)
class Row:
    """One learner on the leaderboard: their best qualifying run, if any, and their runs that do not qualify."""
    owner: str
    best: Entry | None
    not_qualifying: tuple[Entry, ...]
    live: int  # runs still training or waiting


def leaderboard(challenge: Challenge, runs: Sequence[RunInfo], owners: Sequence[str] = ()) -> list[Row]:
    """One row per learner (those in `owners`, and every owner of a run), best first; learners without a qualifying
    run last. Runs without an owner (started before class mode) are not on it."""
    by_owner: dict[str, list[RunInfo]] = {o: [] for o in owners if o}
    for r in runs:
        if r.owner:
            by_owner.setdefault(r.owner, []).append(r)
    rows = []
    for owner, mine in by_owner.items():
        entries = [Entry(r, challenge.score(r), tuple(challenge.broken(r))) for r in mine if not r.live]
        good = [e for e in entries if e.qualifies]
        best = None
        for e in good:
            if best is None or challenge.better(e.score, best.score):
                best = e
        bad = tuple(e for e in entries if e.broken)
        rows.append(Row(owner, best, bad, sum(1 for r in mine if r.live)))
    ranked = sorted((r for r in rows if r.best), key=lambda r: r.best.score, reverse=challenge.goal == "accuracy")
    return ranked + sorted((r for r in rows if not r.best), key=lambda r: r.owner)


def save_challenge(root: Path, challenge: Challenge | None) -> None:
    path = Path(root) / FILE
    if challenge is None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        return
    atomic_write_json(path, asdict(challenge))


def load_challenge(root: Path) -> tuple[Challenge | None, str | None]:
    """(the challenge, or None; what was wrong with the file, if anything)."""
    try:
        raw = read_file(Path(root) / FILE)
    except StoreFileMissing:
        return None, None
    except StoreFileError as e:
        return None, f"{FILE} cannot be used ({e})"
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not an object")
        known = {f.name for f in fields(Challenge)}
        return Challenge(**{k: v for k, v in data.items() if k in known}), None
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError) as e:
        return None, f"{FILE} could not be read ({str(e)[:120]}): compose the challenge again"


def _real(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
