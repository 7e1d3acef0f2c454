"""A drawing-like test set made from the MNIST test split: each digit redrawn as a mouse draws it on the canvas.

A mouse stroke has one width from end to end and full-strength ink, wherever the digit sits on the canvas and
however large it is drawn. MNIST's digits have pen strokes of varying width, scaled and centred. So each test
digit is thinned to its centre line (core/engine/strokes.py), the line is smoothed, turned, slanted, stretched, scaled to
a random height (a third to all of the 280 px canvas) and put at a random place, drawn with a random stroke
width, and then passed through the Draw page's own preprocessing (core/drawing/preprocess.py). The labels stay
the MNIST labels. Everything is drawn from one seeded generator: the same seed gives the same images.

Rendering 10,000 canvases takes seconds, so a built set is kept once per process, and each run's accuracy on
it is kept in its run folder (drawings.json) next to the weights it was measured with: pages read the number.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image, ImageDraw

from core.drawing import preprocess as _preprocess
from core.engine.config import TrainConfig
from core.engine.data import dataset_spec, load_dataset, normalize
from core.engine.models import MLP
from core.engine import strokes
from core.engine.strokes import NEIGHBOURS, centre_lines, shifted
from core.store.runs import RunInfo, RunStore, WeightsError, atomic_write_json

CANVAS = 280  # the Draw page's canvas, in pixels
STROKE_PX = (6, 40)  # the Draw page's stroke-width slider
# MNIST's stroke width is about 0.14 of the digit's height (median over the test split: ink area / centre-line
# length = 2.7 px for a 20 px digit; 10% of digits below 0.10, 10% above 0.21; tests/test_drawing_set.py
# measures it). Drawings get from less than half to more than twice that.
REL_STROKE = (0.06, 0.30)
HEIGHT = (1 / 3, 1.0)  # ink height as a share of the canvas
ROTATION_DEG = 12.0  # +- uniform
SLANT = 0.25  # +- uniform shear: x moves by SLANT * height
ASPECT = (0.75, 1.33)  # width stretch, log-uniform
SMOOTHING_PASSES = 1  # the 28x28 centre line is a staircase: one averaging with its neighbours makes it a path
# (more rounds off the corners a hand draws too)
DEFAULT_SEED = 0
SIZE: int | None = None  # drawings of the first SIZE test digits; None: all of them (tests use fewer)
# What the Draw page's quick-train button trains: BatchNorm and the robust preset (benchmarks/bench_drawings.py
# times it and measures it on drawings).
QUICK_MODEL = TrainConfig(batch_norm=True, epochs=5, robust=True)



@dataclass(frozen=True)
class DrawingSet:
    x: torch.Tensor  # (N, 28, 28) uint8, what the Draw page would feed the model
    y: torch.Tensor  # (N,) int64, the MNIST test labels
    seed: int
    key: str  # names the recipe, the preprocessing and the seed: a stored accuracy is valid for this key only


def _smoothed_positions(skel: np.ndarray) -> np.ndarray:
    """(N, H, W) bool -> (N, H, W, 2) float (row, col) of each centre-line pixel, averaged with its
    neighbours on the line; line ends stay where they are so strokes keep their length."""
    n, h, w = skel.shape
    rows, cols = np.indices((h, w), dtype=np.float64)
    pos = np.broadcast_to(np.stack([rows, cols], -1), (n, h, w, 2)).copy()
    m = skel.astype(np.float64)
    degree = sum(shifted(m, dr, dc) for dr, dc in NEIGHBOURS)
    for _ in range(SMOOTHING_PASSES):
        total, count = pos * m[..., None], m.copy()
        for dr, dc in NEIGHBOURS:
            nm = shifted(m, dr, dc)
            total += shifted(pos, dr, dc) * nm[..., None]
            count += nm
        moved = total / np.maximum(count, 1)[..., None]
        keep = (degree <= 1) | ~skel
        pos = np.where(keep[..., None], pos, moved)
    return pos


def _segments(skel: np.ndarray) -> np.ndarray:
    """(N, H, W) bool -> (N, H, W, 4) bool: whether a pixel joins its neighbour to the E, S, SE, SW. A diagonal
    is left out where an L of two straight steps already joins the same pixels."""
    at = lambda dr, dc: shifted(skel, dr, dc)
    e, s = skel & at(0, 1), skel & at(1, 0)
    se = skel & at(1, 1) & ~at(0, 1) & ~at(1, 0)
    sw = skel & at(1, -1) & ~at(0, -1) & ~at(1, 0)
    return np.stack([e, s, se, sw], -1)


_STEPS = np.array([(0, 1), (1, 0), (1, 1), (1, -1)])


@dataclass(frozen=True)
class DrawParams:
    """How one digit is drawn: arrays of length N, drawn in this order from one generator."""
    height: np.ndarray  # ink height, canvas pixels
    rel_stroke: np.ndarray  # stroke width / ink height
    rotation: np.ndarray  # radians
    slant: np.ndarray
    aspect: np.ndarray
    place_x: np.ndarray  # 0..1: where the ink box sits in the room left on the canvas
    place_y: np.ndarray


def draw_params(n: int, seed: int) -> DrawParams:
    """Digit i's parameters come from row i of one (n, 7) uniform draw, so they do not depend on n."""
    u = np.random.default_rng(seed).random((n, 7))  # filled row by row
    between = lambda k, lo, hi: lo + (hi - lo) * u[:, k]
    log_between = lambda k, lo, hi: np.exp(between(k, np.log(lo), np.log(hi)))
    return DrawParams(height=between(0, *HEIGHT) * CANVAS, rel_stroke=log_between(1, *REL_STROKE),
                      rotation=np.deg2rad(between(2, -ROTATION_DEG, ROTATION_DEG)), slant=between(3, -SLANT, SLANT),
                      aspect=log_between(4, *ASPECT), place_x=u[:, 5], place_y=u[:, 6])


