"""The hostile catalogue of the tuning journal, the drawings folder, names read from disk and shutdown: each probe
does what a hostile user (or a crash) would, on its own copy, in its own process with a time limit, and is
counted as one of

    clear      a message that names the file or setting and what to do, or the right refusal
    tolerated  it works, and what was odd is skipped, repaired or listed
    crash      a traceback, an uncaught exception, death by a signal, or an error that names neither the file nor
               what is wrong with it (a library's bare JSONDecodeError)
    hang       it did not end within the probe's time limit
    loss       trials, runs or drawings that were there can no longer be read or are gone
    hole       a byte from outside the app's folders read, written or exported, or a file there deleted

    .venv/bin/python benchmarks/probe_hostile.py               # this checkout
    .venv/bin/python benchmarks/probe_hostile.py --tree DIR    # another checkout (`git archive` of an older commit)
    .venv/bin/python benchmarks/probe_hostile.py --only drawings --skip-server

Every probe runs on files under a fresh temporary folder; nothing outside it is touched (links point to files
made there). As root, the probes of read-only files drop every capability (setpriv) so that permissions hold.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent.parent
OUTCOMES = ("clear", "tolerated", "crash", "hang", "loss", "hole")
SECRET = b"root:x:0:0:secret-outside-the-app-folders\n"
TINY_STUDY = ["--epochs", "1", "--max-batches", "3", "--params", "lr", "--sampler", "random", "--pruner", "none"]


class Outcome(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind, self.detail = kind, detail


def clear(d: str) -> Outcome: return Outcome("clear", d)
def tolerated(d: str) -> Outcome: return Outcome("tolerated", d)
def crash(d: str) -> Outcome: return Outcome("crash", d)
def loss(d: str) -> Outcome: return Outcome("loss", d)
def hole(d: str) -> Outcome: return Outcome("hole", d)


@dataclass
class Ctx:
    tree: Path  # the checkout under test
    work: Path  # this probe's own folder
    data_dir: str
    template: Path  # a runs folder with a finished study "s" of 2 trials (copied, never changed)


PROBES: dict[str, tuple[str, Callable[[Ctx], None], int]] = {}  # name -> (group, probe, time limit in s)


def probe(group: str, limit: int = 240):
    def add(fn):
        PROBES[fn.__name__] = (group, fn, limit)
        return fn
    return add


# --- helpers -------------------------------------------------------------------------------------------------
def unprivileged() -> list[str]:
    if os.geteuid() != 0:
        return []
    return ["/usr/bin/setpriv", "--inh-caps=-all", "--bounding-set=-all", "--reuid=0"]


def search(c: Ctx, *args: str, prefix: list[str] | None = None, timeout: int = 200) -> subprocess.CompletedProcess:
    return subprocess.run((prefix or []) + [sys.executable, "-m", "core.search", *args, "--runs-dir",
                                            str(c.work / "runs"), "--data-dir", c.data_dir],
                          cwd=c.tree, capture_output=True, text=True, timeout=timeout)


def last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:160] if lines else ""


def judged(r: subprocess.CompletedProcess, ok_rc: tuple[int, ...], must: tuple[str, ...]) -> None:
    """A command's end: crash (traceback, signal), clear (expected status and a message holding `must`)."""
    if "Traceback" in r.stderr or r.returncode < 0:
        raise crash(f"rc {r.returncode}: {last_line(r.stderr)}")
    if r.returncode in ok_rc and all(m in r.stderr for m in must):
        said = [ln for ln in r.stderr.splitlines() if must and must[0] in ln]
        raise clear(f"rc {r.returncode}: {(said[-1] if said else last_line(r.stderr))[:160]}")
    raise crash(f"rc {r.returncode} without the expected message: {last_line(r.stderr)}")


def runs_copy(c: Ctx) -> Path:
    shutil.copytree(c.template, c.work / "runs")
    return c.work / "runs" / "studies.journal"


