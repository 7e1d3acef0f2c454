"""What precision="auto" means on this machine: float32 or bf16 mixed precision, whichever trains faster here.

Which one is faster depends on the CPU and on the network: with the training loop's one thread
(core/engine/cpu.py) a float32 step of the course network measured faster than a bf16 one on an Intel Xeon with
AMX, and 25-30% slower on an AMD EPYC (Zen 4); the BatchNorm paper's network (3 x 100 sigmoid units) took 1.4-1.5x
longer a step in bf16 than in float32 on the same Xeon, where the course network's two were within 3%: its matrix
products are too small for bf16 to win back autocast's casts. So "auto" is decided by measurement, once per machine
and network: a few training steps of the run's network (its hidden layers and activation, with and without
BatchNorm, batch 64) in each arithmetic, alternated, about a second in all. The answer is kept in a small JSON file
keyed by the CPU model, the torch version, the thread policy and the network, and measured again when any of them
changes.

Settings (environment):
    PRECISION_CACHE   the cache file (default: $XDG_CACHE_HOME or ~/.cache, then mnist-dashboard/precision.json);
                      empty: no file, measured once per process
    PRECISION_AUTO    measure (default), or fp32 / bf16: what "auto" means without measuring (the test suite sets
                      fp32, so that no test depends on this machine's speed)

On a CUDA device "auto" is float32 without measuring: the network is bound by kernel launches there, not by
arithmetic (benchmarks/bench_gpu.py).
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

CACHE_ENV = "PRECISION_CACHE"
AUTO_ENV = "PRECISION_AUTO"
CHOICES = ("fp32", "bf16")
# bf16 is taken only when it is clearly faster: float32 is the exact arithmetic, and a 3% edge is within what
# two measurements a second apart differ by here. The target (auto within 5% of the faster) allows it.
BF16_MARGIN = 0.97
BUDGET_S = 1.5  # the measurement stops after this many seconds, whatever it has (the target is at most 2 s)
ROUNDS, STEPS, WARMUP = 5, 12, 4


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str  # "fp32" or "bf16": what auto means here
    how: str  # "measured", "cached", "set by PRECISION_AUTO", "GPU"
    machine: str  # the CPU model, the torch version and the thread count the answer holds for
    network: str = "the course network"  # whose training step was timed
    fp32_ms: float | None = None  # one training step (batch 64; mean of the BN and no-BN networks), median of rounds
    bf16_ms: float | None = None
    measured_at: float | None = None  # time.time() of the measurement
    seconds: float | None = None  # what the measurement cost

    def describe(self) -> str:
        """One line for the Train page: what auto chose here and why."""
        if self.fp32_ms is None or self.bf16_ms is None:
            return f"auto = {self.precision} ({self.how})"
        when = time.strftime("%Y-%m-%d", time.localtime(self.measured_at)) if self.measured_at else "?"
        return (f"auto = {self.precision}: a training step of {self.network} took {self.fp32_ms:.2f} ms in "
                f"float32 and {self.bf16_ms:.2f} ms in bf16 on {self.machine} (measured {when})")


def machine_key() -> str:
    """What the answer depends on: the CPU model, the torch version, the training threads."""
    import torch

    from core.engine import cpu

    threads = cpu.apply_thread_policy().threads or cpu.max_threads()
    return f"{cpu_model()}; torch {torch.__version__}; {threads} thread{'s' if threads != 1 else ''}"


def network_name(hidden: tuple[int, ...], activation: str) -> str:
    from core.engine import course

    if tuple(hidden) == tuple(course.HIDDEN) and activation == "relu":
        return "the course network"
    return f"a 784-{'-'.join(str(h) for h in hidden)}-10 {activation} network"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cache_path() -> Path | None:
    if CACHE_ENV in os.environ:
        return Path(os.environ[CACHE_ENV]) if os.environ[CACHE_ENV] else None
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mnist-dashboard" / "precision.json"


def _read_cache(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # missing, unreadable or damaged: measured again and rewritten
        return {}
    return data if isinstance(data, dict) else {}


def _cached_choice(entry: object, machine: str, network: str) -> PrecisionChoice | None:
    """A cache entry, if it is well formed (a hand-edited file must not make auto mean nonsense)."""
    if not isinstance(entry, dict) or entry.get("precision") not in CHOICES:
        return None
    nums = {k: entry.get(k) for k in ("fp32_ms", "bf16_ms", "measured_at", "seconds")}
    if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0) for v in nums.values()):
        return None
    return PrecisionChoice(entry["precision"], "cached", machine, network, **nums)


def _write_cache(path: Path | None, key: str, choice: PrecisionChoice) -> None:
    if path is None:
        return
    data = _read_cache(path)
    data[key] = {k: v for k, v in asdict(choice).items() if k not in ("how", "machine", "network")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: measured again by the next process, nothing else lost


def measure(budget_s: float = BUDGET_S, hidden: tuple[int, ...] | None = None,
            activation: str = "relu") -> tuple[float, float, float]:
    """(float32 ms, bf16 ms, seconds spent): one training step of the network (default: the course's; the mean of a
    BN and a no-BN step), median over alternating rounds, in a thread of its own with the trainer's thread policy."""
    result: list = []
    worker = threading.Thread(target=lambda: result.append(_measure(budget_s, hidden, activation)),
                              name="precision-probe", daemon=True)
    worker.start()
    worker.join()
    if not result:
        raise RuntimeError("the precision measurement failed")
    return result[0]


