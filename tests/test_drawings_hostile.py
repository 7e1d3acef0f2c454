"""The drawings folder edited by hand, by a crash or by an attacker: every entry that is not a whole drawing is
listed with the reason and can be deleted, the Draw page renders, nothing blocks, and nothing from outside
the folder is read, exported or deleted."""
import io
import os
import struct
import sys
import threading
import types
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.drawing.collection import MAX_FILE, DrawingsError, DrawingStore

SECRET = b"root:x:0:0:secret-outside-the-drawings-folder"


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def big_png(side: int, whole: bool) -> bytes:
    """A greyscale side x side PNG, all black: `whole` compresses every row (20000 px: about 0.4 MB on disk, 400 MB
    decoded), else only its header and a first row (a file cut short)."""
    z, rows = zlib.compressobj(9), []
    row = b"\0" * (side + 1)  # filter byte + pixels
    for _ in range(side if whole else 1):
        rows.append(z.compress(row))
    rows.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(rows)) + chunk(b"IEND", b"")


INPUT = png(np.zeros((28, 28)))
RAW = png(np.zeros((280, 280, 4)))


def drawing(root: Path, did: str, label: int, raw: bytes | None = RAW, inp: bytes | None = INPUT) -> tuple[str, str]:
    names = f"{did}-digit{label}.png", f"{did}-digit{label}-28.png"
    for name, data in zip(names, (raw, inp)):
        if data is not None:
            (root / name).write_bytes(data)
    return names