def trial_states(journal: Path, name: str = "s") -> dict[str, int]:
    """As Optuna's own reader sees them (it never writes); raises when the journal cannot be read."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(journal))))
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def outside(c: Ctx) -> Path:
    d = c.work / "outside"
    d.mkdir(exist_ok=True)
    (d / "secret").write_bytes(SECRET)
    return d


# --- the tuning journal ---------------------------------------------------------------------------------------
def _torn_then_resume(c: Ctx, tear: Callable[[Path], None]) -> None:
    journal = runs_copy(c)
    tear(journal)
    before = trial_states(journal)
    r = search(c, "--study", "s", "--n-trials", "3")
    try:
        after = trial_states(journal)
        for line in journal.read_bytes().splitlines():
            json.loads(line)
    except Exception as e:
        raise loss(f"after the next start the journal cannot be read ({type(e).__name__}: {str(e)[:80]}); "
                   f"before it held {before}")
    if "Traceback" in r.stderr or r.returncode != 0:
        raise crash(f"rc {r.returncode}: {last_line(r.stderr)}")
    # Every trial read before is still there, and the budget, raised to 3, is reached (a RUNNING trial whose process
    # is gone runs again, as after any crash).
    if after.get("COMPLETE", 0) != 3 or sum(after.values()) < sum(before.values()):
        raise loss(f"trials before {before}, after the budget was raised to 3: {after}")
    kept = list(journal.parent.glob("studies.journal.torn-*"))
    if kept and "repaired" in r.stderr:
        raise tolerated(f"torn tail cut off and kept in {kept[0].name}, said so; trials {before} -> {after}")
    raise tolerated(f"trials {before} -> {after}")


@probe("tuning")
def journal_half_line_appended(c: Ctx) -> None:
    """A writer killed in the middle of an append."""
    _torn_then_resume(c, lambda j: j.write_bytes(j.read_bytes() + b'{"op_code":6,"worker_id":"w","trial_id":1,"st'))


@probe("tuning")
def journal_cut_by_head_c(c: Ctx) -> None:
    """head -c N studies.journal > x; mv x studies.journal, N inside the last line."""
    def tear(j: Path) -> None:
        data = j.read_bytes()
        last = data[:-1].rfind(b"\n") + 1
        j.write_bytes(data[:last + (len(data) - last) // 2])
    _torn_then_resume(c, tear)


def _damaged(c: Ctx, bad: bytes, where: int | None = 2) -> None:
    journal = runs_copy(c)
    lines = journal.read_bytes().splitlines(keepends=True)
    if where is None:
        lines.append(bad + b"\n")
    else:
        lines[where] = bad + b"\n"
    journal.write_bytes(b"".join(lines))
    judged(search(c, "--study", "s", "--n-trials", "3"), (1, 2), (str(journal), "line"))


@probe("tuning")
def journal_broken_line_in_the_middle(c: Ctx) -> None:
    _damaged(c, b'{"op_code":6,"{"op_code":6,"worker_id":"w"}')


@probe("tuning")
def journal_bytes_not_utf8(c: Ctx) -> None:
    _damaged(c, b"\xff\xfe\x00garbage")


@probe("tuning")
def journal_json_that_is_no_operation(c: Ctx) -> None:
    _damaged(c, b'{"hello": "world"}')


@probe("tuning")
def journal_bad_last_line(c: Ctx) -> None:
    _damaged(c, b"not json at all", where=None)


@probe("tuning")
def journal_read_only(c: Ctx) -> None:
    journal = runs_copy(c)
    journal.chmod(0o444)
    judged(search(c, "--study", "s", "--n-trials", "3", prefix=unprivileged()), (1, 2),
           ("cannot write the journal file", str(journal)))


@probe("tuning")
def journal_folder_read_only(c: Ctx) -> None:
    journal = runs_copy(c)
    folder = c.work / "ro"
    folder.mkdir()
    shutil.copy(journal, folder / "studies.journal")
    folder.chmod(0o555)
    try:
        judged(search(c, "--study", "n", "--n-trials", "1", "--storage", str(folder / "studies.journal"),
                      prefix=unprivileged()), (1, 2), ("cannot write the journal file",))
    finally:
        folder.chmod(0o755)


@probe("tuning")
def storage_sqlite_in_memory(c: Ctx) -> None:
    judged(search(c, "--study", "m", "--n-trials", "1", "--storage", "sqlite:///", *TINY_STUDY), (2,), ("memory",))


@probe("tuning")
def storage_dev_null(c: Ctx) -> None:
    judged(search(c, "--study", "m", "--n-trials", "1", "--storage", "/dev/null", *TINY_STUDY,
                  prefix=unprivileged()), (2,), ("/dev/null",))


@probe("tuning", limit=60)
def storage_a_named_pipe(c: Ctx) -> None:
    os.mkfifo(c.work / "pipe.journal")
    judged(search(c, "--study", "m", "--n-trials", "1", "--storage", str(c.work / "pipe.journal"), *TINY_STUDY,
                  timeout=40), (2,), ("not a regular file",))


@probe("tuning")
def storage_a_link_outside(c: Ctx) -> None:
    secret = outside(c) / "secret"
    (c.work / "link.journal").symlink_to(secret)
    r = search(c, "--study", "m", "--n-trials", "1", "--storage", str(c.work / "link.journal"), *TINY_STUDY)
    if secret.read_bytes() != SECRET:
        raise hole("the file the link points to was written")
    judged(r, (2,), ("symbolic link",))


@probe("tuning")
def storage_a_folder(c: Ctx) -> None:
    judged(search(c, "--study", "m", "--n-trials", "1", "--storage", str(c.work), *TINY_STUDY), (2,), ("folder",))


KILLED_WHILE_WAITING = """
import sys, time
from core.store.runs import RunStore
from core.tuning.study import Tuner, make_spec
tuner = Tuner(RunStore(sys.argv[1], sys.argv[2]), sys.argv[3])
tuner.create("A", make_spec(1, epochs=50, max_batches=50, pruner="none", sampler="random"))
time.sleep(0.5)
tuner.create("B", make_spec(2, epochs=1, max_batches=3, pruner="none", sampler="random"))
time.sleep(600)
"""


@probe("tuning", limit=400)
def trial_killed_while_waiting_for_the_slot(c: Ctx) -> None:
    """Two studies in one server, B's trial waits for the trial slot, the server is killed; then B resumes."""
    journal = c.work / "runs" / "studies.journal"
    child = subprocess.Popen([sys.executable, "-c", KILLED_WHILE_WAITING, str(c.work / "runs"), c.data_dir,
                              str(journal)], cwd=c.tree, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            try:
                if trial_states(journal, "B").get("RUNNING"):
                    time.sleep(1.0)  # its parameters drawn, waiting
                    break
            except Exception:
                pass
            time.sleep(0.2)
    finally:
        child.kill()
        child.wait()
    r = search(c, "--study", "B")
    after = trial_states(journal, "B")
    if after.get("RUNNING") or after.get("COMPLETE", 0) < 2:
        raise loss(f"after the restart B is {after}: a trial stays RUNNING, its budget not run "
                   f"({last_line(r.stderr)})")
    judged(r, (0,), ())


@probe("tuning", limit=300)
def sigterm_to_the_search_command(c: Ctx) -> None:
    runs = c.work / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "core.search", "--study", "long", "--n-trials", "2", "--epochs",
                             "50", "--max-batches", "50", "--pruner", "none", "--runs-dir", str(runs), "--data-dir",
                             c.data_dir], cwd=c.tree, stderr=subprocess.PIPE, text=True)

    def training() -> bool:
        for d in runs.iterdir() if runs.exists() else ():
            try:
                if json.loads((d / "status.json").read_text())["status"] == "running":
                    return True
            except (OSError, ValueError, KeyError):
                pass
        return False
    deadline = time.monotonic() + 180
    while not training() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    states = trial_states(runs / "studies.journal", "long")
    if proc.returncode < 0:
        raise crash(f"killed by signal {-proc.returncode}; trials left {states}")
    if states.get("RUNNING"):
        raise crash(f"rc {proc.returncode}, trials left {states}")
    judged(subprocess.CompletedProcess([], proc.returncode, "", err), (143,), ("stopping",))


