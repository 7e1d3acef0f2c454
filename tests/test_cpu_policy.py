"""The CPU threading policy (core/engine/cpu.py): applied in each entry point before torch works, overridable
with CPU_THREADS, and the throughput watch that tells the learner when other programs take the CPU."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str, policy: str | None, timeout: float = 120) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("CPU_THREADS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    if policy is not None:
        env["CPU_THREADS"] = policy
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


PROBE = ("import os, torch; from core.engine.cpu import apply_thread_policy as a; "
         "print(torch.get_num_threads(), os.environ.get('OMP_WAIT_POLICY'), repr(a().note))")


@pytest.mark.parametrize("policy, threads, wait, note", [
    (None, "1", "None", "''"),  # the default, auto
    ("auto", "1", "None", "''"),
    ("2", "2", "None", "''"),
    ("2:passive", "2", "PASSIVE", "''"),
])
def test_import_core_applies_the_policy_before_torch(policy, threads, wait, note):
    assert run_python("import core; " + PROBE, policy) == f"{threads} {wait} {note}"


def test_a_bad_value_is_reported_and_the_default_used():
    threads, _, note = run_python("import core; " + PROBE, "lots").split(" ", 2)
    assert threads == "1" and "ignored" in note and "CPU_THREADS" in note


def test_the_streamlit_app_applies_it_first():
    """app.py imports core before anything loads torch, so even passive waiting (read by OpenMP when torch
    loads) takes effect in the server process."""
    code = ("from streamlit.testing.v1 import AppTest; at = AppTest.from_file('app.py', default_timeout=60).run(); "
            "assert not at.exception, at.exception; " + PROBE)
    assert run_python(code, "2:passive") == "2 PASSIVE ''"


def test_the_cli_applies_and_states_it(tmp_path, data_dir):
    env = dict(os.environ, CPU_THREADS="2")
    out = subprocess.run([sys.executable, "-m", "core.train", "--epochs", "1", "--max-batches", "2", "--data-dir", data_dir,
                          "--runs-dir", str(tmp_path)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "2 CPU threads (CPU_THREADS=2)" in out.stderr


def test_the_benchmark_workers_apply_it(tmp_path, data_dir):
    code = ("import sys; sys.path.insert(0, 'benchmarks'); import bench_train; "
            f"bench_train.project_trainer(True, 1, 0, {data_dir!r}, max_batches=2); " + PROBE)
    assert run_python(code, "2").startswith("2 ")


def test_throughput_watch():
    from core.engine.snapshot import RunSnapshot
    from core.engine.control import Throughput

    t = Throughput(span=1.0)
    for _ in range(20):
        t.add(640, 0.1)  # 6,400 samples/s for two seconds
    assert t.peak == pytest.approx(6400)
    recent = [t.add(640, 1.0) for _ in range(2)][-1]  # then ten times slower
    assert recent == pytest.approx(640)
    assert RunSnapshot(status="running", recent_samples_per_sec=recent, peak_samples_per_sec=t.peak).cpu_contended
    assert not RunSnapshot(status="running", recent_samples_per_sec=3000, peak_samples_per_sec=6400).cpu_contended
    assert not RunSnapshot(status="paused", recent_samples_per_sec=1, peak_samples_per_sec=6400).cpu_contended


def test_train_page_says_when_the_cpu_is_taken(app_env, monkeypatch):
    from dataclasses import replace

    from streamlit.testing.v1 import AppTest

    from core import RunStore, TrainConfig
    from tests.waiting import wait_until
    from ui.registry import get_store

    store = get_store()
    run = store.start(TrainConfig(epochs=1, max_batches=3))
    wait_until(lambda: not store.get(run.id).live, 60, what="the tiny run")
    real_get = RunStore.get

    def contended(self, run_id):  # the snapshot a collapse produces
        info = real_get(self, run_id)
        return replace(info, snapshot=replace(info.snapshot, status="running", recent_samples_per_sec=500.0,
                                              peak_samples_per_sec=6000.0))

    monkeypatch.setattr(RunStore, "get", contended)
    at = AppTest.from_file("../app.py", default_timeout=60).run()
    at.switch_page("pages/train.py").run()
    warning = " ".join(w.value for w in at.warning)
    assert "competing for the CPU" in warning and "500 samples/s" in warning and "6,000" in warning
