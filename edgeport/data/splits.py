"""Deterministic stratified train/val/test splits and calibration subsets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from edgeport.data.dataset import Dataset
from edgeport.errors import ConfigError, DataError


@dataclass(frozen=True)
class Splits:
    train: Dataset
    val: Dataset
    test: Dataset

    def describe(self) -> dict:
        return {"train": len(self.train.y), "val": len(self.val.y), "test": len(self.test.y)}


def split_dataset(data: Dataset, val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0) -> Splits:
    """Stratified split: every class keeps its share in each part, identical for a given seed."""
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ConfigError(
            f"val_fraction {val_fraction!r} and test_fraction {test_fraction!r} must be in (0, 1) "
            "and sum to less than 1"
        )
    indices = np.arange(len(data.y))
    try:
        rest, test = train_test_split(indices, test_size=test_fraction, random_state=seed, stratify=data.y)
        val_share = val_fraction / (1.0 - test_fraction)
        train, val = train_test_split(rest, test_size=val_share, random_state=seed, stratify=data.y[rest])
    except ValueError as exc:
        raise DataError(
            f"{data.source}: cannot make a stratified split ({exc}); every class needs at least a few samples"
        ) from exc
    return Splits(data.subset(np.sort(train)), data.subset(np.sort(val)), data.subset(np.sort(test)))


def calibration_subset(train: Dataset, samples: int, seed: int = 0) -> np.ndarray:
    """Indices of ``samples`` training images drawn without replacement, seeded."""
    if samples <= 0:
        raise ConfigError(f"calibration samples must be > 0, got {samples!r}")
    rng = np.random.default_rng(seed)
    count = min(samples, len(train.y))
    return np.sort(rng.choice(len(train.y), size=count, replace=False))
