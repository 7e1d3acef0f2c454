"""Nothing outside the runs folder is ever read, written or deleted by a store operation: ids that are paths,
run folders and files that are symbolic links, and deletions that fail loudly."""
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from core.engine.config import TrainConfig
from core.store.files import append_lines, atomic_write_json, remove_run_dir
from core.store.runs import RunDeleteError, RunStore, WeightsError

TINY = dict(max_batches=20, epochs=1, batch_size=64)
HOSTILE_IDS = ["../victim", "..", ".", "", "/", "/etc", "victim", "a/b", "20260101-120000-abcdef/../../victim",
               "20260101-120000-abcdef/", "20260101-120000-ABCDEF", " 20260101-120000-abcdef", "~", "\x00",
               str(Path("..") / "victim"), None, 5, Path("../victim")]


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file under `folder` with a hash of its content, and every folder: to show nothing changed."""
    out = {}
    for p in sorted(folder.rglob("*")):
        out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


@pytest.fixture
def world(tmp_path, data_dir):
    """A runs folder with one finished run, next to a victim folder the store must never touch."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "config.json").write_text('{"precious": true}')
    (victim / "weights.safetensors").write_bytes(b"secret weights")
    store = RunStore(tmp_path / "runs", data_dir)
    run = store.start(TrainConfig(**TINY), name="real")
    store.trainer(run.id).join(120)
    return store, run.id, victim, fingerprint(victim)


@pytest.mark.parametrize("bad", HOSTILE_IDS, ids=[repr(b) for b in HOSTILE_IDS])
def test_ids_that_are_paths_are_refused_everywhere(world, bad):
    store, rid, victim, before = world
    for op in (store.delete, store.get, lambda i: store.rename(i, "x"), store.load_model, store.export_zip):
        with pytest.raises(KeyError):
            op(bad)
    assert store.probes(bad) is None
    for op in (store.stop, store.pause, store.resume):
        op(bad)  # nothing to control: no error, no effect
    assert fingerprint(victim) == before and victim.exists()
    assert [r.id for r in store.list()] == [rid]


def test_run_folder_linked_outside(world, data_dir):
    """A run folder that is a link to a folder outside: listed as damaged, never renamed through, and deleting
    it removes the link only."""
    store, rid, victim, before = world
    link = store.root / "20260101-120000-abcdef"
    link.symlink_to(victim, target_is_directory=True)
    store = RunStore(store.root, data_dir)
    assert "symbolic link" in {d.id: d.reason for d in store.damaged()}[link.name]
    with pytest.raises(KeyError):
        store.rename(link.name, "renamed")
    with pytest.raises(KeyError):
        store.load_model(link.name)
    store.delete(link.name)
    assert not os.path.lexists(link) and fingerprint(victim) == before


def test_files_linked_outside_are_neither_read_nor_written(world, data_dir):
    store, rid, victim, before = world
    d = store.root / rid
    for name in ("weights.safetensors", "status.json", "probes.json"):
        (d / name).unlink(missing_ok=True)
        (d / name).symlink_to(victim / ("weights.safetensors" if name.startswith("weights") else "config.json"))
    store = RunStore(store.root, data_dir)
    with pytest.raises(WeightsError, match="symbolic link"):
        store.load_model(rid)
    assert b"secret weights" not in store.export_zip(rid)
    assert store.probes(rid) is None
    store.rename(rid, "renamed")  # rewrites config.json inside the run folder only
    atomic_write_json(d / "status.json", {"status": "stopped", "error": None})  # replaces the link, not its target
    assert not (d / "status.json").is_symlink()
    (d / "metrics.jsonl").unlink()
    (d / "metrics.jsonl").symlink_to(victim / "config.json")
    with pytest.raises(OSError):
        append_lines(d / "metrics.jsonl", ['{"step": 1, "loss": 1.0}'])  # what a training thread would do
    assert fingerprint(victim) == before


def test_delete_does_not_follow_links_inside_a_run(world):
    store, rid, victim, before = world
    (store.root / rid / "data").symlink_to(victim, target_is_directory=True)
    (store.root / rid / "weights.safetensors").unlink()
    (store.root / rid / "weights.safetensors").symlink_to(victim / "weights.safetensors")
    store.delete(rid)
    assert not (store.root / rid).exists() and fingerprint(victim) == before


def test_delete_does_not_hide_failures(world, monkeypatch):
    store, rid, victim, before = world
    import core.store.files as files

    def refuse(path, *a, **k):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(files.shutil, "rmtree", refuse)
    with pytest.raises(RunDeleteError, match=f"Could not delete run {rid}.*Permission denied"):
        store.delete(rid)
    assert [r.id for r in store.list()] == [rid]  # still listed: it is still there


def test_live_run_cannot_be_deleted(store):
    run = store.start(TrainConfig(epochs=50))
    with pytest.raises(RuntimeError, match="Stop this run"):
        store.delete(run.id)
    store.stop(run.id, wait=30)
    store.delete(run.id)
    assert store.list() == []


def test_delete_failed_removes_failed_and_damaged_only(world, data_dir, monkeypatch):
    store, rid, victim, before = world
    import core.engine.trainer as tr

    monkeypatch.setattr(tr, "load_dataset", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no data")))
    failed = store.start(TrainConfig(**TINY, seed=1))
    store.trainer(failed.id).join(60)
    assert store.get(failed.id).snapshot.status == "failed"
    (store.root / "20260101-120000-abcdef").mkdir()  # damaged: no config.json
    (store.root / "notes").mkdir()  # not a run: left alone
    store = RunStore(store.root, data_dir)
    assert set(store.delete_failed()) == {failed.id, "20260101-120000-abcdef"}
    assert [r.id for r in store.list()] == [rid] and store.damaged() == []
    assert sorted(p.name for p in store.root.iterdir()) == sorted([rid, "notes"])
    assert fingerprint(victim) == before


def test_remove_run_dir_refuses_paths(tmp_path):
    (tmp_path / "victim").mkdir()
    for bad in ("../victim", "victim", "/tmp"):
        with pytest.raises(KeyError):
            remove_run_dir(tmp_path / "runs", bad)
    assert (tmp_path / "victim").exists()
