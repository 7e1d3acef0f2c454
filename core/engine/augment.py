"""The robust preset: each training digit is changed on the fly, by its own random draw, on whole batches on the
training device (a gather, a few elementwise operations, one grid_sample), never image by image.

A mouse on the Draw page draws one stroke width along a path, at any slant, and the page's preprocessing scales
every drawing so that its longer side is 20 px. MNIST's writers used pens of varying width. A model that saw
only MNIST learns its writers' habits (benchmarks/bench_drawings.py measures that on the drawing-like set of
core/drawing/drawing_set.py). So a share of the digits is redrawn along its centre line with one random stroke
width, scaled as the Draw page would scale that drawing, and every digit is turned, slanted, stretched and shifted.
"""
from __future__ import annotations

import math
import queue
import threading
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch.nn import functional as F

SIDE = 28
FIT = 20  # core/drawing/preprocess.py scales a drawing's longer side to this many pixels


@dataclass(frozen=True)
class AugmentConfig:
    restroke: float = 0.5  # share of the digits redrawn along their centre line with one stroke width
    stroke_radius: tuple[float, float] = (0.6, 3.5)  # log-uniform, pixels: strokes 1.2 to 7 px wide before scaling
    rotation_deg: float = 12.0  # +- uniform
    shear: float = 0.25  # +- uniform: x moves by shear * y (a slant)
    scale: tuple[float, float] = (0.9, 1.1)  # log-uniform, both axes
    aspect: tuple[float, float] = (0.8, 1.25)  # log-uniform, x only: narrow and wide writing
    translate_px: float = 1.5  # +- uniform, each axis
    elastic_px: float = 0.0  # amplitude of a smooth random displacement field (0: off; measured not to earn its cost)
    chunk_rows: int = 1024  # digits are changed about this many at a time: fewer, larger operations


DEFAULT = AugmentConfig()


def generator_for(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    """The augmentation's own random numbers, from the run's seed and the epoch: the minibatch order stays that
    of the same seed without the preset."""
    state = int(np.random.SeedSequence([seed, epoch, 0xA06]).generate_state(1, np.uint64)[0] >> 1)
    return torch.Generator(device=device).manual_seed(state)


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float, device: torch.device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, device=device)


def _log_uniform(gen: torch.Generator, n: int, lo: float, hi: float, device: torch.device) -> torch.Tensor:
    return _uniform(gen, n, math.log(lo), math.log(hi), device).exp()


# --- redrawing along the centre line ---------------------------------------------------------
_ROOTS = torch.arange(256, dtype=torch.float32).sqrt()  # squared distance -> distance


def _restroked(x: torch.Tensor, lines: "CentreLines", rows: torch.Tensor, gen: torch.Generator, cfg: AugmentConfig,
               mean: float, std: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, H, W) normalised digits -> a share of them redrawn as one stroke of radius r along the centre line (ink
    1 up to r - 0.5 px from it, 0 from r + 0.5 px), and (n,) how much each must grow so that, like a drawing
    after the Draw page's preprocessing, line + stroke span FIT pixels (1 for the digits left as they are)."""
    n, dev = len(x), x.device
    r = _log_uniform(gen, n, *cfg.stroke_radius, dev)
    chosen = (torch.rand(n, generator=gen, device=dev) < cfg.restroke).nonzero().squeeze(1)  # only these are drawn
    rc = r[chosen].view(-1, 1, 1)
    ink = (rc + 0.5 - _ROOTS.to(dev)[lines.distance[rows[chosen]].long()]).clamp_(0, 1)
    x = x.index_copy(0, chosen, (ink - mean) / std)
    grow = torch.ones_like(r).index_copy(0, chosen, FIT / (lines.extent[rows[chosen]] + 2 * r[chosen]))
    return x, grow


