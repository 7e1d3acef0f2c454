"""precision="auto": decided by measuring this machine once per network, kept per machine and network, re-measured
when the machine changes.

The measurement itself is replaced by a stand-in in most of these tests: what is tested is the decision and its
cache, which must not depend on how fast this CPU is."""
import json

import pytest

from core.engine import course, precision as P
from core.engine.config import TrainConfig


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """No fixed answer, a cache file of this test's own, no answer remembered from earlier in the process."""
    monkeypatch.setenv(P.AUTO_ENV, "measure")
    monkeypatch.setenv(P.CACHE_ENV, str(tmp_path / "precision.json"))
    monkeypatch.setattr(P, "machine_key", lambda: "Test CPU; torch x; 1 thread")
    P.reset()
    yield tmp_path / "precision.json"
    P.reset()


def measured(monkeypatch, fp32_ms: float, bf16_ms: float) -> list:
    calls = []

    def fake(budget_s: float = P.BUDGET_S, hidden=None, activation="relu"):
        calls.append((hidden, activation))
        return fp32_ms, bf16_ms, 0.9
    monkeypatch.setattr(P, "measure", fake)
    return calls


@pytest.mark.parametrize("fp32_ms,bf16_ms,chosen", [(3.6, 2.9, "bf16"), (1.0, 1.2, "fp32"), (3.0, 2.95, "fp32")])
def test_auto_takes_the_faster_arithmetic(fresh, monkeypatch, fp32_ms, bf16_ms, chosen):
    """Catches an auto that is a constant (fp32 everywhere: the AMD case, where bf16 was 25-30% faster) and one that
    takes bf16 for a difference within the noise (the last case: 1.7%)."""
    measured(monkeypatch, fp32_ms, bf16_ms)
    config = TrainConfig()
    assert config.precision == chosen
    assert config.precision_choice.how == "measured" and f"{fp32_ms:.2f} ms" in config.precision_choice.describe()


def test_measured_once_per_machine_and_again_when_it_changes(fresh, monkeypatch):
    """Catches a cache that is never read (a measurement per process), one keyed by nothing (a new CPU or torch would
    keep the old answer) and one that loses the other machines' entries when it writes."""
    calls = measured(monkeypatch, 3.6, 2.9)
    assert P.auto_precision().precision == "bf16" and len(calls) == 1
    P.reset()  # a new process on the same machine: the file answers
    assert P.auto_precision().how == "cached" and len(calls) == 1
    P.reset()
    monkeypatch.setattr(P, "machine_key", lambda: "Other CPU; torch x; 1 thread")
    measured(monkeypatch, 1.0, 1.3)
    assert P.auto_precision().precision == "fp32"
    assert set(json.loads(fresh.read_text())) == {"Test CPU; torch x; 1 thread; the course network",
                                                  "Other CPU; torch x; 1 thread; the course network"}


def test_measured_per_network(fresh, monkeypatch):
    """The paper mode's 3 x 100 sigmoid network took 1.4-1.5x longer a step in bf16 than in float32 on an Intel Xeon
    where the course network's two were within 3%. Catches one machine-wide answer applied to every network (the
    paper pair ran in bf16 because the course network's measurement said so) and a measurement of the wrong one."""
    answers = {None: (3.6, 2.9), (100, 100, 100): (1.2, 1.75)}
    seen = []

    def fake(budget_s: float = P.BUDGET_S, hidden=None, activation="relu"):
        seen.append((hidden, activation))
        return (*answers[None if hidden is None or tuple(hidden) == course.HIDDEN else tuple(hidden)], 0.5)
    monkeypatch.setattr(P, "measure", fake)
    paper = TrainConfig(hidden=(100, 100, 100), activation="sigmoid")
    assert (TrainConfig().precision, paper.precision) == ("bf16", "fp32")
    assert seen == [((100, 100, 100), "sigmoid"), (course.HIDDEN, "relu")]
    assert "784-100-100-100-10 sigmoid network took 1.20 ms" in paper.precision_choice.describe()
    assert TrainConfig(hidden=(100, 100, 100), activation="sigmoid", batch_norm=True).precision == "fp32"
    assert len(seen) == 2  # the same network again, with BN: the answer it has
    P.reset()
    assert TrainConfig(hidden=(100, 100, 100), activation="sigmoid").precision_choice.how == "cached"
    assert len(seen) == 2


KEY = "Test CPU; torch x; 1 thread; the course network"


@pytest.mark.parametrize("content", ["not json", "[1, 2]", json.dumps({KEY: {"precision": "fp16"}}),
                                     json.dumps({KEY: {"precision": "bf16", "fp32_ms": "fast"}})])
def test_a_damaged_cache_is_measured_again(fresh, monkeypatch, content):
    """Catches trusting a hand-edited or cut file (auto = 'fp16', or a crash reading it)."""
    fresh.write_text(content)
    calls = measured(monkeypatch, 1.0, 1.5)
    assert P.auto_precision().precision == "fp32" and len(calls) == 1
    assert json.loads(fresh.read_text())[KEY]["precision"] == "fp32"


def test_fixed_by_the_environment_and_explicit_choices_measure_nothing(fresh, monkeypatch):
    calls = measured(monkeypatch, 1.0, 0.5)
    monkeypatch.setenv(P.AUTO_ENV, "bf16")
    assert TrainConfig().precision == "bf16"
    P.reset()
    monkeypatch.setenv(P.AUTO_ENV, "measure")
    assert TrainConfig(precision="fp32").precision_choice is None and not calls
    assert TrainConfig.from_dict(TrainConfig(precision="fp32").to_dict()).precision_choice is None


def test_a_run_records_what_auto_chose(fresh, monkeypatch, store):
    """The run's folder says that auto was asked for and what it measured, so a bf16 run on one machine and an fp32
    run on another can be told apart later."""
    measured(monkeypatch, 3.6, 2.9)
    info = store.start(TrainConfig(epochs=1, max_batches=2))
    store.trainer(info.id).join(60)
    assert info.config.precision == "bf16" and "auto = bf16" in info.tags["precision_auto"]
    from core.store.runs import RunStore

    assert RunStore(store.root).get(info.id).tags["precision_auto"] == info.tags["precision_auto"]


def test_the_real_measurement_keeps_to_its_budget():
    """The real measurement on this machine: both arithmetics timed, and it stops once its budget is spent (a
    budget of 0 s leaves one round after the warm-up). Speeds are not compared: they depend on the CPU."""
    import time

    t0 = time.perf_counter()
    fp32_ms, bf16_ms, seconds = P.measure(budget_s=0.0)
    assert fp32_ms > 0 and bf16_ms > 0 and 0 < seconds <= time.perf_counter() - t0
    small = P.measure(budget_s=0.0, hidden=(100, 100, 100), activation="sigmoid")  # any network of the config
    assert small[0] > 0 and small[1] > 0
    # one round after the warm-up: a few dozen steps of each network, never the full ROUNDS
    assert seconds < (time.perf_counter() - t0) + 1e-9


def test_auto_never_makes_a_keras_run_invalid(fresh, monkeypatch):
    """Where auto measures bf16 the faster, a Keras run (float32 always) asked with the default precision must still
    be valid: the Train page's Keras runs and the Frameworks page build theirs that way. Catches resolving auto before
    looking at the framework (seen: the Frameworks page raised on a machine where auto chose bf16)."""
    measured(monkeypatch, 3.6, 2.9)
    assert TrainConfig(framework="keras").precision == "fp32"
    assert TrainConfig().precision == "bf16"
