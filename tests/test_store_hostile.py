"""A runs folder edited by hand, by a crash or by an attacker: every case is either read with the good data kept
(and what was odd reported in `problems`) or listed as damaged with the reason. 0 crashes, 0 silent drops.

Each case copies one real, finished run (2 epochs) and changes one thing in it."""
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import torch

from core.engine.config import TrainConfig
from core.store.files import created_from_id
from core.store.runs import RunStore, WeightsError, save_weights
from tests.waiting import open_part, parts
from ui import keys as K

TINY = dict(max_batches=20, epochs=2, batch_size=64)


@pytest.fixture(scope="module")
def template(tmp_path_factory, data_dir) -> Path:
    """One finished 2-epoch run's folder, plus an epoch-1 header copy of its weights and an outside folder."""
    root = tmp_path_factory.mktemp("template")
    store = RunStore(root / "runs", data_dir)
    run = store.start(TrainConfig(**TINY), name="template")
    store.trainer(run.id).join(120)
    assert store.get(run.id).snapshot.status == "finished"
    d = root / "runs" / run.id
    info = store.get(run.id)
    model = store.load_model(run.id)
    save_weights(model, root / "epoch1.safetensors", info.config, info.snapshot.history[0])  # header: epoch 1
    save_weights(model, root / "old.safetensors", info.config)  # no epoch in the header: saved before this store
    save_weights(load_weights_other(), root / "other.safetensors", TrainConfig(hidden=(64, 32)))
    return d


def load_weights_other():
    from core.engine.models import build_model

    return build_model(TrainConfig(hidden=(64, 32)))


# --- the mutations ----------------------------------------------------------------------------------------
def edit_json(name: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        obj = json.loads((d / name).read_text())
        out = change(obj)
        (d / name).write_text(json.dumps(obj if out is None else out))
    return apply


def edit_config(**kw) -> Callable[[Path], None]:
    return edit_json("config.json", lambda m: m["config"].update(kw))


def edit_meta(**kw) -> Callable[[Path], None]:
    return edit_json("config.json", lambda m: m.update(kw))


def write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda d: (d / name).write_bytes(data)


def append(data: bytes) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        with open(d / "metrics.jsonl", "ab") as f:
            f.write(data)
    return apply


def remove(name: str) -> Callable[[Path], None]:
    return lambda d: (d / name).unlink()


def lines_where(keep: Callable[[dict], bool], change: Callable[[dict], dict] | None = None) -> Callable[[Path], None]:
    """Rewrite metrics.jsonl keeping the records `keep` accepts (changed by `change`)."""
    def apply(d: Path) -> None:
        recs = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
        out = [change(r) if change else r for r in recs if keep(r)]
        (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in out))
    return apply


def link_outside(name: str, outside: str) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        target = d.parent.parent / "outside" / outside
        (d / name).unlink(missing_ok=True)
        (d / name).symlink_to(target)
    return apply


def make_dir(name: str) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        (d / name).unlink()
        (d / name).mkdir()
    return apply


def copy_weights(src: str) -> Callable[[Path], None]:
    return lambda d: shutil.copy(d.parent.parent / "template-extra" / src, d / "weights.safetensors")


def truncate(name: str, keep: int) -> Callable[[Path], None]:
    return lambda d: (d / name).write_bytes((d / name).read_bytes()[:keep])


@dataclass
class Case:
    name: str
    mutate: Callable[[Path], None]
    damaged: str | None = None  # the run is listed as damaged, its reason containing this
    problem: str | None = None  # the run is kept, a problem containing this is reported
    epochs: int | None = 2  # epochs the kept run shows
    status: str | None = "finished"
    check: Callable[..., None] | None = None  # more checks: check(store, run_id, folder)
    weights: str = "load"  # "load": load_model works; else WeightsError matching this


def same_name_as_label(store, rid, d):
    assert store.get(rid).name == store.get(rid).config.label()


