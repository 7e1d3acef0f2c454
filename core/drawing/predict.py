"""Classify one 28x28 input with a trained model, with logits and a saliency map."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.engine.models import MLP

LOW_CONFIDENCE = 0.6  # below this top-1 probability the page warns that the drawing is unlike a digit


@dataclass(frozen=True)
class Prediction:
    probs: np.ndarray  # (10,)
    logits: np.ndarray  # (10,) what the last layer outputs (probabilities for a double-softmax model)
    top: int
    confidence: float

    @property
    def low_confidence(self) -> bool:
        return self.confidence < LOW_CONFIDENCE


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
