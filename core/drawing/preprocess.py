"""Canvas RGBA -> 28x28 model input, as MNIST itself was made, keeping every intermediate step."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from core.engine.data import MEAN, STD

INK_THRESHOLD = 8  # 0..255: fainter pixels are anti-aliasing dust, not ink
FIT = 20  # MNIST scaled each digit's longer side to 20 px inside the 28x28 field
SIZE = 28
# Where MNIST puts a digit's centre of mass: at index (14, 14), not the geometric middle 13.5. Measured over
# all 60,000 training digits: mean (13.996, 14.007), every one within half a pixel of 14 (integer shifts in
# MNIST's making); tests/test_preprocess.py computes it from the data.
CENTRE = 14


@dataclass(frozen=True)
class Preprocessed:
    blank: bool
    ink: np.ndarray  # (H, W) uint8, 255 = full ink
    cropped: np.ndarray  # bounding box of the ink
    scaled: np.ndarray  # longer side 20 px, aspect ratio kept, anti-aliased
    boxed: np.ndarray  # (28, 28) scaled digit pasted in the middle
    centered: np.ndarray  # (28, 28) uint8, centre of mass moved to the centre: what the model sees
    naive: np.ndarray  # (28, 28) uint8, the whole canvas squashed to 28x28, for comparison
    ink_fraction: float  # share of canvas pixels with ink

    def model_input(self, naive: bool = False) -> np.ndarray:
        return to_model_input(self.naive if naive else self.centered)


def to_model_input(img28: np.ndarray) -> np.ndarray:
    """(28, 28) uint8 ink -> (784,) float32 normalised exactly as in training: (x/255 - 0.5) / 0.5."""
    return ((img28.astype(np.float32) / 255 - MEAN) / STD).reshape(-1)


def ink_from_rgba(rgba: np.ndarray) -> np.ndarray:
    """Ink is the alpha channel on a transparent canvas, else inverted grey on an opaque background."""
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[2] not in (3, 4):
        raise ValueError(f"image: expected an H x W x 4 (or x 3) array, got shape {rgba.shape}")
    if rgba.shape[2] == 4 and rgba[..., 3].min() < 255:
        return rgba[..., 3].astype(np.uint8)
    grey = rgba[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return (255 - grey).clip(0, 255).astype(np.uint8)


def center_of_mass(img: np.ndarray) -> tuple[float, float]:
    """(row, col) of the ink's centre of mass, in pixel-index coordinates."""
    w = img.astype(np.float64)
    total = w.sum()
    rows, cols = np.indices(img.shape)
    return float((rows * w).sum() / total), float((cols * w).sum() / total)


def _shift(img: np.ndarray, dr: int, dc: int) -> np.ndarray:
    out = np.zeros_like(img)
    h, w = img.shape
    src = img[max(0, -dr):h - max(0, dr), max(0, -dc):w - max(0, dc)]
    out[max(0, dr):max(0, dr) + src.shape[0], max(0, dc):max(0, dc) + src.shape[1]] = src
    return out


def preprocess(rgba: np.ndarray) -> Preprocessed:
    ink = ink_from_rgba(rgba)
    naive = np.asarray(Image.fromarray(ink).resize((SIZE, SIZE), Image.Resampling.BOX))
    mask = ink >= INK_THRESHOLD
    empty = np.zeros((SIZE, SIZE), np.uint8)
    if not mask.any():
        return Preprocessed(True, ink, empty[:0, :0], empty[:0, :0], empty, empty, naive, 0.0)
    rows, cols = np.nonzero(mask)
    cropped = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    h, w = cropped.shape
    scale = FIT / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # PIL wants (width, height)
    scaled = np.asarray(Image.fromarray(cropped).resize(size, Image.Resampling.LANCZOS))  # anti-aliased
    boxed = empty.copy()
    top, left = (SIZE - scaled.shape[0]) // 2, (SIZE - scaled.shape[1]) // 2
    boxed[top:top + scaled.shape[0], left:left + scaled.shape[1]] = scaled
    if boxed.any():
        r, c = center_of_mass(boxed)
        centered = _shift(boxed, round(CENTRE - r), round(CENTRE - c))
    else:
        centered = boxed
    return Preprocessed(False, ink, cropped, scaled, boxed, centered, naive, float(mask.mean()))
