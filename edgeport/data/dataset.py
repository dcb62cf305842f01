"""The in-memory dataset record shared by every stage."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from edgeport.errors import DataError


@dataclass(frozen=True, eq=False)
class Dataset:
    """Images as float32 NCHW in [0, 1] with integer labels."""

    name: str
    x: np.ndarray
    y: np.ndarray
    num_classes: int
    source: str
    class_names: tuple[str, ...] = field(default=())
    # When the file's labels were not 0..K-1: label_values[i] is the original label of class i.
    label_values: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.x.ndim != 4:
            raise DataError(f"{self.source}: images must be 4-D (N, C, H, W), got shape {self.x.shape}")
        if self.y.ndim != 1 or len(self.y) != len(self.x):
            raise DataError(f"{self.source}: {len(self.x)} images but labels of shape {self.y.shape}")
        if len(self.x) == 0:
            raise DataError(f"{self.source}: the dataset is empty")
        if not np.isfinite(self.x).all():
            bad = int(self.x.size - np.isfinite(self.x).sum())
            raise DataError(f"{self.source}: {bad} pixel value(s) are NaN or Inf; training would diverge")
        if self.y.min() < 0 or self.y.max() >= self.num_classes:
            raise DataError(
                f"{self.source}: labels must be class indices in 0..{self.num_classes - 1}, found "
                f"{int(self.y.min())}..{int(self.y.max())}"
            )
        present = np.unique(self.y)
        if len(present) < 2:
            raise DataError(
                f"{self.source}: every sample has label {int(present[0])}; a classifier needs at least 2 classes"
            )

    @property
    def channels(self) -> int:
        return int(self.x.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.x.shape[2]), int(self.x.shape[3])

    def subset(self, indices: np.ndarray) -> Dataset:
        return Dataset(
            self.name,
            self.x[indices],
            self.y[indices],
            self.num_classes,
            self.source,
            self.class_names,
            self.label_values,
        )

    def with_x(self, x: np.ndarray) -> Dataset:
        """The same samples and labels with transformed images (for example, normalised)."""
        return Dataset(self.name, x, self.y, self.num_classes, self.source, self.class_names, self.label_values)

    def fingerprint(self) -> str:
        """sha256 over the pixel values, labels and shape: identical data gives an identical id."""
        digest = hashlib.sha256()
        digest.update(repr((self.x.shape, str(self.x.dtype), self.num_classes)).encode())
        digest.update(np.ascontiguousarray(self.x).tobytes())
        digest.update(np.ascontiguousarray(self.y.astype(np.int64)).tobytes())
        return digest.hexdigest()

    def describe(self) -> dict:
        described = {
            "name": self.name,
            "source": self.source,
            "samples": len(self.x),
            "shape": list(self.x.shape[1:]),
            "num_classes": self.num_classes,
            "sha256": self.fingerprint(),
        }
        if self.label_values:
            described["label_values"] = list(self.label_values)
        return described


@dataclass(frozen=True)
class Normalizer:
    """Per-channel standardisation measured on the training split.

    It is applied outside the model, so a deployed artifact expects inputs
    normalised the same way; the manifest records mean and std.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, x: np.ndarray) -> Normalizer:
        mean = x.mean(axis=(0, 2, 3), dtype=np.float64)
        std = x.std(axis=(0, 2, 3), dtype=np.float64)
        std = np.where(std < 1e-6, 1.0, std)
        return cls(tuple(float(m) for m in mean), tuple(float(s) for s in std))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        mean = np.asarray(self.mean, dtype=np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(1, -1, 1, 1)
        return ((x - mean) / std).astype(np.float32)

    def describe(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}