def _measure(budget_s: float, hidden: tuple[int, ...] | None, activation: str) -> tuple[float, float, float]:
    import torch

    from core.engine import course, cpu
    from core.engine.models import MLP, init_weights
    from core.engine.optimizers import FusedAdam
    from core.engine.torch_loop import make_step

    torch.set_flush_denormal(True)  # as the trainer does
    cpu.use_base_threads()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 784, generator=g), torch.randint(0, 10, (64,), generator=g)
    nets = []
    for bn in (False, True):  # the run's network and the trainer's Adam, as a run builds them
        model = MLP(hidden=tuple(hidden or course.HIDDEN), batch_norm=bn, activation=activation)
        init_weights(model, 0)
        nets.append((model, FusedAdam(model.parameters(), lr=1e-3)))

    steppers = {p: [make_step(model, opt, p) for model, opt in nets] for p in CHOICES}  # a run's own step

    def steps(precision: str, n: int) -> float:
        t0 = time.perf_counter()
        for step in steppers[precision]:
            for _ in range(n):
                step(x, y)
        return (time.perf_counter() - t0) / (n * len(nets)) * 1000

    start = time.perf_counter()
    for precision in CHOICES:  # first calls build kernels (oneDNN's bf16 ones especially): not timed
        steps(precision, WARMUP)
    times: dict[str, list[float]] = {p: [] for p in CHOICES}
    for r in range(ROUNDS):
        for precision in (CHOICES if r % 2 == 0 else CHOICES[::-1]):
            times[precision].append(steps(precision, STEPS))
        if time.perf_counter() - start > budget_s:
            break
    return statistics.median(times["fp32"]), statistics.median(times["bf16"]), time.perf_counter() - start


_lock = threading.Lock()
_choices: dict[tuple, PrecisionChoice] = {}


def auto_precision(hidden: tuple[int, ...] | None = None, activation: str = "relu") -> PrecisionChoice:
    """What "auto" means here for a network (default: the course's): from PRECISION_AUTO, the cache, or a
    measurement (once per process and network at most, thread-safe: a second caller waits for the first one's
    answer)."""
    from core.engine import course

    net = (tuple(hidden or course.HIDDEN), activation)
    with _lock:
        if net not in _choices:
            _choices[net] = _decide(*net)
        return _choices[net]


def _decide(hidden: tuple[int, ...], activation: str) -> PrecisionChoice:
    network = network_name(hidden, activation)
    fixed = os.environ.get(AUTO_ENV, "measure").strip().lower()
    if fixed in CHOICES:
        return PrecisionChoice(fixed, f"set by {AUTO_ENV}", "this process", network)
    import torch

    if torch.cuda.is_available():
        return PrecisionChoice("fp32", "GPU", torch.cuda.get_device_name(), network)
    machine, path = machine_key(), cache_path()
    key = f"{machine}; {network}"
    if (cached := _cached_choice(_read_cache(path).get(key), machine, network)) is not None:
        return cached
    fp32_ms, bf16_ms, seconds = measure(hidden=hidden, activation=activation)
    precision = "bf16" if bf16_ms < BF16_MARGIN * fp32_ms else "fp32"
    choice = PrecisionChoice(precision, "measured", machine, network, round(fp32_ms, 4), round(bf16_ms, 4), time.time(),
                             round(seconds, 3))
    _write_cache(path, key, choice)
    return choice


def reset() -> None:
    """Forget this process's answer (tests)."""
    with _lock:
        _choices.clear()
