"""Dataset loaders: sklearn digits (embedded default), CIFAR-10 python folder, ImageFolder, .npz.

Nothing here downloads: every source is either shipped with scikit-learn or a
local path the user gives. Every failure names the file it is about.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from edgeport.core.registry import Registry
from edgeport.data.dataset import Dataset
from edgeport.data.images import resize_batch, to_unit_float
from edgeport.data.npz_reader import NpzReader
from edgeport.errors import ConfigError, DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}

DATASETS: Registry = Registry("dataset")
register_dataset = DATASETS.register


def list_datasets() -> list[str]:
    return sorted(DATASETS)


def load_dataset(
    name: str, path: str | Path | None = None, image_size: int | None = None, channels: int | None = None
) -> Dataset:
    """Load a dataset by registry name; ``path`` is required for all but ``digits``."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; expected one of {', '.join(list_datasets())}")
    if image_size is not None and image_size < 4:
        raise ConfigError(f"image_size must be >= 4, got {image_size!r}")
    if channels is not None and channels not in (1, 3):
        raise ConfigError(f"channels must be 1 or 3, got {channels!r}")
    return DATASETS[name](path=path, image_size=image_size, channels=channels)


def _require_path(name: str, path: str | Path | None) -> Path:
    if path is None:
        raise ConfigError(f"dataset {name!r} needs a data path (--data-path)")
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    return path


def _match_channels(x: np.ndarray, channels: int | None, source: str) -> np.ndarray:
    if channels is None or x.shape[1] == channels:
        return x
    if x.shape[1] == 3 and channels == 1:
        weights = np.array([0.299, 0.587, 0.114], dtype=np.float32).reshape(1, 3, 1, 1)
        return (x * weights).sum(axis=1, keepdims=True).astype(np.float32)
    if x.shape[1] == 1 and channels == 3:
        return np.repeat(x, 3, axis=1)
    raise DataError(f"{source}: cannot convert {x.shape[1]} channels to {channels}")


@register_dataset("digits")
def load_digits(path=None, image_size=None, channels=None) -> Dataset:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes), resized."""
    from sklearn.datasets import load_digits as sk_load_digits

    if path is not None:
        raise ConfigError("dataset 'digits' is embedded and takes no data path")
    bunch = sk_load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    x = resize_batch(x, image_size or 32)
    x = _match_channels(x, channels, "sklearn digits")
    names = tuple(str(n) for n in bunch.target_names)
    return Dataset("digits", x, bunch.target.astype(np.int64), 10, "sklearn digits", names)


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """CIFAR-10's python format is a pickle; allow only what a CIFAR batch contains."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as handle:
            batch = _ArrayOnlyUnpickler(handle, encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise DataError(f"{path}: not a CIFAR-10 python batch ({exc})") from exc
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{path}: not a CIFAR-10 python batch (expected keys 'data' and 'labels')")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"])
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: 'data' must have shape (N, 3072), got {data.shape}")
    if labels.shape != (data.shape[0],):
        raise DataError(f"{path}: {data.shape[0]} images but {labels.size} labels")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


@register_dataset("cifar10")
def load_cifar10(path=None, image_size=None, channels=None) -> Dataset:
    """A local CIFAR-10 python-format folder (data_batch_1..5, test_batch); never downloaded."""
    root = _require_path("cifar10", path)
    if root.is_dir() and (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    if not root.is_dir():
        raise DataError(f"{root}: expected a CIFAR-10 python folder with data_batch_* files")
    files = sorted(root.glob("data_batch_*")) + sorted(root.glob("test_batch"))
    if not files:
        raise DataError(f"{root}: no data_batch_* or test_batch files (CIFAR-10 python format)")
    parts = [_read_cifar_batch(f) for f in files]
    x = to_unit_float(np.concatenate([p[0] for p in parts]))
    y = np.concatenate([p[1] for p in parts])
    if y.min() < 0 or y.max() > 9:
        raise DataError(f"{root}: CIFAR-10 labels must be in 0..9, found {y.min()}..{y.max()}")
    x = _match_channels(resize_batch(x, image_size or 32), channels, str(root))
    names = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    return Dataset("cifar10", x, y, 10, str(root), names)


@register_dataset("imagefolder")
def load_imagefolder(path=None, image_size=None, channels=None) -> Dataset:
    """An ImageFolder tree: one sub-folder per class, images inside; classes sorted by name."""
    from PIL import Image, UnidentifiedImageError

    root = _require_path("imagefolder", path)
    if not root.is_dir():
        raise DataError(f"{root}: expected a folder with one sub-folder per class")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise DataError(f"{root}: found {len(classes)} class folders, need at least 2")
    size = image_size or 32
    mode = "L" if channels == 1 else "RGB"
    images, labels = [], []
    for label, cls in enumerate(classes):
        for file in sorted((root / cls).iterdir()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(file) as opened:
                    img = opened.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
                    arr = np.asarray(img, dtype=np.uint8)
            except (OSError, UnidentifiedImageError) as exc:
                raise DataError(f"{file}: cannot read image ({exc})") from exc
            images.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
            labels.append(label)
    empty = [c for c in classes if c not in {classes[i] for i in set(labels)}]
    if empty:
        raise DataError(f"{root}: class folder(s) without images: {', '.join(empty)}")
    x = to_unit_float(np.stack(images))
    return Dataset("imagefolder", x, np.asarray(labels, dtype=np.int64), len(classes), str(root), tuple(classes))


@register_dataset("npz")
def load_npz(path=None, image_size=None, channels=None) -> Dataset:
    """An .npz with ``x`` (N, C, H, W) or (N, H, W) images and ``y`` integer labels."""
    file = _require_path("npz", path)
    with NpzReader(file) as archive:  # bounded: only x and y, each header checked before it is read
        if "x" not in archive.names or "y" not in archive.names:
            raise DataError(f"{file}: expected arrays 'x' and 'y', found {sorted(archive.names)}")
        arrays = archive.read(["x", "y"])
    x, y = arrays["x"], arrays["y"]
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise DataError(f"{file}: 'x' must have shape (N, C, H, W) or (N, H, W), got {x.shape}")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise DataError(f"{file}: 'x' must be numeric, got dtype {x.dtype}")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{file}: 'y' must be a 1-D integer array, got shape {y.shape} dtype {y.dtype}")
    if len(y) != len(x):
        raise DataError(f"{file}: 'x' has {len(x)} samples but 'y' has {len(y)} labels")
    if len(y) and y.min() < 0:
        raise DataError(f"{file}: labels must be >= 0, found {y.min()}")
    if len(y) == 0:
        raise DataError(f"{file}: the dataset is empty")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        bad = int(x.size - np.isfinite(x).sum())
        raise DataError(f"{file}: {bad} pixel value(s) in 'x' are NaN or Inf; training would diverge")
    values = np.unique(y)
    if len(values) < 2:
        raise DataError(f"{file}: every sample has label {int(values[0])}; a classifier needs at least 2 classes")
    label_values: tuple[int, ...] = ()
    if values[-1] != len(values) - 1:
        # Labels such as {0, 1e6, 2e6} would make a model with 2,000,001 outputs: map the K labels
        # found to class indices 0..K-1 (in sorted order) and record the mapping.
        label_values = tuple(int(v) for v in values)
        y = np.searchsorted(values, y)
    x = to_unit_float(x)
    if image_size is not None:
        x = resize_batch(x, image_size)
    x = _match_channels(x, channels, str(file))
    return Dataset(
        "npz", x, y.astype(np.int64), len(values), str(file), tuple(str(v) for v in label_values), label_values
    )