# --- turning, slanting, stretching, shifting -------------------------------------------------
def _thetas(n: int, gen: torch.Generator, cfg: AugmentConfig, grow: torch.Tensor) -> torch.Tensor:
    """(n, 2, 3) sampling transforms: output point p reads the input at theta[:, :, :2] @ p + theta[:, :, 2]."""
    dev = grow.device
    angle = _uniform(gen, n, -math.radians(cfg.rotation_deg), math.radians(cfg.rotation_deg), dev)
    shear = _uniform(gen, n, -cfg.shear, cfg.shear, dev)
    scale = _log_uniform(gen, n, *cfg.scale, dev) * grow
    sx = scale * _log_uniform(gen, n, *cfg.aspect, dev)
    shift = _uniform(gen, 2 * n, -cfg.translate_px, cfg.translate_px, dev).view(n, 2) * (2 / SIDE)
    cos, sin = angle.cos(), angle.sin()
    # rows of R(angle) @ Shear @ diag(1/sx, 1/scale): sampling with the inverse stretch stretches the digit
    a = torch.stack([torch.stack([cos / sx, (cos * shear - sin) / scale], 1),
                     torch.stack([sin / sx, (sin * shear + cos) / scale], 1)], 1)  # (n, 2, 2)
    return torch.cat([a, shift.unsqueeze(2)], 2)


_bases: dict[torch.device, torch.Tensor] = {}


def _grid(thetas: torch.Tensor) -> torch.Tensor:
    """(n, 2, 3) -> (n, H, W, 2): F.affine_grid's grid as one matrix product (5x faster here)."""
    n, dev = len(thetas), thetas.device
    if dev not in _bases:  # x, y, 1 of each output pixel
        g = F.affine_grid(torch.eye(2, 3, device=dev).unsqueeze(0), [1, 1, SIDE, SIDE], align_corners=False)
        _bases[dev] = torch.cat([g.view(SIDE * SIDE, 2), torch.ones(SIDE * SIDE, 1, device=dev)], 1)
    grid = _bases[dev] @ thetas.permute(2, 0, 1).reshape(3, 2 * n)  # (H*W, 2n)
    return grid.view(SIDE * SIDE, n, 2).transpose(0, 1).reshape(n, SIDE, SIDE, 2)


_upsamplers: dict[torch.device, torch.Tensor] = {}


def _elastic(n: int, gen: torch.Generator, px: float, device: torch.device) -> torch.Tensor:
    """(n, H, W, 2) a smooth displacement field: 4x4 random offsets, bicubically upsampled, in grid units."""
    if device not in _upsamplers:  # upsampling is linear: one (16, H*W) matrix does it for every image
        eye = torch.eye(16, device=device).view(16, 1, 4, 4)
        _upsamplers[device] = F.interpolate(eye, size=(SIDE, SIDE), mode="bicubic", align_corners=True).view(16, -1)
    coarse = torch.randn(n * 2, 16, generator=gen, device=device) * (px * 2 / SIDE)
    return (coarse @ _upsamplers[device]).view(n, 2, SIDE, SIDE).permute(0, 2, 3, 1)


