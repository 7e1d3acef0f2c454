"""The user's own labelled drawings: raw canvas image + the 28x28 input, kept as PNG files."""
from __future__ import annotations

import io
import os
import re
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core.store.runs import atomic_write_bytes

_NAME = re.compile(r"^(?P<id>\d{8}-\d{6}-[0-9a-f]{6})-digit(?P<label>\d)\.png$")


def resolve_drawings_dir(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get("DRAWINGS_DIR") or "./drawings")


@dataclass(frozen=True)
class Drawing:
    id: str
    label: int
    raw_path: Path
    input_path: Path

    def input28(self) -> np.ndarray:
        return np.asarray(Image.open(self.input_path).convert("L"))


class DrawingStore:
    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = resolve_drawings_dir(root)

    def save(self, raw_rgba: np.ndarray, input28: np.ndarray, label: int) -> Drawing:
        if not (isinstance(label, int) and 0 <= label <= 9):
            raise ValueError(f"label: must be a digit 0-9, got {label!r}")
        self.root.mkdir(parents=True, exist_ok=True)
        did = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        raw, inp = self.root / f"{did}-digit{label}.png", self.root / f"{did}-digit{label}-28.png"
        for path, arr in ((inp, input28), (raw, raw_rgba)):  # the raw file last: it marks the drawing complete
            buf = io.BytesIO()
            Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(buf, format="PNG")
            atomic_write_bytes(path, buf.getvalue())
        return Drawing(did, label, raw, inp)

    def list(self) -> list[Drawing]:
        if not self.root.exists():
            return []
        out = []
        for p in sorted(self.root.iterdir()):
            m = _NAME.match(p.name)
            inp = p.with_name(p.stem + "-28.png")
            if m and inp.exists():
                out.append(Drawing(m["id"], int(m["label"]), p, inp))
        return out

    def delete(self, drawing_id: str) -> None:
        for p in self.root.glob(f"{drawing_id}-digit*"):
            p.unlink(missing_ok=True)

    def export_zip(self) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for d in self.list():
                z.write(d.raw_path, d.raw_path.name)
                z.write(d.input_path, d.input_path.name)
        return buf.getvalue()