def _layout(points: np.ndarray, p: DrawParams, i: int) -> tuple[np.ndarray, float]:
    """(K, 2) (row, col) centre-line points of digit i -> (K, 2) canvas (x, y) and the stroke width."""
    xy = points[:, ::-1] - points[:, ::-1].mean(0)  # (x, y), y pointing down
    c, s = np.cos(p.rotation[i]), np.sin(p.rotation[i])
    m = np.array([[p.aspect[i], 0.0], [0.0, 1.0]]) @ np.array([[1.0, -p.slant[i]], [0.0, 1.0]]) @ np.array([[c, -s], [s, c]])
    xy = xy @ m.T
    stroke = float(np.clip(p.rel_stroke[i] * p.height[i], *STROKE_PX))
    span = np.maximum(xy.max(0) - xy.min(0), 1.0)  # (width, height) of the centre line
    fit = CANVAS - 2 - stroke - 1  # a pixel of blank canvas on each side, and PIL may round the width up
    k = min(max(p.height[i] - stroke, 1.0) / span[1], fit / span[0], fit / span[1])
    xy = (xy - xy.min(0)) * k
    room = fit - span * k  # >= 0 in both directions
    return xy + 1.5 + stroke / 2 + room * np.array([p.place_x[i], p.place_y[i]]), stroke


def render(points: np.ndarray, segments: np.ndarray, stroke: float, full: bool = False) -> np.ndarray:
    """Canvas (x, y) points and index pairs -> uint8 ink of round-capped lines of one width, on the whole
    CANVAS x CANVAS canvas (`full`), or on the part of it around the ink: the Draw page's preprocessing crops
    the canvas to the ink first, so both give it the same input, and the window is 3x faster to preprocess.
    The window is shifted by whole pixels, so every pixel is rasterised as on the canvas."""
    r = stroke / 2
    if full:
        origin, size = np.zeros(2), (CANVAS, CANVAS)
    else:
        origin = np.floor(points.min(0) - r) - 2  # a blank margin: ink_from_rgba reads a transparent canvas
        size = tuple(int(v) for v in np.ceil(points.max(0) + r) + 3 - origin)
    img = Image.new("L", size, 0)
    d = ImageDraw.Draw(img)
    width, xy = max(1, round(stroke)), (points - origin).tolist()
    for a, b in segments.tolist():
        d.line([*xy[a], *xy[b]], fill=255, width=width)
    for x, y in xy:  # round joints and ends, as the canvas' pen draws them
        d.ellipse([x - r, y - r, x + r, y + r], fill=255)
    return np.asarray(img)


