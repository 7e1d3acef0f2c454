"""The Draw page's preprocessing strip as images: every step white on black as the model sees it (and as MNIST and
the misclassified gallery show digits), tiles of one size, the steps in model pixels at one scale with a pixel
grid, and the centre of mass marked where the shift happens. Plain numpy + PIL: fast enough for every stroke."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from core.drawing.preprocess import CENTRE, SIZE, center_of_mass
from ui.figures import colorscale

SCALE = 5  # screen px per model pixel: a 28x28 tile is 140 px
TILE = SIZE * SCALE
GAP = 6  # white px right of each tile: st.image puts a row of images edge to edge
GRID = (70, 70, 70)  # lines between model pixels
FRAME = (32, 44, 64)  # around an image smaller than its tile: not part of the image
COM = (230, 40, 40)  # the digit's centre of mass
TARGET = (40, 200, 230)  # where MNIST puts it: pixel (14, 14)


def _rgb(grey: np.ndarray) -> np.ndarray:
    g = np.asarray(grey, np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


def canvas_tile(ink: np.ndarray) -> np.ndarray:
    """An image in canvas pixels (any size), fitted into a TILE x TILE square, white ink on black."""
    tile = np.empty((TILE, TILE, 3), np.uint8)
    tile[:] = FRAME
    h, w = ink.shape
    if h == 0 or w == 0:
        return tile
    f = TILE / max(h, w)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    img = np.asarray(Image.fromarray(np.asarray(ink, np.uint8)).resize(size, Image.Resampling.BOX))
    top, left = (TILE - img.shape[0]) // 2, (TILE - img.shape[1]) // 2
    tile[top:top + img.shape[0], left:left + img.shape[1]] = _rgb(img)
    return tile


def model_tile(img: np.ndarray, marks: tuple[tuple[float, float, str], ...] = ()) -> np.ndarray:
    """An image in model pixels (at most 28x28) at SCALE px per pixel with a grid between pixels, centred in a
    28x28 tile; `marks`: (row, col, "com" | "target") in the image's pixel coordinates."""
    tile = np.empty((TILE, TILE, 3), np.uint8)
    tile[:] = FRAME
    h, w = img.shape
    if h == 0 or w == 0:
        return tile
    big = np.kron(_rgb(img), np.ones((SCALE, SCALE, 1), np.uint8))
    big[::SCALE, :] = GRID  # one grid line above each pixel row and left of each column
    big[:, ::SCALE] = GRID
    top, left = (TILE - big.shape[0]) // 2, (TILE - big.shape[1]) // 2
    tile[top:top + big.shape[0], left:left + big.shape[1]] = big
    for r, c, kind in marks:
        _mark(tile, top + (r + 0.5) * SCALE, left + (c + 0.5) * SCALE, kind)
    return tile


def _mark(tile: np.ndarray, y: float, x: float, kind: str) -> None:
    yy, xx = np.indices(tile.shape[:2])
    if kind == "com":  # a cross, 2 px thick, 9 px arms
        arm = (np.abs(yy - y) <= 1) & (np.abs(xx - x) <= 9) | (np.abs(xx - x) <= 1) & (np.abs(yy - y) <= 9)
        tile[arm] = COM
    else:  # a ring around the target pixel
        d = np.hypot(yy - y, xx - x)
        tile[(d >= 6) & (d <= 8)] = TARGET


def _gap(tile: np.ndarray, px: int = GAP) -> np.ndarray:
    """The tile with GAP white columns on its right."""
    return np.concatenate([tile, np.full((tile.shape[0], px, 3), 255, np.uint8)], axis=1)


def preprocessing_strip(pre, naive: bool) -> tuple[list[np.ndarray], list[str]]:
    """Tiles (with a gap on the right) and captions of each preprocessing step, the model's input marked."""
    r0, c0 = center_of_mass(pre.boxed) if pre.boxed.any() else (CENTRE, CENTRE)
    r1, c1 = center_of_mass(pre.centered) if pre.centered.any() else (CENTRE, CENTRE)
    target = (CENTRE, CENTRE, "target")
    h, w = pre.cropped.shape
    sh, sw = pre.scaled.shape
    shift = (round(CENTRE - r0), round(CENTRE - c0))
    tiles = [canvas_tile(pre.ink), canvas_tile(pre.cropped), model_tile(pre.scaled),
             model_tile(pre.boxed, ((r0, c0, "com"), target)), model_tile(pre.centered, ((r1, c1, "com"), target)),
             model_tile(pre.naive)]
    captions = [f"1 ink ({pre.ink.shape[1]}x{pre.ink.shape[0]} canvas px)", f"2 cropped to the ink ({w}x{h})",
                f"3 longer side 20 px ({sw}x{sh})", f"4 pasted into 28x28: centre of mass (+) at row {r0:.1f}, col {c0:.1f}",
                f"5 centred: moved {shift[0]:+d} rows, {shift[1]:+d} cols to (14, 14) (o)",
                "naive: whole canvas squashed to 28x28"]
    used = 5 if naive else 4
    captions[used] += " · MODEL INPUT"
    return [_gap(t) for t in tiles], captions


def saliency_figure(input28: np.ndarray, saliency: np.ndarray, height: int = 260) -> go.Figure:
    """|∂ top logit / ∂ pixel| as a share of the largest, with its colour scale; the input's ink outlined."""
    heat = saliency / max(float(saliency.max()), 1e-12)
    fig = go.Figure(go.Heatmap(z=heat, zmin=0, zmax=1, colorscale=colorscale("Inferno"), xgap=1, ygap=1,
                               colorbar=dict(title=dict(text="share of<br>the largest", side="right"), tickformat=".0%",
                                             thickness=12, len=0.9),
                               hovertemplate="row %{y}, col %{x}: %{z:.0%}<extra></extra>"))
    fig.add_contour(z=np.asarray(input28, float), contours=dict(start=128, end=128, coloring="none"),
                    line=dict(color="rgba(120,200,255,0.9)", width=1.5), showscale=False, hoverinfo="skip",
                    name="ink outline")
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False, showgrid=False, zeroline=False)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain")
    fig.update_layout(title=dict(text="Saliency: |∂ top logit / ∂ pixel|", font=dict(size=13)), height=height,
                      margin=dict(l=0, r=0, t=30, b=0), plot_bgcolor="#202020")
    return fig
