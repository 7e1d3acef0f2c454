"""Frozen run configuration, validated before anything starts."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

DATASETS = ("mnist", "fashion-mnist")
MAX_BATCH_SIZE = 60_000
PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16() -> bool:
    """True when the CPU has bfloat16 instructions (AVX512-BF16 or AMX), where bf16 matmuls are fast.
    Elsewhere PyTorch emulates bf16 on the CPU, which is slower than float32."""
    import torch

    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)  # private helpers: absent means "no"


def resolve_precision(precision: str) -> str:
    """'auto' -> 'bf16' on a CPU-only machine with native bf16, else 'fp32'. On a GPU this tiny network is
    bound by kernel launches, not arithmetic, so 'auto' stays in float32 there."""
    if precision != "auto":
        return precision
    import torch

    return "bf16" if not torch.cuda.is_available() and native_bf16() else "fp32"


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
    # "fp32": everything in float32. "bf16": mixed precision, the forward pass under torch.autocast(bfloat16)
    # (matmuls in bf16 with float32 accumulation; weights, optimizer state and evaluation stay float32).
    # "auto" is resolved when the config is made, so a saved config always says what ran.
    precision: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if self.precision in PRECISIONS:
            object.__setattr__(self, "precision", resolve_precision(self.precision))
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
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not isinstance(self.batch_norm, bool) or not isinstance(self.double_softmax, bool):
            raise ValueError("batch_norm/double_softmax: must be true or false")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        # Runs saved before the precision field existed trained in float32.
        return cls(**{"precision": "fp32", **{k: v for k, v in d.items() if k in known}})

    def label(self) -> str:
        bn = "BN" if self.batch_norm else "no-BN"
        extra = (" double-softmax" if self.double_softmax else "") + (" bf16" if self.precision == "bf16" else "")
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
