"""Tuning studies under hostile conditions: a process killed with a trial in hand, a journal torn or damaged by
hand, storages that cannot be used, SIGTERM to the command line, a resume with other settings. Each case ends
with a clear message or with every trial kept; none with a traceback, a hang or a trial lost."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.store.runs import RunStore
from core.tuning import storage as S
from core.tuning.storage import JournalError
from core.tuning.study import Tuner, budget_used, create_study, list_specs, make_spec, open_study, run_study
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(epochs=1, max_batches=3, pruner="none", sampler="random")
LONG = dict(epochs=50, max_batches=50, pruner="none", sampler="random")  # a trial that is still training later


@pytest.fixture(autouse=True)
def fresh_storages():
    """Every test reads its journals from disk, as a new process would."""
    S._storages.clear()
    yield
    S._storages.clear()


def journal(tmp_path) -> str:
    return str(tmp_path / "runs" / S.JOURNAL_NAME)


def states(url: str, name: str) -> dict[str, int]:
    """Trial states of a study as a new process reads them from storage."""
    S._storages.clear()
    try:
        study, _ = open_study(url, name)
    finally:
        S._storages.clear()
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def plain_states(url: str, name: str) -> dict[str, int]:
    """Trial states as Optuna's own journal reader sees them (it never writes: nothing is repaired)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(url)))
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def finished_study(tmp_path, data_dir, n: int = 2) -> tuple[str, RunStore]:
    store = RunStore(tmp_path / "runs", data_dir)
    url = journal(tmp_path)
    create_study(url, "s", make_spec(n, **TINY))
    run_study(store, url, "s", seed=0)
    assert states(url, "s") == {"COMPLETE": n}
    return url, store


# --- 1. a trial whose process dies before its run started -----------------------------------------------------
CHILD = """
import sys, time
from core.store.runs import RunStore
from core.tuning.study import Tuner, make_spec
store = RunStore(sys.argv[1], sys.argv[2])
tuner = Tuner(store, sys.argv[3])
tuner.create("A", make_spec(1, epochs=50, max_batches=50, pruner="none", sampler="random"))
time.sleep(0.5)
tuner.create("B", make_spec(2, epochs=1, max_batches=3, pruner="none", sampler="random"))
time.sleep(600)
"""


def test_a_trial_killed_while_it_waits_for_the_trial_slot_runs_again_after_a_restart(tmp_path, data_dir):
    """Two studies in one server with one training slot; B's trial waits RUNNING (its run queued) while A's trains;
    the server is killed. Catches a worker recorded only once the run starts: B's trial then stayed RUNNING with
    no worker for ever, its budget half spent."""
    runs, url = tmp_path / "runs", journal(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(runs), data_dir, url], cwd=ROOT,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, "TRAIN_SLOTS": "1"})
    try:
        def b_waits() -> bool:
            if child.poll() is not None:
                raise AssertionError(child.stderr.read())
            try:
                study, spec = open_study(url, "B")
            except (ValueError, KeyError):
                return False
            finally:
                S._storages.clear()
            return any(t.state.name == "RUNNING" and len(t.params) == len(spec.space) for t in study.trials)
        wait_until(b_waits, 180, 0.2, "study B's trial to wait for the slot")
    finally:
        child.kill()
        child.wait(30)
        child.stderr.close()
    store = RunStore(runs, data_dir)
    tuner = Tuner(store, url)
    study, spec = tuner.open("B")  # what the Tuning page does after the restart
    (dead,) = [t for t in study.trials if t.number == 0]
    retry = [t for t in study.trials if t.state.name == "WAITING"]
    assert dead.state.name == "FAIL" and len(retry) == 1 and retry[0].system_attrs["fixed_params"] == dead.params
    assert budget_used(study) == 0
    study_a, _ = tuner.open("A")  # A's trial died training: queued again as well
    assert [t.state.name for t in study_a.trials] == ["FAIL", "WAITING"]
    try:
        run_study(store, url, "B", seed=0)
    finally:
        store.stop_all(wait=30)
    assert states(url, "B") == {"FAIL": 1, "COMPLETE": 2}
    study, _ = open_study(url, "B")
    assert any(t.state.name == "COMPLETE" and t.params == dead.params for t in study.trials)


