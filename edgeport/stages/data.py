"""The data stage: load, split and normalise a dataset; batches of real inputs for benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeport.config import DataSection
from edgeport.data import Dataset, Normalizer, Splits, load_dataset, split_dataset


@dataclass(frozen=True)
class PreparedData:
    """A dataset split into train/val/test and normalised with statistics of the training split."""

    data: Dataset
    splits: Splits
    norm: Normalizer

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.data.channels, self.data.num_classes, self.data.image_size[0]


def prepare_data(section: DataSection, seed: int) -> PreparedData:
    data = load_dataset(section.name, section.path, section.image_size, section.channels)
    splits = split_dataset(data, section.val_fraction, section.test_fraction, seed)
    norm = Normalizer.fit(splits.train.x)
    splits = Splits(*(part.with_x(norm(part.x)) for part in (splits.train, splits.val, splits.test)))
    return PreparedData(data, splits, norm)


def batch_of(x: np.ndarray, batch: int) -> np.ndarray:
    """The first ``batch`` real images, repeated when the split holds fewer."""
    reps = -(-batch // len(x))
    return np.concatenate([x] * reps)[:batch] if reps > 1 else x[:batch]
