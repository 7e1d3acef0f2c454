"""Classify one 28x28 input with a trained model, with logits and a saliency map."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.models import MLP

LOW_CONFIDENCE = 0.6  # below this top-1 probability the page warns that the drawing is unlike a digit


@dataclass(frozen=True)
class Prediction:
    probs: np.ndarray  # (10,)
    logits: np.ndarray  # (10,) what the last layer outputs (probabilities for a double-softmax model)
    top: int
    confidence: float
    saliency: np.ndarray  # (28, 28) |d top logit / d input|

    @property
    def low_confidence(self) -> bool:
        return self.confidence < LOW_CONFIDENCE


def predict_digit(model: MLP, x: np.ndarray) -> Prediction:
    """x: (784,) normalised input. Eval mode: a BN model uses its running statistics (one image has no batch)."""
    model.eval()
    xt = torch.tensor(np.asarray(x, dtype=np.float32).reshape(1, 784), requires_grad=True,
                      device=next(model.parameters()).device)
    out = model(xt)[0]  # (10,)
    probs = out if model.double_softmax else torch.softmax(out, 0)
    top = int(probs.argmax())
    (grad,) = torch.autograd.grad(out[top], xt)  # not .backward(): a cached model is shared by sessions
    return Prediction(probs.detach().cpu().numpy(), out.detach().cpu().numpy(), top, probs[top].item(),
                      grad.abs().reshape(28, 28).cpu().numpy())
