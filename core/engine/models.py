"""The course MLP: Linear -> [BatchNorm1d] -> ReLU blocks (or another hidden activation), logits out."""
from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import nn

from core.engine import course
from core.engine.data import dataset_spec


class ModelSettings(Protocol):
    """What the model reads of a run's settings (a TrainConfig)."""
    dataset: str
    hidden: tuple[int, ...]
    batch_norm: bool
    double_softmax: bool
    seed: int
    activation: str  # "relu", "sigmoid", "tanh"
    weight_init: str  # "default", "gaussian"
    init_std: float


ACTIVATION_MODULES = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}  # TrainConfig.activation -> module


class MLP(nn.Module):
    def __init__(self, hidden: tuple[int, ...] = course.HIDDEN, batch_norm: bool = False,
                 double_softmax: bool = False, outputs: int = 10, inputs: int = 784, bn_eps: float = 1e-5,
                 bn_momentum: float = 0.1, activation: str = "relu") -> None:
        super().__init__()
        self.batch_norm, self.double_softmax = batch_norm, double_softmax
        blocks, d = [], inputs
        for h in hidden:
            # BatchNorm1d draws no random numbers at init, so a BN and a no-BN model built
            # from the same seed get identical Linear weights.
            layers = [nn.Linear(d, h)] + ([nn.BatchNorm1d(h, bn_eps, bn_momentum)] if batch_norm else []) + \
                [ACTIVATION_MODULES[activation]()]  # nn.ReLU() unless the run chose another
            blocks.append(nn.Sequential(*layers))
            d = h
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Linear(d, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)  # (B, inputs)
        for block in self.blocks:
            x = block(x)
        z = self.out(x)  # (B, outputs) logits
        # The course's defect, kept only as an explicit option: CrossEntropyLoss applies
        # log-softmax again to these probabilities.
        return torch.softmax(z, dim=1) if self.double_softmax else z

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """What the model believes: softmax of the logits (the double-softmax output already is one)."""
        out = self(x)
        return out if self.double_softmax else torch.softmax(out, dim=1)


def init_weights(model: MLP, seed: int, init: str = "default", std: float = 0.01) -> None:
    """PyTorch's default Linear init, Xavier-uniform on the output layer (as in the course), from
    a private generator: thread-safe, and independent of BN since BN layers draw nothing.
    init="gaussian": every Linear weight from N(0, std²) and biases 0 (Ioffe & Szegedy's MNIST network)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if init == "gaussian":
            for lin in [b[0] for b in model.blocks] + [model.out]:
                nn.init.normal_(lin.weight, 0.0, std, generator=g)
                nn.init.zeros_(lin.bias)
            return
        for lin in [b[0] for b in model.blocks] + [model.out]:
            bound = 1 / math.sqrt(lin.in_features)
            if lin is model.out:
                nn.init.xavier_uniform_(lin.weight, generator=g)
            else:
                nn.init.kaiming_uniform_(lin.weight, a=math.sqrt(5), generator=g)  # nn.Linear's default
            nn.init.uniform_(lin.bias, -bound, bound, generator=g)


def build_model(config: ModelSettings, bn_eps: float = 1e-5, bn_momentum: float = 0.1) -> MLP:
    """Build the MLP for a run's settings; its initial weights depend only on config.seed and the sizes. BatchNorm's
    options are the caller's: a Keras run's weights live in this MLP with BN set as Keras ran it
    (core/engine/backends.py: model_for)."""
    spec = dataset_spec(config.dataset)
    model = MLP(config.hidden, config.batch_norm, config.double_softmax, spec.num_classes, spec.input_size,
                bn_eps, bn_momentum, config.activation)
    init_weights(model, config.seed, config.weight_init, config.init_std)
    return model