def canvas_drawings(images: np.ndarray, seed: int = DEFAULT_SEED, full: bool = False) -> Iterator[np.ndarray]:
    """(N, 28, 28) uint8 MNIST digits -> an iterator of uint8 ink images, one per digit: whole canvases
    (`full`), or the part of each around its ink (see render)."""
    skel = centre_lines(images)
    pos = _smoothed_positions(skel)
    seg = _segments(skel)
    params = draw_params(len(images), seed)
    for i in range(len(images)):
        rc = np.argwhere(skel[i])  # (K, 2) pixels on the centre line
        index = -np.ones(skel.shape[1:], dtype=np.int64)
        index[rc[:, 0], rc[:, 1]] = np.arange(len(rc))
        pairs = [np.stack([index[r, c], index[r + dr, c + dc]], 1)
                 for k, (dr, dc) in enumerate(_STEPS) for r, c in [np.nonzero(seg[i, :, :, k])]]
        xy, stroke = _layout(pos[i][rc[:, 0], rc[:, 1]], params, i)
        yield render(xy, np.concatenate(pairs), stroke, full)


def model_input(ink: np.ndarray) -> np.ndarray:
    """Canvas ink -> the 28x28 image the Draw page gives the model, through its own preprocessing."""
    rgba = np.zeros(ink.shape + (4,), np.uint8)
    rgba[..., 3] = ink  # black ink on a transparent canvas, as streamlit-drawable-canvas returns it
    return _preprocess.preprocess(rgba).centered


def _recipe_key(seed: int, n: int) -> str:
    """Changes whenever this recipe or the Draw page's preprocessing changes, so stored accuracies go stale."""
    h = hashlib.sha256()
    for module in (_preprocess.__file__, strokes.__file__, __file__):
        h.update(Path(module).read_bytes())
    h.update(f"{seed}:{n}".encode())
    return h.hexdigest()[:16]


def build_drawing_set(images: torch.Tensor, labels: torch.Tensor, seed: int = DEFAULT_SEED) -> DrawingSet:
    x = np.stack([model_input(ink) for ink in canvas_drawings(images.numpy(), seed)])
    return DrawingSet(torch.from_numpy(x), labels.clone(), seed, set_key(seed, len(images)))


_sets: dict[tuple[str, int, int | None], DrawingSet] = {}
_building: dict[tuple[str, int, int | None], threading.Lock] = {}  # one lock per set: two pages build it once
_registry = threading.Lock()


def _key(data_dir: str | os.PathLike | None, seed: int, n: int | None) -> tuple[str, int, int | None]:
    return str(data_dir), seed, n


def drawing_set(data_dir: str | os.PathLike | None = None, seed: int = DEFAULT_SEED, n: int | None = None) -> DrawingSet:
    """The drawing-like set of the first `n` (default all 10,000) MNIST test digits, built once per process."""
    key = _key(data_dir, seed, n)
    with _registry:
        lock = _building.setdefault(key, threading.Lock())
    with lock:
        if key not in _sets:
            data = load_dataset("mnist", data_dir)
            _sets[key] = build_drawing_set(data.test_x[:n], data.test_y[:n], seed)
        return _sets[key]


class DrawingSetError(RuntimeError):
    """Building the drawing-like set failed (the message says why); the next call tries again."""


_errors: dict[tuple[str, int, int | None], str] = {}


def _build(data_dir: str | os.PathLike | None, seed: int, n: int | None) -> None:
    try:
        drawing_set(data_dir, seed, n)
    except Exception as e:  # the thread must not die silently: the page shows the message
        _errors[_key(data_dir, seed, n)] = f"{type(e).__name__}: {e}"


def ready_or_building(data_dir: str | os.PathLike | None = None, seed: int = DEFAULT_SEED, n: int | None = None) -> bool:
    """True when the set is built; else starts building it in a background thread (once) and returns False,
    so that a page can show what it has and look again later instead of waiting for seconds. Raises
    DrawingSetError when the last build failed."""
    key = _key(data_dir, seed, n)
    with _registry:
        if key in _sets:
            return True
        if key in _errors:
            raise DrawingSetError(_errors.pop(key))
        lock = _building.setdefault(key, threading.Lock())
        if lock.locked():
            return False  # being built
        # The thread ends when the set is built: a thread that ran torch slows training only while it lives
        # (README, CPU effects), and this one runs numpy and PIL, not torch kernels, unless it loads MNIST.
        threading.Thread(target=_build, args=(data_dir, seed, n), name="drawing-set", daemon=True).start()
    return False