CASES = [
    # config.json: without readable settings a run cannot be shown
    Case("config missing", remove("config.json"), damaged="config.json is missing"),
    Case("config empty", write("config.json", b""), damaged="not valid JSON"),
    Case("config garbage", write("config.json", b"{not json"), damaged="not valid JSON"),
    Case("config UTF-16 bytes", write("config.json", b"\xff\xfe{\x00}\x00"), damaged="not UTF-8"),
    Case("config a list", write("config.json", b"[1, 2]"), damaged="not an object"),
    Case("config without settings", write("config.json", b'{"name": "x"}'), damaged="no 'config' object"),
    Case("settings a string", edit_meta(config="lr=1"), damaged="no 'config' object"),
    Case("lr a word", edit_config(lr="fast"), damaged="lr"),
    Case("hidden null", edit_config(hidden=None), damaged="hidden"),
    Case("hidden with a zero", edit_config(hidden=[512, 0]), damaged="hidden"),
    Case("epochs a boolean", edit_config(epochs=True), damaged="epochs"),
    Case("unknown dataset", edit_config(dataset="cifar"), damaged="dataset"),
    Case("over the memory budget", edit_config(hidden=[100_000]), damaged="more than the"),
    Case("lr infinite", write("config.json", b'{"config": {"lr": 1e400}}'), damaged="lr"),
    Case("config nested too deep", write("config.json", b"[" * 100_000), damaged="nested too deeply"),
    Case("config a folder", make_dir("config.json"), damaged="not a regular file"),
    Case("config a link outside", link_outside("config.json", "config.json"), damaged="symbolic link"),
    Case("config too large", write("config.json", b" " * (2 << 20)), damaged="more than"),
    # config.json: odd extras are replaced and reported, the run kept
    Case("unknown setting", edit_config(foo=1), problem="unknown settings ignored: foo"),
    Case("created yesterday", edit_meta(created="yesterday"), problem="'created'",
         check=lambda s, rid, d: s.get(rid).created == created_from_id(rid)),
    Case("created NaN", lambda d: (d / "config.json").write_text(
        (d / "config.json").read_text().replace('"created": ', '"created": NaN, "was": ')), problem="'created'"),
    Case("name a number", edit_meta(name=42), problem="is not text", check=same_name_as_label),
    Case("name empty", edit_meta(name="   "), problem="is not text", check=same_name_as_label),
    Case("name with markup", edit_meta(name="<b>bold</b> [x](http://e) <script>"), problem=None,
         check=lambda s, rid, d: s.get(rid).name == "<b>bold</b> [x](http://e) <script>"),
    Case("name 10,000 characters", edit_meta(name="n" * 10_000), problem="the first 200 are shown",
         check=lambda s, rid, d: len(s.get(rid).name) == 200),
    Case("created in the year 5138", edit_meta(created=99999999999), problem="(5138-11-16), not a time",
         check=lambda s, rid, d: s.get(rid).created == created_from_id(rid)),
    Case("created in 1970", edit_meta(created=0), problem="'created' is 0",
         check=lambda s, rid, d: s.get(rid).created == created_from_id(rid)),
    Case("name with direction, control and escape codes",
         edit_meta(name="evil\u202egnp.exe\nsecond line\x00\x1b[31m"), problem="not one line of printable text",
         check=same_name_as_label),
    Case("name with a line break", edit_meta(name="first\nsecond"), problem="not one line of printable text",
         check=same_name_as_label),
    Case("group a number", edit_meta(group=5), problem="'group'", check=lambda s, rid, d: s.get(rid).group is None),
    # status.json
    Case("status missing", remove("status.json"), problem="status.json is missing; shown as finished"),
    Case("status garbage", write("status.json", b"\x00\x01garbage"), problem="shown as finished"),
    Case("status exploded", write("status.json", b'{"status": "exploded", "error": null}'),
         problem="'exploded' is not a status"),
    Case("status a number", write("status.json", b'{"status": 5}'), problem="is not a status"),
    Case("status message a list", write("status.json", b'{"status": "failed", "error": [1]}'),
         problem="not text"),
    Case("status running (process killed)", write("status.json", b'{"status": "running", "error": null}'),
         status="stopped", check=lambda s, rid, d: "interrupted" in s.get(rid).snapshot.error),
    Case("status failed without a message", write("status.json", b'{"status": "failed", "error": null}'),
         status="failed"),
    Case("status a link outside", link_outside("status.json", "status.json"), problem="symbolic link"),
    Case("status finished, epochs missing", lines_where(lambda r: r.get("epoch") != 2), epochs=2,
         problem="recovered from the weights file"),
    # metrics.jsonl: bad lines are skipped and counted, the rest kept
    Case("metrics line null", append(b"null\n"), problem="1 line skipped (line 7: NoneType, not a record)"),
    Case("metrics line 42", append(b"42\n"), problem="int, not a record"),
    Case("metrics epoch 9 with foo", append(b'{"epoch": 9, "foo": 1}\n'), problem="unknown field 'foo'"),
    Case("metrics step 'x'", append(b'{"step": "x", "loss": 1}\n'), problem="step 'x'"),
    Case("metrics bytes ff fe", append(b"\xff\xfe\n"), problem="not UTF-8"),
    Case("metrics last line cut short", append(b'{"step": 99, "lo'), problem="cut short"),
    Case("metrics negative loss", append(b'{"step": 999, "loss": -1}\n'), problem="not a finite loss"),
    Case("metrics NaN step loss", append(b'{"step": 999, "loss": NaN}\n'), problem="not a finite loss"),
    Case("metrics accuracy 1.5",
         lines_where(lambda r: True, lambda r: {**r, "test_acc": 1.5} if r.get("epoch") == 2 else r),
         problem="recovered from the weights file"),
    Case("metrics duplicate epoch", append(b'{"epoch": 1, "train_loss": 1, "train_acc": 0.5, "test_loss": 1, '
                                           b'"test_acc": 0.5, "seconds": 1}\n'), problem="epoch 1 where epoch 3"),
    Case("metrics step out of order", append(b'{"step": 5, "loss": 1.0}\n'), problem="does not follow step 40"),
    Case("metrics deeply nested line", append(b"[" * 100_000 + b"\n"), problem="nested too deeply"),
    Case("metrics a link outside", link_outside("metrics.jsonl", "metrics.jsonl"), problem="symbolic link",
         epochs=0, status="finished"),
    Case("metrics a folder", make_dir("metrics.jsonl"), problem="not a regular file", epochs=0),
    Case("metrics missing", remove("metrics.jsonl"), problem="metrics.jsonl records 0 epochs", epochs=0),
    # weights.safetensors
    Case("weights missing", remove("weights.safetensors"), problem="weights.safetensors is missing",
         weights="No weights file"),
    Case("weights cut in the header", truncate("weights.safetensors", 100), problem="cut short",
         weights="damaged"),
    Case("weights cut in the data", truncate("weights.safetensors", 20_000), problem="cut short: 20,000 of",
         weights="damaged"),
    Case("weights a link to a secret", link_outside("weights.safetensors", "secret"), problem="symbolic link",
         weights="symbolic link"),
    Case("weights a pickle", lambda d: torch.save({"x": torch.zeros(3)}, d / "weights.safetensors"),
         problem="weights.safetensors cannot be used", weights="damaged"),
    Case("weights of another network", copy_weights("other.safetensors"), problem="does not fit",
         weights="does not fit"),
    Case("weights behind the metrics", copy_weights("epoch1.safetensors"), problem="epochs 2-2 are not shown",
         epochs=1),
    Case("weights saved before epochs were recorded", copy_weights("old.safetensors"), problem=None),
    Case("weights header epoch 'x'", lambda d: patch_header_epoch(d / "weights.safetensors", "x"),
         problem="not a whole number"),
    # the folder itself
    Case("stray temporary file", write(".weights.safetensors.1a2b3c4d.tmp", b"half"), problem=None),
    Case("probes.json garbage", write("probes.json", b"{{{"), problem=None,
         check=lambda s, rid, d: s.probes(rid) is None),
]