@pytest.fixture
def folder(tmp_path) -> tuple[Path, Path, dict[str, str]]:
    """A drawings folder with two good drawings and every hostile entry; the expected reason for each name."""
    root, outside = tmp_path / "drawings", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "passwd").write_bytes(SECRET)
    (outside / "input.png").write_bytes(png(np.full((28, 28), 7)) + SECRET)  # a valid 28x28 PNG, then the secret
    store = DrawingStore(root)
    store.save(np.zeros((280, 280, 4)), np.zeros((28, 28)), 3)
    store.save(np.zeros((280, 280, 4)), np.full((28, 28), 255), 8)
    why: dict[str, str] = {}

    def case(did: str, label: int, raw=RAW, inp=INPUT, raw_why=None, inp_why=None):
        r, i = drawing(root, did, label, raw, inp)
        why[r] = raw_why or "cannot be used"
        why[i] = inp_why or "cannot be used"
        return r, i

    case("20260101-000001-a00001", 1, raw=b"", raw_why="an empty file")
    case("20260101-000002-a00002", 2, inp=b"just some text, not an image\n", inp_why="not a PNG image")
    r, _ = case("20260101-000003-a00003", 3, raw=None, raw_why="a folder, not a drawing")
    (root / r).mkdir()
    case("20260101-000004-a00004", 4, inp=png(np.zeros((29, 29))),
         inp_why="a 29x29 image where the model's input is 28x28")
    r, _ = case("20260101-000005-a00005", 5, raw=None, raw_why="a symbolic link")
    (root / r).symlink_to(outside / "passwd")
    _, i = case("20260101-000006-a00006", 6, inp=None, inp_why="a symbolic link")
    (root / i).symlink_to(outside / "input.png")
    r, _ = case("20260101-000007-a00007", 7, raw=None, raw_why="a named pipe")
    os.mkfifo(root / r)
    case("20260101-000008-a00008", 9, raw=big_png(20_000, whole=True), raw_why="a 20,000x20,000 image")
    case("20260101-000009-a00009", 0, inp=big_png(12_000, whole=False),
         inp_why="a 12000x12000 image where the model's input is 28x28")
    _, i = case("20260101-000010-a00010", 1, inp=None, inp_why="a hard link")
    os.link(outside / "input.png", root / i)
    noise = png(np.random.default_rng(0).integers(0, 256, (28, 28)))
    case("20260101-000011-a00011", 2, inp=noise[:len(noise) // 2], inp_why="a damaged PNG")  # cut inside its data
    case("20260101-000012-a00012", 3, raw=b"\x89PNG" + b"\0" * (MAX_FILE + 1), raw_why="more than the")
    _, i = drawing(root, "20260101-000013-a00013", 4, raw=None)
    why[i] = "its canvas file 20260101-000013-a00013-digit4.png is missing"
    r, _ = drawing(root, "20260101-000014-a00014", 5, inp=None)
    why[r] = "its 28x28 input 20260101-000014-a00014-digit5-28.png is missing"
    (root / "notes.txt").write_text("hello")
    why["notes.txt"] = "not a drawing of this page"
    evil = "evil\u202egnp.exe\nsecond line\x1b[31m.png"
    (root / evil).write_bytes(INPUT)
    why[evil] = "not a drawing of this page"
    (root / "link-to-etc").symlink_to("/etc")
    why["link-to-etc"] = "a symbolic link"
    return root, outside, why


def within(fn, root: Path, seconds: float = 30):
    """fn() in a thread that must end in time (a named pipe opened for reading blocks until a writer comes)."""
    out = {}

    def call() -> None:
        try:
            out["value"] = fn()
        except BaseException as e:
            out["error"] = e

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        for p in root.iterdir():  # release it: open each pipe's writing end
            if p.is_fifo():
                os.close(os.open(p, os.O_WRONLY | os.O_NONBLOCK))
        t.join(5)
        raise AssertionError(f"reading the drawings folder blocked for {seconds} s")
    if "error" in out:
        raise out["error"]
    return out["value"]


def scan_within(store: DrawingStore, seconds: float = 30):
    return within(store.scan, store.root, seconds)


def test_every_hostile_entry_is_listed_with_its_reason_and_the_good_drawings_stay(folder):
    """Catches the uncaught exceptions (empty file, not a PNG, folder, 29x29, link, 20000x20000 decompression bomb,
    12000x12000 costing GBs), the blocking FIFO, and entries dropped without a word."""
    root, _, why = folder
    found = scan_within(DrawingStore(root))
    assert sorted((d.label, d.input28().max()) for d in found.drawings) == [(3, 0), (8, 255)]
    listed = {e.name: e.reason for e in found.odd}
    assert set(listed) == set(why)
    for name, reason in why.items():
        assert reason in listed[name], (name, listed[name])
    assert {e.name for e in found.odd if not e.deletable} == {"20260101-000003-a00003-digit3.png"}  # the folder


def test_the_export_holds_the_good_drawings_and_not_a_byte_from_outside(folder):
    """Catches z.write(path), which follows a link: /etc/passwd in the zip."""
    root, outside, _ = folder
    good = {p.name for d in within(DrawingStore(root).list, root) for p in (d.raw_path, d.input_path)}
    with zipfile.ZipFile(io.BytesIO(within(DrawingStore(root).export_zip, root))) as z:
        assert set(z.namelist()) == good
        for name in z.namelist():
            data = z.read(name)
            assert SECRET not in data and data == (root / name).read_bytes()
    assert (outside / "passwd").read_bytes() == SECRET


def test_deleting_removes_a_drawing_or_an_odd_entry_and_nothing_else(folder):
    """Catches a delete by glob (an id of '*' deleted every drawing), a link's target deleted, a path or a
    folder accepted."""
    root, outside, why = folder
    store = DrawingStore(root)
    first = within(store.list, root)[0]
    for bad in ("*", "2026*", "../outside/passwd", "", None):
        with pytest.raises(DrawingsError):
            store.delete(bad)
    assert len(store.list()) == 2
    store.delete(first.id)
    assert not first.raw_path.exists() and not first.input_path.exists() and len(store.list()) == 1
    store.delete_odd("20260101-000005-a00005-digit5.png")  # the link to passwd
    store.delete_odd("link-to-etc")
    assert (outside / "passwd").read_bytes() == SECRET and Path("/etc").is_dir()
    assert not os.path.lexists(root / "link-to-etc")
    for bad in ("../outside/passwd", str(outside / "passwd"), "/etc/passwd", "..", ".", "nope.png"):
        with pytest.raises(DrawingsError):
            store.delete_odd(bad)
    with pytest.raises(DrawingsError, match="a folder"):
        store.delete_odd("20260101-000003-a00003-digit3.png")
    assert (root / "20260101-000003-a00003-digit3.png").is_dir() and (outside / "passwd").exists()
    for e in scan_within(store).odd:
        if e.deletable:
            store.delete_odd(e.name)
    left = scan_within(store)
    assert [e.name for e in left.odd] == ["20260101-000003-a00003-digit3.png"] and len(left.drawings) == 1


def test_saving_into_a_folder_that_is_a_file_says_so(tmp_path):
    """Catches the traceback a Save gave when DRAWINGS_DIR is a file."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(DrawingsError, match="Cannot save in the drawings folder"):
        DrawingStore(tmp_path / "file").save(np.zeros((280, 280, 4)), np.zeros((28, 28)), 1)
    assert DrawingStore(tmp_path / "file").scan().problem


@pytest.fixture
def draw_page(app_env, monkeypatch, folder):
    from core.drawing import drawing_set as D
    from streamlit.testing.v1 import AppTest

    root, _, _ = folder
    monkeypatch.setenv("DRAWINGS_DIR", str(root))
    monkeypatch.setattr(D, "SIZE", 100)  # the drawing set the page builds in the background: small
    fake = types.ModuleType("streamlit_drawable_canvas")  # the real one imports only inside a running server
    fake.st_canvas = lambda **kw: types.SimpleNamespace(image_data=None, json_data={"objects": []})
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", fake)
    from core import TrainConfig
    from ui.registry import get_store

    store = get_store()
    run = store.start(TrainConfig(epochs=1, max_batches=3))
    store.trainer(run.id).join(120)
    at = AppTest.from_file("../app.py", default_timeout=120).run()
    at.switch_page("pages/draw.py").run()
    return at, folder


def test_the_draw_page_renders_lists_each_odd_entry_and_deletes_from_the_page(draw_page):
    """Catches the page taken down by one odd file, and a saved drawing that could not be deleted from it."""
    from tests.waiting import texts
    from ui import keys as K

    at, (root, outside, why) = draw_page
    assert not at.exception
    shown = texts(at).replace("\\", "")
    for name, reason in why.items():
        assert repr(name).replace("\\", "") in shown and reason in shown, name
    assert "Accuracy of the selected model on my drawings" in [m.label for m in at.metric]  # the good ones are read
    odd = [e.name for e in DrawingStore(root).scan().odd]
    link = odd.index("20260101-000005-a00005-digit5.png")
    at.button(key=f"{K.DRAW_ODD_DELETE}{link}").click().run()
    assert not at.exception and not os.path.lexists(root / odd[link]) and (outside / "passwd").exists()
    first = DrawingStore(root).list()[0]
    at.multiselect(key=K.DRAW_MINE_DELETE_PICK).select(first.id)
    at.run()
    at.button(key=K.DRAW_MINE_DELETE).click().run()
    assert not at.exception
    assert [d.id for d in DrawingStore(root).list()] == [d.id for d in DrawingStore(root).list() if d != first] != []
    assert not first.raw_path.exists() and not first.input_path.exists()