@torch.inference_mode()
def predictions(model: MLP, ds: DrawingSet, batch: int = 1000) -> torch.Tensor:
    """(N,) the model's digit for each drawing, in eval mode (BN uses its running statistics)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = torch.cat([model(normalize(ds.x[i:i + batch]).to(device)).argmax(1).cpu() for i in range(0, len(ds.y), batch)])
    model.train(was_training)
    return out


def accuracy_on(model: MLP, ds: DrawingSet) -> float:
    """Share of the drawings the model reads as their MNIST label."""
    return float((predictions(model, ds) == ds.y).float().mean())


# --- each run's accuracy on drawings, kept in its run folder ---------------------------------
RESULT_FILE = "drawings.json"
_results: dict[tuple[str, tuple[int, int], str], float] = {}  # (run folder, weights stat, set key) -> accuracy
_keys: dict[tuple[int, int], str] = {}


def set_key(seed: int = DEFAULT_SEED, n: int | None = None) -> str:
    """The key of the set drawing_set(seed=seed, n=n) builds, without building it."""
    n = n or SIZE or dataset_spec("mnist").test_size
    if (seed, n) not in _keys:
        _keys[(seed, n)] = _recipe_key(seed, n)
    return _keys[(seed, n)]


def _weights_stat(run_dir: Path) -> tuple[int, int] | None:
    try:
        st = (run_dir / "weights.safetensors").stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def measurable(info: RunInfo) -> bool:
    """Whether a run's model can be measured on the drawings: an MNIST model, no longer training, with an epoch."""
    return info.config.dataset == "mnist" and not info.live and bool(info.snapshot.history)


def stored_accuracy(store: RunStore, run_id: str) -> float | None:
    """The run's accuracy on the drawings if it was measured with its current weights; never measures."""
    run_dir = store.root / run_id
    stat, key = _weights_stat(run_dir), set_key()
    if stat is None:
        return None
    if (str(run_dir), stat, key) in _results:
        return _results[(str(run_dir), stat, key)]
    try:
        saved = json.loads((run_dir / RESULT_FILE).read_text())
        if saved["key"] == key and tuple(saved["weights"]) == stat:
            _results[(str(run_dir), stat, key)] = float(saved["accuracy"])
            return float(saved["accuracy"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # not measured yet, or a damaged file: measure again
    return None


def needs_measuring(store: RunStore, info: RunInfo) -> bool:
    """Whether run_accuracy would measure this run now (seconds of work) rather than read or skip it."""
    return measurable(info) and stored_accuracy(store, info.id) is None and \
        (str(store.root / info.id), _weights_stat(store.root / info.id)) not in _unreadable


_unreadable: set[tuple[str, tuple[int, int] | None]] = set()  # weights that failed to load: not tried again


def run_accuracy(store: RunStore, run_id: str) -> float | None:
    """The run's accuracy on the drawing-like set: read from its folder, else measured and kept there.
    None for a run that cannot be measured (not MNIST, still training, no readable weights): pages show a dash.
    The first measurement in a process builds the set (seconds); later ones take a fraction of a second."""
    info = store.get(run_id)
    if not measurable(info):
        return None
    if (acc := stored_accuracy(store, run_id)) is not None:
        return acc
    run_dir = store.root / run_id
    stat = _weights_stat(run_dir)
    if (str(run_dir), stat) in _unreadable:
        return None
    try:
        model = store.load_model(run_id)
    except WeightsError:
        _unreadable.add((str(run_dir), stat))
        return None
    acc = accuracy_on(model, drawing_set(store.data_dir, n=SIZE))
    _results[(str(run_dir), stat, set_key())] = acc
    try:
        atomic_write_json(run_dir / RESULT_FILE, {"key": set_key(), "weights": list(stat), "accuracy": acc})
    except OSError:
        pass  # the run was deleted meanwhile: the number is still right for this page
    return acc
