"""Lab kinds: the runs a lab starts together share a group id "<prefix>-<suffix>", and the prefix says what the set
is. One enumeration, read by the labs that start the sets and by the pages that list them."""
from __future__ import annotations

import uuid
from enum import Enum


class LabKind(Enum):
    TWINS = ("twins", "BN twins")  # the BatchNorm lab's BN / no-BN twins
    LR_SWEEP = ("lr-sweep", "LR sweep")  # the BatchNorm lab's learning-rate sweep
    STUDY = ("study", "tuning trial")  # a tuning study's trials (suffix: the study's name)
    FRAMEWORKS = ("frameworks", "framework twins")  # the Frameworks page's PyTorch / Keras pair
    PAPER = ("paper", "BN paper mode")  # the BatchNorm lab's paper-mode pair (core/lessons/bn_paper.py)

    def __init__(self, prefix: str, label: str) -> None:
        self.prefix, self.label = prefix, label

    def new_id(self, suffix: str | None = None) -> str:
        return f"{self.prefix}-{suffix if suffix is not None else uuid.uuid4().hex[:6]}"

    def owns(self, group: str | None) -> bool:
        return bool(group) and group.startswith(self.prefix + "-")

    @classmethod
    def of(cls, group: str | None) -> "LabKind | None":
        return next((k for k in cls if k.owns(group)), None)