def patch_header_epoch(path: Path, epoch: str) -> None:
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    header["__metadata__"]["epoch"] = epoch
    new = json.dumps(header).encode()
    path.write_bytes(len(new).to_bytes(8, "little") + new + raw[8 + n:])


def plant(template: Path, runs: Path, run_id: str) -> Path:
    """A copy of the template run under `runs` with a new id, and the outside folder links point to."""
    d = runs / run_id
    shutil.copytree(template, d)
    outside = runs.parent / "outside"
    if not outside.exists():
        outside.mkdir()
        for name in ("config.json", "status.json", "metrics.jsonl"):
            shutil.copy(template / name, outside / name)
        (outside / "secret").write_bytes(b"root:x:0:0:secret\n")
        extra = runs.parent / "template-extra"
        extra.mkdir()
        for name in ("epoch1.safetensors", "old.safetensors", "other.safetensors"):
            shutil.copy(template.parent.parent / name, extra / name)
    return d


def planted_store(template: Path, tmp_path: Path, data_dir, cases) -> tuple[RunStore, dict[str, Case]]:
    runs = tmp_path / "runs"
    runs.mkdir()
    ids = {}
    for i, case in enumerate(cases):
        rid = f"20260101-12{i // 60:02d}{i % 60:02d}-{i:06x}"
        case.mutate(plant(template, runs, rid))
        ids[rid] = case
    return RunStore(runs, data_dir), ids


def test_catalogue_is_large_enough():
    assert len(CASES) >= 32
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_run_folder(case, template, tmp_path, data_dir):
    store, ids = planted_store(template, tmp_path, data_dir, [case])
    (rid,) = ids
    listed, damaged = {r.id: r for r in store.list()}, {d.id: d.reason for d in store.damaged()}
    assert (rid in listed) != (rid in damaged), "every run folder is either listed or listed as damaged"
    if case.damaged:
        assert case.damaged in damaged[rid]
        return
    info = listed[rid]
    if case.problem:
        assert any(case.problem in p for p in info.problems), info.problems
    else:
        assert not info.problems, info.problems
    if case.epochs is not None:
        assert len(info.snapshot.history) == case.epochs
    if case.status is not None:
        assert info.snapshot.status == case.status
    if case.check:
        assert case.check(store, rid, store.root / rid) is not False
    if case.weights == "load":
        model = store.load_model(rid)
        assert isinstance(model, torch.nn.Module)
    else:
        with pytest.raises(WeightsError, match=case.weights):
            store.load_model(rid)
    assert store.export_zip(rid)[:2] == b"PK"  # the download never fails either


