"""Training and distillation settings, validated on construction."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from edgeport.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 5e-4
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs <= 0:
            raise ConfigError(f"epochs must be a positive integer, got {self.epochs!r}")
        if not isinstance(self.batch_size, int) or self.batch_size <= 0:
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr!r}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay!r}")

    def describe(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class KDConfig:
    """loss = alpha * T^2 * KL(softmax(z(t)/T) || softmax(z(s)/T)) + (1 - alpha) * CE(s, y), with z the
    per-sample logit standardisation (``loss = "standardized"``) or the identity (``"hinton"``); see
    ``distill.loss``."""

    temperature: float = 4.0
    alpha: float = 0.9
    loss: Literal["standardized", "hinton"] = "standardized"

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {self.alpha!r}")
        if self.loss not in ("standardized", "hinton"):
            raise ConfigError(f"KD loss must be 'standardized' or 'hinton', got {self.loss!r}")

    def describe(self) -> dict:
        return asdict(self)
