"""Training backends by framework: each trains one run through run control (core/engine/control.py).

    pytorch   this project's loop (core/engine/torch_loop.py)
    keras     the course's Keras model trained by Keras' own fit (core/engine/keras_trainer.py); Keras and its
              backend load only when such a run starts

Adding one is an entry here: `train` builds what it needs and trains, returning the PyTorch MLP that holds the
weights it ended with; `bn_options` says how that MLP's BatchNorm must be set to compute what the backend's did.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from core.engine.control import RunControl, StepProbe
from core.engine.data import Dataset
from core.engine.models import MLP, build_model


@dataclass(frozen=True)
class Backend:
    name: str  # TrainConfig.framework
    train: Callable[..., MLP | None]  # (control, config, data, device, probe, cuda_graph) -> the model
    bn_options: Callable[[object], dict]  # config -> build_model's BatchNorm options for the model holding its weights


def _train_pytorch(control: RunControl, config, data: Dataset, device: torch.device, probe: StepProbe | None = None,
                   cuda_graph: bool = True) -> MLP:
    from core.engine.optimizers import build_optimizer
    from core.engine.torch_loop import train_pytorch

    model = build_model(config).to(device)
    train_pytorch(control, config, data, model, build_optimizer(model.parameters(), config), device, probe, cuda_graph)
    return model


def _train_keras(control: RunControl, config, data: Dataset, device: torch.device, probe: StepProbe | None = None,
                 cuda_graph: bool = True) -> MLP:
    from core.engine.keras_trainer import train_keras

    return train_keras(control, config, data)


def _keras_bn_options(config) -> dict:
    from core.engine.keras_model import torch_bn_options

    return torch_bn_options(config)


BACKENDS: dict[str, Backend] = {
    "pytorch": Backend("pytorch", _train_pytorch, lambda config: {}),
    "keras": Backend("keras", _train_keras, _keras_bn_options),
}


def backend_for(config) -> Backend:
    return BACKENDS[config.framework]


def model_for(config) -> MLP:
    """The MLP that holds a run's weights (a Keras run's too), as its backend computed: what loading a run builds."""
    return build_model(config, **backend_for(config).bn_options(config))