def test_secret_never_leaves_through_the_zip(template, tmp_path, data_dir):
    case = next(c for c in CASES if c.name == "weights a link to a secret")
    store, ids = planted_store(template, tmp_path, data_dir, [case])
    (rid,) = ids
    import io
    import zipfile

    z = zipfile.ZipFile(io.BytesIO(store.export_zip(rid)))
    assert "weights.safetensors" not in z.namelist()
    assert b"secret" not in b"".join(z.read(n) for n in z.namelist() if n != "problems.txt")
    assert "symbolic link" in z.read("problems.txt").decode()


def test_folder_level_cases(template, tmp_path, data_dir):
    """Links and files in place of run folders, foreign names, an empty run folder."""
    runs = tmp_path / "runs"
    runs.mkdir()
    outside = tmp_path / "elsewhere"
    shutil.copytree(template, outside)
    (runs / "20260101-120000-aaaaaa").symlink_to(outside, target_is_directory=True)
    (runs / "20260101-120001-bbbbbb").write_text("a file named like a run")
    (runs / "20260101-120002-cccccc").mkdir()
    (runs / "notes").mkdir()
    impossible = runs / "99991399-999999-dddddd"  # the id's pattern, an impossible date, no 'created'
    shutil.copytree(template, impossible)
    (impossible / "config.json").write_text(json.dumps({"config": {"epochs": 2, "max_batches": 20}}))
    (runs / "README.txt").write_text("mine")
    (runs / ".DS_Store").write_text("hidden")
    store = RunStore(runs, data_dir)
    damaged = {d.id: d.reason for d in store.damaged()}
    assert "symbolic link" in damaged["20260101-120000-aaaaaa"]
    assert "not a folder" in damaged["20260101-120001-bbbbbb"]
    assert "config.json is missing" in damaged["20260101-120002-cccccc"]
    assert store.ignored() == ["README.txt", "notes"]
    (kept,) = store.list()
    assert kept.id == impossible.name and kept.created == 0.0 and kept.name == kept.config.label()
    store.delete(kept.id)
    # deleting the linked "run" removes the link, never what it points to
    store.delete("20260101-120000-aaaaaa")
    assert not os.path.lexists(runs / "20260101-120000-aaaaaa") and (outside / "weights.safetensors").exists()
    assert store.delete_failed() == ["20260101-120002-cccccc", "20260101-120001-bbbbbb"]
    assert sorted(p.name for p in runs.iterdir()) == [".DS_Store", "README.txt", "notes"]


def test_all_cases_in_one_folder(template, tmp_path, data_dir):
    """Every case side by side: each one listed once, the damaged ones with a reason."""
    store, ids = planted_store(template, tmp_path, data_dir, CASES)
    listed, damaged = {r.id for r in store.list()}, {d.id for d in store.damaged()}
    assert listed | damaged == set(ids) and not listed & damaged
    assert damaged == {rid for rid, c in ids.items() if c.damaged}
    assert all(math.isfinite(r.created) for r in store.list())


def test_pages_survive_every_case(template, tmp_path, data_dir, monkeypatch, app_env):
    """Every page that lists runs, over a runs folder holding every case at once: no exception."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    planted_store(template, app_env, data_dir, CASES)  # app_env's RUNS_DIR is app_env / "runs"
    st.cache_resource.clear()
    at = AppTest.from_file("../app.py", default_timeout=120)
    at.run()
    for page in ("pages/train.py", "pages/runs.py", "pages/batchnorm.py", "pages/draw.py", "pages/softmax.py"):
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
        tabs, labels = parts(page)
        for label in labels if tabs else ():  # every part of the page (only the open one runs)
            open_part(at, tabs, label)
            assert not at.exception, (page, label, at.exception)
    at.switch_page("pages/runs.py").run()
    open_part(at, K.RUNS_TAB, "Compare curves")
    shown = " ".join(str(e.value) for e in at.caption)
    assert "read with problems" in shown
    open_part(at, K.RUNS_TAB, "Manage runs")
    damaged_table = next(df.value for df in at.dataframe if "why it cannot be read" in df.value.columns)
    assert len(damaged_table) == sum(1 for c in CASES if c.damaged)