@probe("tuning")
def resume_with_other_epochs(c: Ctx) -> None:
    runs_copy(c)
    r = search(c, "--study", "s", "--epochs", "2")
    if r.returncode == 0:
        raise tolerated("accepted; the study's own settings used without a word")
    judged(r, (2,), ("--epochs 2",))


@probe("tuning")
def params_named_twice(c: Ctx) -> None:
    r = search(c, "--study", "d", "--n-trials", "1", "--epochs", "1", "--max-batches", "3", "--params", "lr,lr")
    if r.returncode == 0:
        raise tolerated("accepted without a word")
    judged(r, (2,), ("lr",))


@probe("tuning")
def search_flags_out_of_range(c: Ctx) -> None:
    judged(search(c, "--study", "x", "--n-trials", "0"), (2,), ("n_trials",))


# --- the drawings folder ------------------------------------------------------------------------------------
def _png(arr) -> bytes:
    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _big_png(side: int, whole: bool) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    z = zlib.compressobj(9)
    body = b"".join(z.compress(b"\0" * (side + 1)) for _ in range(side if whole else 1)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def _drawings_page(c: Ctx, make: Callable[[Path, Path], str]) -> None:
    """One good drawing and one odd entry; then what the Draw page does with the folder: list, read each
    drawing's 28x28 input and classify it (the model's input shape), export the zip."""
    import numpy as np

    from core.drawing.collection import DrawingStore
    from core.drawing.preprocess import to_model_input

    root, out = c.work / "drawings", outside(c)
    store = DrawingStore(root)
    store.save(np.zeros((280, 280, 4)), np.zeros((28, 28)), 3)
    name = make(root, out)
    result: dict = {}

    def page() -> None:
        try:
            drawings = store.list()
            for d in drawings:
                x = to_model_input(d.input28())
                np.asarray(x).reshape(1, 784)  # what the model's first layer takes
            result["drawings"], result["zip"] = drawings, store.export_zip()
        except BaseException as e:
            result["error"] = e
    t = threading.Thread(target=page, daemon=True)
    t.start()
    t.join(30)
    if t.is_alive():
        raise Outcome("hang", "the Draw page's drawings section blocks")
    if "error" in result:
        e = result["error"]
        raise crash(f"{type(e).__name__}: {str(e)[:100]}")
    with zipfile.ZipFile(io.BytesIO(result["zip"])) as z:
        if any(SECRET.strip() in z.read(n) for n in z.namelist()):
            raise hole("the export zip holds a file from outside the drawings folder")
    if not any(d.label == 3 for d in result["drawings"]):
        raise loss("the good drawing is not listed")
    scan = getattr(store, "scan", None)
    if scan is not None:
        odd = {e.name: e.reason for e in scan().odd}
        if name in odd:
            raise clear(f"listed: {odd[name][:90]}")
    raise tolerated("the page works; the entry is not mentioned")


def _pair(root: Path, did: str, label: int, raw: bytes | None, inp: bytes | None) -> tuple[Path, Path]:
    r, i = root / f"{did}-digit{label}.png", root / f"{did}-digit{label}-28.png"
    if raw is not None:
        r.write_bytes(raw)
    if inp is not None:
        i.write_bytes(inp)
    return r, i


def _raw() -> bytes:
    import numpy as np
    return _png(np.zeros((280, 280, 4)))


def _inp() -> bytes:
    import numpy as np
    return _png(np.zeros((28, 28)))


def _drawing_case(bad_raw=None, bad_inp=None, special=None):
    def make(root: Path, out: Path) -> str:
        raw, inp = _pair(root, "20260101-000001-a00001", 1, None if bad_raw is not None or special else _raw(),
                         None if bad_inp is not None else _inp())
        target = inp if bad_inp is not None else raw
        if special is not None:
            special(target, out)
        else:
            target.write_bytes(bad_raw if bad_raw is not None else bad_inp)
        return target.name
    return make


def _link_input(special: Callable[[Path, Path], None]):
    """A whole canvas file, and in place of its 28x28 input what `special` puts there."""
    def make(root: Path, out: Path) -> str:
        _, inp = _pair(root, "20260101-000001-a00001", 1, _raw(), None)
        special(inp, out)
        return inp.name
    return make


@probe("drawings")
def drawing_zero_bytes(c: Ctx) -> None:
    _drawings_page(c, _drawing_case(bad_inp=b""))


@probe("drawings")
def drawing_not_a_png(c: Ctx) -> None:
    _drawings_page(c, _drawing_case(bad_inp=b"this is text, not an image\n"))


@probe("drawings")
def drawing_a_folder(c: Ctx) -> None:
    _drawings_page(c, _drawing_case(special=lambda p, out: p.mkdir()))


@probe("drawings")
def drawing_29x29(c: Ctx) -> None:
    import numpy as np
    _drawings_page(c, _drawing_case(bad_inp=_png(np.zeros((29, 29)))))


@probe("drawings")
def drawing_link_to_a_file_outside(c: Ctx) -> None:
    _drawings_page(c, _drawing_case(special=lambda p, out: p.symlink_to(out / "secret")))


@probe("drawings")
def drawing_input_link_to_a_png_outside(c: Ctx) -> None:
    def special(p: Path, out: Path) -> None:
        import numpy as np
        (out / "input.png").write_bytes(_png(np.full((28, 28), 9)) + SECRET)
        p.symlink_to(out / "input.png")
    _drawings_page(c, _link_input(special))


@probe("drawings")
def drawing_hard_link_to_a_file_outside(c: Ctx) -> None:
    def special(p: Path, out: Path) -> None:
        import numpy as np
        (out / "input.png").write_bytes(_png(np.full((28, 28), 9)) + SECRET)
        os.link(out / "input.png", p)
    _drawings_page(c, _link_input(special))


@probe("drawings", limit=60)
def drawing_a_named_pipe(c: Ctx) -> None:
    _drawings_page(c, _drawing_case(special=lambda p, out: os.mkfifo(p)))


@probe("drawings")
def drawing_20000x20000(c: Ctx) -> None:
    _drawings_page(c, _drawing_case(bad_inp=_big_png(20_000, whole=True)))  # 0.4 MB on disk


@probe("drawings")
def drawing_12000x12000(c: Ctx) -> None:
    _drawings_page(c, _drawing_case(bad_inp=_big_png(12_000, whole=True)))  # 144 MB decoded


@probe("drawings")
def drawing_png_cut_short(c: Ctx) -> None:
    import numpy as np
    noise = _png(np.random.default_rng(0).integers(0, 256, (28, 28)))
    _drawings_page(c, _drawing_case(bad_inp=noise[:len(noise) // 2]))


def _delete(c: Ctx, arg: str) -> None:
    import numpy as np

    from core.drawing.collection import DrawingStore

    root, out = c.work / "drawings", outside(c)
    (out / "x-digit1.png").write_bytes(SECRET)
    store = DrawingStore(root)
    for label in (1, 2):
        store.save(np.zeros((280, 280, 4)), np.zeros((28, 28)), label)
    try:
        store.delete(arg)
        refused = None
    except Exception as e:
        refused = e
    if not (out / "x-digit1.png").exists() or not (out / "secret").exists():
        raise hole(f"delete({arg!r}) deleted a file outside the drawings folder")
    if len(store.list()) < 2:
        raise loss(f"delete({arg!r}) deleted {2 - len(store.list())} saved drawing(s)")
    if refused is not None:
        raise clear(f"refused: {str(refused)[:100]}")
    raise tolerated(f"delete({arg!r}) did nothing")


@probe("drawings")
def drawing_delete_with_a_wildcard_id(c: Ctx) -> None:
    _delete(c, "*")


@probe("drawings")
def drawing_delete_with_a_path_as_id(c: Ctx) -> None:
    _delete(c, "../outside/x")


@probe("drawings")
def drawings_folder_is_a_file(c: Ctx) -> None:
    import numpy as np

    from core.drawing.collection import DrawingStore

    (c.work / "file").write_text("x")
    try:
        DrawingStore(c.work / "file").save(np.zeros((280, 280, 4)), np.zeros((28, 28)), 1)
    except OSError as e:
        raise crash(f"{type(e).__name__}: {e}")
    except Exception as e:
        if "drawings folder" in str(e):
            raise clear(str(e)[:100])
        raise crash(f"{type(e).__name__}: {e}")
    raise tolerated("saved")


# --- names and dates read from disk -----------------------------------------------------------------------
def _one_run(c: Ctx, change: dict) -> "object":
    from core.engine.config import TrainConfig
    from core.store.runs import RunStore

    store = RunStore(c.work / "runs", c.data_dir)
    run = store.start(TrainConfig(epochs=1, max_batches=3), name="plain")
    store.trainer(run.id).join(120)
    path = c.work / "runs" / run.id / "config.json"
    meta = json.loads(path.read_text())
    path.write_text(json.dumps({**meta, **change}))
    return RunStore(c.work / "runs", c.data_dir).get(run.id)


@probe("names")
def run_name_with_direction_and_control_codes(c: Ctx) -> None:
    info = _one_run(c, {"name": "evil\u202egnp.exe\nsecond line\x00\x1b[31m"})
    if any(not ch.isprintable() for ch in info.name):
        raise hole(f"listed as {info.name!r}: a name that reads other than it is (rename() refuses it)")
    raise tolerated(f"listed as {info.name!r}; {info.problems[-1][:80]}")


@probe("names")
def run_created_in_5138(c: Ctx) -> None:
    info = _one_run(c, {"created": 99999999999})
    if info.created > time.time() + 86400:
        raise tolerated(f"accepted: the run sorts first until the year 5138")
    raise tolerated(f"the run id's time used; {info.problems[-1][:80]}")


# --- shutdown ---------------------------------------------------------------------------------------------
EVALUATING = """
import sys, threading, time
import core
from core.engine.config import TrainConfig
from core.engine.data import load_dataset
from core.engine.models import build_model
from core.lessons.evaluation import evaluate_model
from core.store.runs import RunStore
RunStore(sys.argv[2], sys.argv[1])
load_dataset("mnist", sys.argv[1])
model = build_model(TrainConfig(hidden=(2000, 2000)))
threading.Thread(target=evaluate_model, args=(model,), kwargs={"data_dir": sys.argv[1]}, daemon=True).start()
time.sleep(1.0)
"""


@probe("shutdown")
def exit_while_a_thread_of_ours_is_inside_torch(c: Ctx) -> None:
    r = subprocess.run([sys.executable, "-c", EVALUATING, c.data_dir, str(c.work / "runs")], cwd=c.tree,
                       capture_output=True, text=True, timeout=200)
    if r.returncode != 0:
        raise crash(f"exit {r.returncode}: {last_line(r.stderr)}")
    raise clear("exit 0 after the thread's work ended")


@probe("shutdown", limit=600)
def sigterm_to_the_server_while_a_page_measures(c: Ctx) -> None:
    sys.path.insert(0, str(HERE / "benchmarks"))
    from probe_shutdown import finished_runs, one_round

    finished_runs(c.work / "runs", c.data_dir, 30)
    r = one_round(c.tree, c.work / "runs", c.data_dir, c.work, 0)
    if r["rc"] != 0:
        raise crash(f"exit {r['rc']}{' (terminate called)' if r['terminate'] else ''}; busy at exit: {r['busy']}")
    raise clear(f"exit 0, {r['exit_s']:.1f} s after SIGTERM")


# --- running ------------------------------------------------------------------------------------------------
def make_template(tree: Path, work: Path, data_dir: str) -> Path:
    runs = work / "template"
    r = subprocess.run([sys.executable, "-m", "core.search", "--study", "s", "--n-trials", "2", *TINY_STUDY,
                        "--runs-dir", str(runs), "--data-dir", data_dir], cwd=tree, capture_output=True, text=True,
                       timeout=300)
    if r.returncode != 0:
        raise SystemExit(f"cannot make the template study: {r.stderr[-2000:]}")
    return runs


def run_one(name: str, ctx: Ctx) -> None:
    """In the probe's own process: print its outcome as one JSON line."""
    sys.path.insert(0, str(ctx.tree))
    os.chdir(ctx.tree)
    try:
        PROBES[name][1](ctx)
        out = Outcome("tolerated", "ended without a verdict")
    except Outcome as o:
        out = o
    except subprocess.TimeoutExpired as e:  # a command the probe ran did not end
        out = Outcome("hang", f"{' '.join(map(str, e.cmd))[-80:]} did not end within {e.timeout:g} s")
    except BaseException as e:
        out = crash(f"{type(e).__name__}: {str(e)[:120]} ({traceback.extract_tb(e.__traceback__)[-1].name})")
    print(json.dumps({"kind": out.kind, "detail": out.detail}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tree", type=Path, default=HERE, help="the checkout to probe (default: this one)")
    p.add_argument("--data-dir", default=os.environ.get("DATA_DIR", str(HERE / "data")))
    p.add_argument("--only", default=None, help="one group (tuning, drawings, names, shutdown) or one probe's name")
    p.add_argument("--skip-server", action="store_true", help="leave out the probe that starts a server")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--template", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    tree = args.tree.resolve()
    if args.one:
        run_one(args.one, Ctx(tree, args.work, args.data_dir, args.template))
        return
    base = Path(tempfile.mkdtemp(prefix="probe-hostile-"))
    template = make_template(tree, base, args.data_dir)
    counts = dict.fromkeys(OUTCOMES, 0)
    for name, (group, _, limit) in PROBES.items():
        if (args.only and args.only not in (group, name)) or (args.skip_server and "server" in name):
            continue
        work = base / name
        work.mkdir()
        t0 = time.monotonic()
        try:
            r = subprocess.run([sys.executable, __file__, "--one", name, "--tree", str(tree), "--work", str(work),
                                "--template", str(template), "--data-dir", args.data_dir],
                               capture_output=True, text=True, timeout=limit)
            lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
            res = json.loads(lines[-1]) if lines else {"kind": "crash",
                                                       "detail": f"exit {r.returncode}: {last_line(r.stderr)}"}
        except subprocess.TimeoutExpired:
            res = {"kind": "hang", "detail": f"no end within {limit} s"}
        counts[res["kind"]] += 1
        print(f"{group:9} {name:46} {res['kind']:9} {time.monotonic() - t0:5.1f} s  {res['detail']}", flush=True)
    print(f"\n{tree}: {sum(counts.values())} probes: " + ", ".join(f"{v} {k}" for k, v in counts.items())
          + f"  (work in {base})")


if __name__ == "__main__":
    main()
