"""The user's own labelled drawings: the raw canvas image and the 28x28 input, kept as PNG files.

A drawing is two files in the drawings folder, `<id>-digit<label>.png` (the canvas) and `<id>-digit<label>-28.png`
(what the model reads). The folder is read under the run store's rules: nothing outside it is read, written,
followed or deleted. Every entry is looked at without following it (lstat) and files are opened with
O_NOFOLLOW | O_NONBLOCK, so a link is never followed and a named pipe never blocks; only regular files with
one name (a hard link could be a file from elsewhere) are read, at most MAX_FILE bytes of them, and an image's
size is read from its PNG header before Pillow decodes it. Whatever is not a whole drawing is listed in
`Collection.odd` with the reason, and can be deleted by name (a link is removed, never its target; a folder is
left alone). The export writes only bytes read this way.
"""
from __future__ import annotations

import errno
import io
import os
import re
import stat
import struct
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from core.store.runs import atomic_write_bytes

_RAW = re.compile(r"(?P<id>\d{8}-\d{6}-[0-9a-f]{6})-digit(?P<label>\d)\.png")
_INPUT = re.compile(r"(?P<id>\d{8}-\d{6}-[0-9a-f]{6})-digit(?P<label>\d)-28\.png")
_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
INPUT_SIDE = 28
MAX_SIDE = 2000  # pixels per side of a canvas image: the Draw page's canvas is 280 x 280
MAX_FILE = 2 << 20  # bytes: a 280 x 280 RGBA canvas is at most 314 KB as PNG, however it is drawn
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


class DrawingsError(RuntimeError):
    """The drawings folder, or one of its entries, cannot be used as asked; the message says why."""


def resolve_drawings_dir(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get("DRAWINGS_DIR") or "./drawings")


@dataclass(frozen=True)
class Drawing:
    id: str
    label: int
    raw_path: Path
    input_path: Path
    pixels: np.ndarray | None = field(default=None, compare=False, repr=False)  # (28, 28) uint8, as read

    def input28(self) -> np.ndarray:
        if self.pixels is not None:
            return self.pixels
        return _input_pixels(_read_png(self.input_path))


@dataclass(frozen=True)
class OddEntry:
    """An entry of the drawings folder that is not (part of) a whole drawing, and why."""
    name: str
    reason: str
    deletable: bool = True  # False for a folder: left alone


@dataclass(frozen=True)
class Collection:
    drawings: list[Drawing]
    odd: list[OddEntry]
    problem: str | None = None  # the folder itself cannot be read


class _Odd(Exception):
    """Why one file is not usable (the message is the reason shown)."""


def _kind(mode: int) -> str | None:
    """What a non-regular entry is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "a symbolic link: never followed"
    if stat.S_ISDIR(mode):
        return "a folder, not a drawing: left alone"
    if stat.S_ISFIFO(mode):
        return "a named pipe, not a file: never opened"
    if stat.S_ISSOCK(mode):
        return "a socket, not a file: never opened"
    return "a device, not a file: never opened"


def _read_png(path: Path) -> bytes:
    """The bytes of a regular, singly linked file of at most MAX_FILE bytes that starts as a PNG; _Odd if not."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK)
    except FileNotFoundError:
        raise _Odd("it was removed while being read") from None
    except OSError as e:
        raise _Odd("a symbolic link: never followed" if e.errno == errno.ELOOP else
                   f"it cannot be read ({e.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if (kind := _kind(st.st_mode)) is not None:
            raise _Odd(kind)
        if st.st_nlink > 1:
            raise _Odd(f"a file with {st.st_nlink} names (a hard link): it may be a file from elsewhere, not read")
        if st.st_size == 0:
            raise _Odd("an empty file")
        if st.st_size > MAX_FILE:
            raise _Odd(f"{st.st_size:,} bytes, more than the {MAX_FILE:,} a drawing can take")
        try:
            data = f.read(MAX_FILE + 1)
        except OSError as e:
            raise _Odd(f"it cannot be read ({e.strerror})") from None
    if len(data) > MAX_FILE:
        raise _Odd(f"more than the {MAX_FILE:,} bytes a drawing can take")
    _png_size(data)
    return data


def _png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's header, without decoding it; _Odd when it is not a PNG."""
    if not data.startswith(PNG_SIGNATURE) or len(data) < 24 or data[12:16] != b"IHDR":
        raise _Odd("not a PNG image")
    return struct.unpack(">II", data[16:24])


def _decoded(data: bytes) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
        return img
    except Exception as e:  # Pillow raises many kinds (OSError, SyntaxError, ValueError, ...) for a bad file
        raise _Odd(f"a damaged PNG ({type(e).__name__}: {str(e)[:80]})") from None


def _input_pixels(data: bytes) -> np.ndarray:
    w, h = _png_size(data)
    if (w, h) != (INPUT_SIDE, INPUT_SIDE):
        raise _Odd(f"a {w}x{h} image where the model's input is {INPUT_SIDE}x{INPUT_SIDE}")
    return np.asarray(_decoded(data).convert("L"))


def _check_canvas(data: bytes) -> None:
    w, h = _png_size(data)
    if not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE):
        raise _Odd(f"a {w:,}x{h:,} image: a canvas image is at most {MAX_SIDE}x{MAX_SIDE}; not decoded")
    _decoded(data)