def test_a_trial_left_without_a_worker_by_an_older_version_is_requeued_once_no_live_process_can_own_it(
        tmp_path, data_dir, monkeypatch):
    """A RUNNING trial with no worker recorded (what a killed server of the previous version left) is dead in a
    journal once it is older than a live worker takes to record itself; a young one is left alone (it may be a
    live process's trial between Optuna's ask and its first write). Catches requeueing by worker alone."""
    from core.tuning import study as M

    store = RunStore(tmp_path / "runs", data_dir)
    url = journal(tmp_path)
    create_study(url, "old", make_spec(2, **TINY))
    study, spec = open_study(url, "old")
    orphan = study.ask()
    for d in spec.space:
        d.suggest(orphan)
    tuner = Tuner(store, url)
    assert [t.state.name for t in tuner.open("old")[0].trials] == ["RUNNING"]  # young: may be a live one's
    monkeypatch.setattr(M, "ORPHAN_SECONDS", 0.0)
    study, _ = tuner.open("old")
    assert [t.state.name for t in study.trials] == ["FAIL", "WAITING"] and budget_used(study) == 0
    assert study.trials[1].system_attrs["fixed_params"] == study.trials[0].params


# --- 2. a torn journal tail ---------------------------------------------------------------------------------
@pytest.mark.parametrize("tear", ["half a line appended", "last line cut"])
def test_a_torn_journal_tail_is_cut_off_and_kept_and_every_trial_stays(tmp_path, data_dir, tear):
    """A writer stopped mid-line. Catches appending onto the fragment: the broken line then sits in the middle
    and every study in the file fails to load for good (JSONDecodeError)."""
    url, store = finished_study(tmp_path, data_dir)
    path = Path(url)
    whole = path.read_bytes()
    if tear == "half a line appended":
        fragment = b'{"op_code":6,"worker_id":"w","trial_id":1,"sta'
        path.write_bytes(whole + fragment)
    else:
        last = whole[:-1].rsplit(b"\n", 1)[1] + b"\n"
        fragment = last[:len(last) // 2]
        path.write_bytes(whole[:-len(last)] + fragment)
    before = plain_states(url, "s")  # what Optuna's own reader sees: the torn line is skipped
    S._storages.clear()
    study, _ = open_study(url, "s")  # the next start
    notes = S.repairs(url)
    (kept,) = tmp_path.joinpath("runs").glob(S.JOURNAL_NAME + ".torn-*")
    assert kept.read_bytes() == fragment and len(notes) == 1 and str(kept) in notes[0]
    assert path.read_bytes() == whole[:len(path.read_bytes())] and path.read_bytes().endswith(b"\n")
    assert states(url, "s") == plain_states(url, "s") == before
    from core.tuning.study import set_budget
    set_budget(url, "s", 3)  # the writes that used to land on the fragment
    create_study(url, "t", make_spec(1, **TINY))
    try:
        run_study(store, url, "s", seed=1)
    finally:
        store.stop_all(wait=30)
    for line in path.read_bytes().splitlines():  # every line is an operation again
        assert json.loads(line)["op_code"] in range(11)
    after = states(url, "s")
    assert after.get("COMPLETE", 0) == before.get("COMPLETE", 0) + 1 and sum(after.values()) >= sum(before.values())
    assert states(url, "t") == {}


def test_a_writer_killed_mid_line_leaves_a_journal_the_command_line_repairs_and_says_so(tmp_path, data_dir):
    """The command line prints the repair, with where the cut bytes are, and carries on (rc 0)."""
    url, _ = finished_study(tmp_path, data_dir)
    with open(url, "ab") as f:
        f.write(b'{"op_code":8,"worker_id":"w","trial_id":1,"user_a')
    out = subprocess.run([sys.executable, "-m", "core.search", "--study", "s", "--n-trials", "3", "--runs-dir",
                          str(tmp_path / "runs"), "--data-dir", data_dir, "--json"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "repaired:" in out.stderr and ".torn-" in out.stderr and "Traceback" not in out.stderr
    assert json.loads(out.stdout.splitlines()[-1])["COMPLETE"] == 3


# --- 3. a journal damaged in the middle ------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [b'{"op_code":6,"{"op_code":6,"worker_id":"w"}', b"\xff\xfe\x00garbage",
                                 b'{"no_op_code":1}', b"[1, 2, 3]"])
def test_a_journal_damaged_in_the_middle_names_its_file_and_line_and_others_are_unaffected(tmp_path, data_dir, bad):
    """Catches Optuna's bare JSONDecodeError / 'utf-8 codec' / KeyError, which name neither file nor line."""
    url, _ = finished_study(tmp_path, data_dir)
    lines = Path(url).read_bytes().splitlines(keepends=True)
    lines[2] = bad + b"\n"
    Path(url).write_bytes(b"".join(lines))
    with pytest.raises(JournalError, match=r"the journal file .*studies\.journal is damaged at line 3 "):
        open_study(url, "s")
    other = str(tmp_path / "other" / S.JOURNAL_NAME)  # another journal file: not affected
    create_study(other, "fine", make_spec(1, **TINY))
    assert [n for n, _ in list_specs(other)] == ["fine"]


def test_a_bad_last_line_is_found_when_read_not_after_the_next_write(tmp_path, data_dir):
    """Optuna skips a bad last line without a word; the next append puts it in the middle. Catches reading it
    as if it were not there."""
    url, _ = finished_study(tmp_path, data_dir)
    with open(url, "ab") as f:
        f.write(b"not json\n")
    n = len(Path(url).read_bytes().splitlines())
    with pytest.raises(JournalError, match=f"damaged at line {n} "):
        open_study(url, "s")


def test_the_tuning_page_shows_one_message_for_a_damaged_journal(app_env):
    """Catches the exception box the page showed for a damaged journal."""
    from streamlit.testing.v1 import AppTest

    path = app_env / "runs" / S.JOURNAL_NAME
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"op_code":0,"worker_id":"w","study_name":"x","directions":[1]}\n\xff\xfe\n'
                     b'{"op_code":0,"worker_id":"w","study_name":"y","directions":[1]}\n')
    at = AppTest.from_file("../app.py", default_timeout=120).run()
    at.switch_page("pages/tuning.py").run()
    assert not at.exception
    (err,) = [e.value.replace("\\", "") for e in at.error]  # as shown: without plain()'s escapes
    assert f"the journal file {path} is damaged at line 2" in err


