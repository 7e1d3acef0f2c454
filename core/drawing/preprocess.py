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
# What a digit is not, judged from the ink alone (softmax confidence cannot judge it: see predict.py).
MIN_IMAGE_SIDE = 8  # px: a smaller image cannot hold a handwritten digit
MIN_INK_SHARE = 0.1  # the ink's longer side must span at least this share of the image's longer side
# Ink covering this share of its bounding box, in a box that is not a thin bar, is a block. Of the 70,000 MNIST
# digits scaled to the canvas, the fullest such box is 88% inked (4 of them above 85%, none above 90%).
SOLID_FILL = 0.95
SOLID_ASPECT = 0.5  # shorter / longer side of the box above which a filled box is a block (a "1" is thinner)


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
    # Why the ink cannot be a digit (the model's answer then means nothing), else None. Blank is not a reason.
    not_a_digit: str | None = None

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
    if rgba.dtype.kind not in "biu":
        if not np.isfinite(rgba).all():
            raise ValueError("image: contains NaN or infinite values")
        rgba = rgba.clip(0, 255).astype(np.uint8)
    if rgba.size == 0:
        return np.zeros(rgba.shape[:2], np.uint8)
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


def not_a_digit(ink: np.ndarray, mask: np.ndarray) -> str | None:
    """Why this ink cannot be a handwritten digit, or None. Checked before the model is asked, because the
    model answers for anything: its ten probabilities always add up to one."""
    h, w = ink.shape
    if h == 0 or w == 0:
        return f"the image is empty ({w} x {h} pixels)"
    if min(h, w) < MIN_IMAGE_SIDE:
        return f"the image is only {w} x {h} pixels, too small to hold a digit"
    if not mask.any():
        return None  # blank: nothing drawn yet
    rows, cols = np.nonzero(mask)
    bh, bw = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    if max(bh, bw) < MIN_INK_SHARE * max(h, w):
        return f"the ink is a dot ({bw} x {bh} pixels on a {w} x {h} image), too small for a digit"
    fill = mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1].mean()
    if fill >= SOLID_FILL and min(bh, bw) >= SOLID_ASPECT * max(bh, bw):
        return f"the ink is a solid block ({fill:.0%} of its {bw} x {bh} pixel box is inked); a digit is made of strokes"
    return None


def preprocess(rgba: np.ndarray) -> Preprocessed:
    ink = ink_from_rgba(rgba)
    mask = ink >= INK_THRESHOLD
    empty = np.zeros((SIZE, SIZE), np.uint8)
    reason = not_a_digit(ink, mask)  # the steps below still run, so a page can show what the model would see
    if not mask.any():  # blank, or an empty image
        naive = np.asarray(Image.fromarray(ink).resize((SIZE, SIZE), Image.Resampling.BOX)) if ink.size else empty
        return Preprocessed(reason is None, ink, empty[:0, :0], empty[:0, :0], empty, empty, naive,
                            float(mask.mean()) if mask.size else 0.0, reason)
    naive = np.asarray(Image.fromarray(ink).resize((SIZE, SIZE), Image.Resampling.BOX))
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
    return Preprocessed(False, ink, cropped, scaled, boxed, centered, naive, float(mask.mean()), reason)