def _partner(name: str) -> str:
    """How the other file of a drawing names this one."""
    return f"its 28x28 input {name}" if name.endswith("-28.png") else f"its canvas file {name}"


class DrawingStore:
    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = resolve_drawings_dir(root)

    def save(self, raw_rgba: np.ndarray, input28: np.ndarray, label: int) -> Drawing:
        """Save a drawing; ValueError for a bad label or image, DrawingsError when the folder cannot take it."""
        if not (isinstance(label, int) and 0 <= label <= 9):
            raise ValueError(f"label: must be a digit 0-9, got {label!r}")
        input28 = np.asarray(input28, dtype=np.uint8)
        if input28.shape != (INPUT_SIDE, INPUT_SIDE):
            raise ValueError(f"the model's input is {INPUT_SIDE}x{INPUT_SIDE}, got {input28.shape}")
        did = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        raw, inp = self.root / f"{did}-digit{label}.png", self.root / f"{did}-digit{label}-28.png"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for path, arr in ((inp, input28), (raw, raw_rgba)):  # the raw file last: it marks the drawing complete
                buf = io.BytesIO()
                Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(buf, format="PNG")
                atomic_write_bytes(path, buf.getvalue())
        except OSError as e:
            raise DrawingsError(f"Cannot save in the drawings folder {self.root} ({e.strerror or e}). Set "
                                "DRAWINGS_DIR to a folder this program may write to.") from None
        return Drawing(did, label, raw, inp, input28)

    def scan(self) -> Collection:
        """Every whole drawing (its 28x28 input read and checked), oldest first, and every other entry of the
        folder with the reason it is not one. Hidden names (our temporary files) are skipped."""
        if not self.root.exists():
            return Collection([], [])
        try:
            entries = {e.name: e.stat(follow_symlinks=False).st_mode for e in os.scandir(self.root)
                       if not e.name.startswith(".")}
        except OSError as e:
            return Collection([], [], f"The drawings folder {self.root} cannot be read ({e.strerror or e}). Set "
                                      "DRAWINGS_DIR to a folder this program may read and write.")
        odd: dict[str, str] = {}
        inputs = {n: m for n in entries if (m := _INPUT.fullmatch(n))}
        raws = {n: m for n in entries if (m := _RAW.fullmatch(n))}
        for name, mode in entries.items():
            if (kind := _kind(mode)) is not None:
                odd[name] = kind
            elif name not in inputs and name not in raws:
                odd[name] = "not a drawing of this page (its name is not <id>-digit<N>.png or <id>-digit<N>-28.png)"
        drawings = []
        for raw_name, m in sorted(raws.items()):
            input_name = raw_name[:-4] + "-28.png"
            if input_name not in entries:
                odd.setdefault(raw_name, f"its 28x28 input {input_name} is missing")
                continue
            if raw_name in odd or input_name in odd:  # a link, a folder, a pipe: its partner is odd with it
                bad, other = (raw_name, input_name) if raw_name in odd else (input_name, raw_name)
                odd.setdefault(other, f"{_partner(bad)} cannot be used ({odd[bad].split(':')[0]})")
                continue
            try:
                pixels = self._read_input(input_name)
            except _Odd as e:
                odd[input_name], odd[raw_name] = str(e), f"{_partner(input_name)} cannot be used"
                continue
            try:
                _check_canvas(_read_png(self.root / raw_name))
            except _Odd as e:
                odd[raw_name], odd[input_name] = str(e), f"{_partner(raw_name)} cannot be used"
                continue
            drawings.append(Drawing(m["id"], int(m["label"]), self.root / raw_name, self.root / input_name, pixels))
        for input_name in inputs:
            if input_name[:-7] + ".png" not in raws:
                odd.setdefault(input_name, f"its canvas file {input_name[:-7]}.png is missing")
        return Collection(drawings, [OddEntry(n, why, not stat.S_ISDIR(entries[n])) for n, why in sorted(odd.items())])

    def _read_input(self, name: str) -> np.ndarray:
        return _input_pixels(_read_png(self.root / name))

    def list(self) -> list[Drawing]:
        """The whole drawings (see scan)."""
        return self.scan().drawings

    def delete(self, drawing_id: str) -> None:
        """Delete a drawing's two files; DrawingsError for an id that is not of the form the page writes."""
        if not (isinstance(drawing_id, str) and _ID.fullmatch(drawing_id)):
            raise DrawingsError(f"No drawing {drawing_id!r}: drawing ids look like 20260101-120000-1a2b3c")
        names = [n for n in self._names() if (m := _RAW.fullmatch(n) or _INPUT.fullmatch(n)) and m["id"] == drawing_id]
        if not names:
            raise DrawingsError(f"No drawing {drawing_id!r} in {self.root}")
        for name in names:
            self._unlink(name)

    def delete_odd(self, name: str) -> None:
        """Delete an entry of the drawings folder by its name: a file, a link (never its target), a pipe. A
        folder, a name that is not an entry of the folder (a path, '..') raise DrawingsError."""
        if not (isinstance(name, str) and name in self._names()):
            raise DrawingsError(f"No entry {name!r} in the drawings folder {self.root}")
        self._unlink(name)

    def _names(self) -> set[str]:
        try:
            return set(os.listdir(self.root))
        except OSError:
            return set()

    def _unlink(self, name: str) -> None:
        path = self.root / name
        try:
            if stat.S_ISDIR(os.lstat(path).st_mode):
                raise DrawingsError(f"{name} is a folder: it is left alone (remove it yourself if it is not needed)")
            os.unlink(path)  # a link itself, never what it points to
        except FileNotFoundError:
            pass  # gone already: what was asked for
        except OSError as e:
            raise DrawingsError(f"Cannot delete {name} in {self.root} ({e.strerror or e})") from None

    def export_zip(self) -> bytes:
        """Every whole drawing's two files as a zip archive: bytes read as scan reads them (never through a
        link), so nothing from outside the drawings folder is in it."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for d in self.list():
                try:
                    files = [(p.name, _read_png(p)) for p in (d.raw_path, d.input_path)]
                except _Odd:
                    continue  # changed since it was listed: left out
                for name, data in files:
                    z.writestr(name, data)
        return buf.getvalue()


@dataclass(frozen=True)
class Score:
    """How a model reads the user's drawings."""
    rows: list[dict]  # one per drawing: id, label, predicted, confidence, correct
    correct: int
    confusions: list[tuple[int, int, int]]  # (label, read as, times), most frequent first

    @property
    def accuracy(self) -> float:
        return self.correct / len(self.rows) if self.rows else float("nan")


def score(model, drawings: list[Drawing]) -> Score:
    """The model's reading of each drawing (its saved 28x28 input, as the Draw page feeds it)."""
    from core.drawing.predict import predict_digit
    from core.drawing.preprocess import to_model_input

    rows, counts = [], {}
    for d in drawings:
        p = predict_digit(model, to_model_input(d.input28()))
        rows.append({"drawing": d.id, "label": d.label, "predicted": p.top, "confidence": f"{p.confidence:.1%}",
                     "correct": p.top == d.label})
        if p.top != d.label:
            counts[(d.label, p.top)] = counts.get((d.label, p.top), 0) + 1
    confusions = sorted(((t, p, c) for (t, p), c in counts.items()), key=lambda x: -x[2])
    return Score(rows, sum(r["correct"] for r in rows), confusions)