# --- 4. storages that cannot be used ---------------------------------------------------------------------------
def test_storages_that_cannot_be_used_are_refused_with_a_message(tmp_path, capsys):
    """An in-memory SQLite URL (each connection sees its own empty database: 'no such table'), a device, a
    pipe (reading it would block for ever), a link, a folder. Catches tracebacks and hangs."""
    fifo = tmp_path / "pipe.journal"
    os.mkfifo(fifo)
    link = tmp_path / "link.journal"
    link.symlink_to("/etc/passwd")
    cases = {"sqlite:///": "in memory", "sqlite://": "in memory", "sqlite:///:memory:": "in memory",
             "/dev/null": "not a regular file", str(fifo): "not a regular file", str(link): "symbolic link",
             str(tmp_path): "is a folder"}
    for url, why in cases.items():
        result = {}
        t = threading.Thread(target=lambda: result.update(r=_refusal(url)), daemon=True)
        t.start()
        t.join(20)
        assert not t.is_alive(), f"{url}: opening it hangs"
        assert why in result["r"], (url, result["r"])
    from core.search import main
    for url in ("sqlite:///", "/dev/null", str(fifo)):
        assert main(["--study", "x", "--n-trials", "1", "--runs-dir", str(tmp_path / "runs"), "--storage", url]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: storage:") and "Traceback" not in err


def _refusal(url: str) -> str:
    try:
        S.open_storage(url)
    except ValueError as e:
        return str(e)
    return "opened"


def _unprivileged() -> list[str]:
    """A command prefix under which file permissions hold: none for a normal user; for root, no capabilities."""
    if os.geteuid() != 0:
        return []
    if not Path("/usr/bin/setpriv").exists():
        pytest.skip("running as root without setpriv: file permissions cannot be tested")
    return ["/usr/bin/setpriv", "--inh-caps=-all", "--bounding-set=-all", "--reuid=0"]


def test_a_read_only_journal_or_folder_gives_a_message_naming_the_file(tmp_path, data_dir):
    """Catches the PermissionError traceback from set_budget / create_study."""
    url, _ = finished_study(tmp_path, data_dir)
    cmd = _unprivileged() + [sys.executable, "-m", "core.search", "--runs-dir", str(tmp_path / "runs")]
    os.chmod(url, 0o444)
    try:
        out = subprocess.run(cmd + ["--study", "s", "--n-trials", "3"], cwd=ROOT, capture_output=True, text=True,
                             timeout=120)
    finally:
        os.chmod(url, 0o644)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"cannot write the journal file {url} (Permission denied)" in out.stderr
    folder = tmp_path / "ro"
    folder.mkdir()
    other = str(folder / S.JOURNAL_NAME)
    create_study(other, "r", make_spec(1, **TINY))
    os.chmod(folder, 0o555)  # the lock file cannot be made
    try:
        out = subprocess.run(cmd + ["--study", "new", "--n-trials", "1", "--storage", other], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    finally:
        os.chmod(folder, 0o755)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"cannot write the journal file {other}" in out.stderr


# --- 5. SIGTERM to the command line ---------------------------------------------------------------------------
def test_sigterm_to_the_command_line_stops_the_trial_records_it_and_exits_143(tmp_path, data_dir):
    """Catches Python's default SIGTERM: the process died, its run stayed 'running', its trial RUNNING."""
    runs = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "core.search", "--study", "long", "--n-trials", "2", "--epochs",
                             "50", "--max-batches", "50", "--pruner", "none", "--runs-dir", str(runs), "--data-dir",
                             data_dir], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: proc.poll() is not None or training(runs), 180, 0.1, "the first trial's run to train")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "stopping" in err and "Traceback" not in err
    (run,) = RunStore(runs, data_dir).list()
    assert run.snapshot.status == "stopped"
    study, _ = open_study(journal(tmp_path), "long")
    first, retry = study.trials
    assert first.state.name == "FAIL" and first.user_attrs["uncounted"] and retry.state.name == "WAITING"
    assert retry.system_attrs["fixed_params"] == first.params and budget_used(study) == 0


