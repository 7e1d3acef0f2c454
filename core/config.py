"""Frozen run configuration, validated before anything starts."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

DATASETS = ("mnist", "fashion-mnist")
MAX_BATCH_SIZE = 60_000


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "mnist"
    batch_norm: bool = False
    hidden: tuple[int, ...] = (512, 256, 128, 32)
    lr: float = 1e-3
    batch_size: int = 64
    epochs: int = 10
    seed: int = 0
    double_softmax: bool = False  # the course's defect: softmax in the model, then CrossEntropyLoss
    max_batches: int | None = None  # cap on training batches per epoch, for quick runs and tests

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first invalid field."""
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset: unknown dataset {self.dataset!r}; choose one of {', '.join(DATASETS)}")
        if not _is_int(self.batch_size) or not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size: must be a whole number from 1 to {MAX_BATCH_SIZE}, got {self.batch_size!r}")
        if not _is_int(self.epochs) or self.epochs < 1:
            raise ValueError(f"epochs: must be a whole number >= 1, got {self.epochs!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"lr: learning rate must be a finite number > 0, got {self.lr!r}")
        if not self.hidden or not all(_is_int(h) and h > 0 for h in self.hidden):
            raise ValueError(f"hidden: hidden sizes must be one or more positive whole numbers, got {self.hidden!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed: must be a whole number >= 0, got {self.seed!r}")
        if self.max_batches is not None and (not _is_int(self.max_batches) or self.max_batches < 1):
            raise ValueError(f"max_batches: must be a whole number >= 1 or None, got {self.max_batches!r}")
        if not isinstance(self.batch_norm, bool) or not isinstance(self.double_softmax, bool):
            raise ValueError("batch_norm/double_softmax: must be true or false")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def label(self) -> str:
        bn = "BN" if self.batch_norm else "no-BN"
        extra = " double-softmax" if self.double_softmax else ""
        return f"{self.dataset} {bn}{extra} lr={self.lr:g} bs={self.batch_size} ep={self.epochs} seed={self.seed}"


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def parse_hidden(text: str) -> tuple[int, ...]:
    """'512, 256,128' -> (512, 256, 128); ValueError naming `hidden` on bad input."""
    try:
        sizes = tuple(int(p) for p in text.replace(",", " ").split())
    except ValueError:
        raise ValueError(f"hidden: expected whole numbers separated by commas, got {text!r}") from None
    if not sizes or any(s <= 0 for s in sizes):
        raise ValueError(f"hidden: hidden sizes must be one or more positive whole numbers, got {text!r}")
    return sizes
