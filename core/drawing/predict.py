"""Classify one 28x28 input with a trained model, with logits and a saliency map; say how sure it is, and
show that its confidence cannot tell a non-digit from a digit."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from core.drawing.preprocess import Preprocessed, preprocess
from core.engine.models import MLP

UNSURE = 0.6  # below this top-1 probability the page says the model is unsure
TORN = 0.8  # ...and "unsure between X and Y" when the top two together hold at least this much


@dataclass(frozen=True)
class Prediction:
    probs: np.ndarray  # (10,)
    logits: np.ndarray  # (10,) what the last layer outputs (probabilities for a double-softmax model)
    top: int
    confidence: float

    @property
    def low_confidence(self) -> bool:
        return self.confidence < UNSURE

    @property
    def ranked(self) -> list[int]:
        return [int(d) for d in np.argsort(-self.probs, kind="stable")]

    @property
    def top_two_share(self) -> float:
        a, b = self.ranked[:2]
        return float(self.probs[a] + self.probs[b])

    def uncertainty(self) -> str | None:
        """Plain words when the model is unsure, else None. Low top-1 confidence on a real digit mostly means
        the model is torn between two digits, not that the drawing is unlike a digit."""
        if not self.low_confidence:
            return None
        a, b, c = self.ranked[:3]
        p = self.probs
        if self.top_two_share >= TORN:
            return f"Unsure between {a} and {b} ({p[a]:.0%} vs {p[b]:.0%})."
        return (f"Unsure: no digit gets more than {p[a]:.0%}; the likeliest are {a} ({p[a]:.0%}), "
                f"{b} ({p[b]:.0%}) and {c} ({p[c]:.0%}).")


def _input(model: MLP, x: np.ndarray, requires_grad: bool = False) -> torch.Tensor:
    model.eval()  # a BN model uses its running statistics: one image has no batch
    return torch.tensor(np.asarray(x, dtype=np.float32).reshape(1, 784), requires_grad=requires_grad,
                        device=next(model.parameters()).device)


@torch.inference_mode()
def predict_digit(model: MLP, x: np.ndarray) -> Prediction:
    """x: (784,) normalised input. Forward only, so the page can show it before the saliency map."""
    out = model(_input(model, x))[0]  # (10,)
    probs = out if model.double_softmax else torch.softmax(out, 0)
    top = int(probs.argmax())
    return Prediction(probs.cpu().numpy(), out.cpu().numpy(), top, probs[top].item())


def saliency_map(model: MLP, x: np.ndarray) -> np.ndarray:
    """(28, 28) |d top logit / d input|: which pixels would most change the model's answer."""
    xt = _input(model, x, requires_grad=True)
    out = model(xt)[0]
    (grad,) = torch.autograd.grad(out[out.argmax()], xt)  # not .backward(): a cached model is shared by sessions
    return grad.abs().reshape(28, 28).cpu().numpy()


# --- what confidence cannot tell -------------------------------------------------------------------
def non_digit_canvases(size: int = 280) -> dict[str, np.ndarray]:
    """Shapes that are not digits, drawn as the canvas returns a drawing (H x W x 4, ink in alpha)."""
    INK = (0, 0, 0, 255)
    shapes = {
        "a horizontal bar": lambda d: d.line([(60, 140), (220, 140)], fill=(0, 0, 0, 255), width=18),
        "a plus sign": lambda d: (d.line([(60, 140), (220, 140)], fill=(0, 0, 0, 255), width=18),
                                  d.line([(140, 60), (140, 220)], fill=(0, 0, 0, 255), width=18)),
        "an X": lambda d: (d.line([(70, 70), (210, 210)], fill=INK, width=18),
                           d.line([(70, 210), (210, 70)], fill=INK, width=18)),
        "an asterisk": lambda d: [d.line([(140 + 80 * math.cos(a), 140 + 80 * math.sin(a)),
                                          (140 - 80 * math.cos(a), 140 - 80 * math.sin(a))], fill=INK, width=18)
                                  for a in (math.pi / 2, math.pi / 6, -math.pi / 6)],
        "a triangle": lambda d: d.line([(140, 60), (220, 210), (60, 210), (140, 60)], fill=INK, width=18,
                                       joint="curve"),
        "a filled square": lambda d: d.rectangle([80, 80, 200, 200], fill=(0, 0, 0, 255)),
    }
    out = {}
    for name, draw in shapes.items():
        img = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
        draw(ImageDraw.Draw(img))
        out[name] = np.asarray(img.resize((size, size)))
    return out


@dataclass(frozen=True)
class ShapeReading:
    name: str
    pre: Preprocessed
    prediction: Prediction  # what the model says anyway, asked without the ink checks


def confident_shapes(readings: list[ShapeReading]) -> str:
    """What the page would do with each shape, in words: shown as a confident answer (it passes the ink checks and
    gets at least UNSURE on one digit), shown as unsure, or stopped by the ink checks."""
    stopped = [r.name for r in readings if r.pre.not_a_digit]
    sure = [r.name for r in readings if not r.pre.not_a_digit and not r.prediction.low_confidence]
    unsure = [r.name for r in readings if not r.pre.not_a_digit and r.prediction.low_confidence]
    parts = [f"**{len(sure)} of these {len(readings)} shapes would be shown as a confident answer** (at least "
             f"{UNSURE:.0%} on one digit, where the page stops saying it is unsure)"
             + (f": {', '.join(sure)}" if sure else "")]
    if unsure:
        parts.append(f"{len(unsure)} would be shown with the page's 'unsure' warning: {', '.join(unsure)}")
    if stopped:
        parts.append(f"{len(stopped)} the ink checks stop: {', '.join(stopped)}")
    return "; ".join(parts) + "."


def classify_non_digits(model: MLP, naive: bool = False) -> list[ShapeReading]:
    """The model's answer for each non-digit shape (asked anyway), and whether the page's ink checks catch it."""
    out = []
    for name, rgba in non_digit_canvases().items():
        pre = preprocess(rgba)
        out.append(ShapeReading(name, pre, predict_digit(model, pre.model_input(naive=naive))))
    return out