def training(runs: Path) -> bool:
    for d in runs.iterdir() if runs.exists() else ():
        try:
            if json.loads((d / "status.json").read_text())["status"] == "running":
                return True
        except (OSError, ValueError, KeyError):
            continue
    return False


# --- 6. resuming with other settings ----------------------------------------------------------------------
def test_resuming_with_other_settings_is_refused_naming_them(tmp_path, capsys):
    """Catches settings silently ignored on resume, and a parameter named twice accepted."""
    from core.search import main

    url = journal(tmp_path)
    create_study(url, "r", make_spec(2, epochs=2, max_batches=5, names=["lr", "batch_norm"], sampler="random"))
    base = ["--study", "r", "--runs-dir", str(tmp_path / "runs")]
    for args, named in ((["--epochs", "3"], "--epochs 3 (the study's: 2)"),
                        (["--params", "lr"], "--params lr (the study's: lr,batch_norm)"),
                        (["--sampler", "tpe"], "--sampler tpe (the study's: random)"),
                        (["--max-batches", "0"], "--max-batches 0 (the study's: 5)")):
        assert main(base + args) == 2
        err = capsys.readouterr().err
        assert named in err and "keeps" in err
    S._storages.clear()
    assert states(url, "r") == {}  # nothing ran, nothing changed
    assert main(["--study", "dup", "--n-trials", "1", "--params", "lr,lr", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "lr named more than once" in capsys.readouterr().err