def augment(x: torch.Tensor, gen: torch.Generator, mean: float, std: float, cfg: AugmentConfig = DEFAULT,
            lines: "CentreLines | None" = None, rows: torch.Tensor | None = None) -> torch.Tensor:
    """(n, 784) normalised digits -> (n, 784) normalised, each changed by its own random draw, in the normalised
    values: redrawing writes them, the resampling interpolates them.
    lines, rows: the dataset's centre lines and the rows of these digits in it, for cfg.restroke."""
    n = len(x)
    img = x.view(n, SIDE, SIDE)
    grow = torch.ones(n, device=x.device)
    if cfg.restroke and lines is not None:
        img, grow = _restroked(img, lines, rows, gen, cfg, mean, std)
    grid = _grid(_thetas(n, gen, cfg, grow))
    if cfg.elastic_px:
        grid = grid + _elastic(n, gen, cfg.elastic_px, x.device)
    background = -mean / std  # what grid_sample must read outside the frame: shifted to zero for its zero padding
    out = F.grid_sample((img - background).unsqueeze(1), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return (out + background).view(n, SIDE * SIDE)


# --- the training set's centre lines, once per process -----------------------------------------
@dataclass(frozen=True)
class CentreLines:
    distance: torch.Tensor  # (N, H, W) uint8 squared distance of each pixel to the digit's centre line
    extent: torch.Tensor  # (N,) float32 the centre line's longer side, pixels


_lines: dict[tuple, CentreLines] = {}  # by dataset, and by dataset and device


def centre_lines_of(x_uint8: torch.Tensor) -> CentreLines:
    """Centre lines of a dataset's digits, on the digits' device, computed once per process and dataset (seconds
    for 60,000 digits, on the CPU)."""
    from core.engine.strokes import centre_lines, squared_distance

    sample = x_uint8[:: max(1, len(x_uint8) // 64)].cpu().numpy().tobytes()  # identifies the data, in microseconds
    key = (tuple(x_uint8.shape), hash(sample))
    if key not in _lines:
        line = centre_lines(x_uint8.cpu().numpy())
        rows, cols = line.any(2), line.any(1)
        span = lambda m: m.shape[1] - m.argmax(1) - m[:, ::-1].argmax(1)  # first to last True, inclusive
        extent = np.maximum(span(rows), span(cols)).astype(np.float32)
        _lines[key] = CentreLines(torch.from_numpy(squared_distance(line)), torch.from_numpy(extent))
    if (key, x_uint8.device) not in _lines:
        found = _lines[key]
        _lines[(key, x_uint8.device)] = CentreLines(found.distance.to(x_uint8.device), found.extent.to(x_uint8.device))
    return _lines[(key, x_uint8.device)]


def robust_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator,
                   max_batches: int | None, mean: float, std: float, seed: int, epoch: int,
                   cfg: AugmentConfig | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """iterate_batches' minibatches, the same for the same generator, every digit changed; labels untouched.
    On a CPU the chunks are prepared in a helper thread, up to two ahead, on the core the training thread
    leaves free (it computes with one thread, core/engine/cpu.py). cfg: DEFAULT when None (read at call time,
    so a benchmark can try another setting in its own process)."""
    chunks = _changed_chunks(x, y, batch_size, generator, max_batches, mean, std, seed, epoch, cfg or DEFAULT)
    if x.device.type == "cpu":
        chunks = _ahead(chunks)
    for xc, yc in chunks:
        for b in range(0, len(yc), batch_size):
            yield xc[b:b + batch_size], yc[b:b + batch_size]


def _changed_chunks(x, y, batch_size, generator, max_batches, mean, std, seed, epoch, cfg):
    """Whole chunks of a multiple of batch_size rows from iterate_batches (the same seeded permutation, sliced
    the same way), changed at once. The row numbers travel through it in place of the labels, to find each
    digit's centre line."""
    from core.engine.data import iterate_batches, num_batches

    lines = centre_lines_of(x) if cfg.restroke else None
    gen = generator_for(seed, epoch, x.device)
    chunk = max(1, cfg.chunk_rows // batch_size) * batch_size
    end = min(len(y), num_batches(len(y), batch_size, max_batches) * batch_size)  # rows the plain batches cover
    done = 0
    for xc, rc in iterate_batches(x, torch.arange(len(y), device=y.device), chunk, generator, -(-end // chunk), mean, std):
        xc, rc = xc[:end - done], rc[:end - done]  # a batch cap can end inside the last chunk
        done += len(rc)
        yield augment(xc, gen, mean, std, cfg, lines, rc), y[rc]


_END = object()


def _ahead(items: Iterator, depth: int = 2) -> Iterator:
    """The items of `items`, computed in a helper thread up to `depth` ahead of the reader. The thread uses the
    CPU policy's thread count: with one thread, torch opens no OpenMP team in it, which would slow the training
    thread (README, CPU effects). It stops when the reader stops reading."""
    from core.engine import cpu

    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        cpu.use_base_threads()
        try:
            for item in items:
                if not put(item):
                    return
            put(_END)
        except BaseException as e:  # handed to the reader, never lost
            put(e)

    threading.Thread(target=work, name="augment", daemon=True).start()
    try:
        while (item := q.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
