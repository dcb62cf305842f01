"""Model inputs from an .npz file: one array per input name, or ``x`` for a single-input model.

Either way every array's first axis indexes samples: batch-first arrays (the model input's rank, samples
on its batch axis) or per-sample feeds (one axis more, each slice one complete model input); which one
follows from the model's ranks (data/feeds.py).

The arrays are checked here, where the file is known, so every complaint names the file: no
samples, unequal sample counts, NaN or Inf, and (for calibration data) a set in which nothing varies, a
float input constant and every other input too, which calibrates every range to nothing and gives an int8
model that looks fine and is not (measured: an all-zero calibration set took a digits CNN from 87.9% to
14.4% with exit 0). A constant input beside one that varies is a fixed input of the model (a recurrent
model's zero initial state, a fixed sample rate, an all-ones mask) and is accepted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeport.data.npz_reader import NpzReader
from edgeport.errors import DataError

ROLES = ("calibration", "validation", "benchmark")


def _check_arrays(path: Path, inputs: dict[str, np.ndarray], role: str) -> int:
    scalar = next((name for name, a in inputs.items() if not a.ndim), None)
    if scalar is not None:
        raise DataError(
            f"{path}: {role} input {scalar!r} is a scalar; arrays hold samples on the first axis "
            "(for a rank-0 model input: a 1-D array, one value per sample)"
        )
    counts = {name: len(a) for name, a in inputs.items()}
    if len(set(counts.values())) != 1:
        shown = ", ".join(f"{name} {count}" for name, count in counts.items())
        raise DataError(f"{path}: {role} input arrays have different sample counts ({shown})")
    count = next(iter(counts.values()))
    if count == 0:
        raise DataError(f"{path}: the {role} set has no samples")
    for name, array in inputs.items():
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
            raise DataError(f"{path}: {role} input {name!r} must be numeric, got dtype {array.dtype}")
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            bad = int(np.size(array) - np.isfinite(array).sum())
            raise DataError(f"{path}: {role} input {name!r} contains {bad} NaN or Inf value(s)")
    if role == "calibration":
        _refuse_nothing_varies(path, inputs)
    return count


def _constant_value(array: np.ndarray) -> str | None:
    """How a constant array reads ("all zero", "every value 0.5"), or None when it varies."""
    if not array.size or array.min() != array.max():  # min/max, not np.ptp: a bool mask has no subtraction
        return None
    value = float(array.flat[0])
    return "all zero" if value == 0 else f"every value {value:g}"


def _refuse_nothing_varies(path: Path, inputs: dict[str, np.ndarray]) -> None:
    """Refuse calibration in which no input varies while a float input is constant: every activation
    is then the same for every sample, its range calibrated on nothing (zero for a zero input).

    One constant input beside one that varies is a model's legitimate fixed input (the zero initial
    state every stream starts from, a fixed sample rate, an all-ones attention mask) and is accepted.
    Integer inputs (token ids, masks) alone may be constant, as before."""
    shown = {name: _constant_value(array) for name, array in inputs.items()}
    if any(value is None for value in shown.values()):
        return  # something varies: the constant inputs are fixed inputs of the model, not missing data
    floats = [name for name, array in inputs.items() if np.issubdtype(array.dtype, np.floating)]
    if not floats:
        return
    if len(inputs) == 1:
        name = floats[0]
        raise DataError(
            f"{path}: calibration input {name!r} is constant ({shown[name]}); "
            "calibrate on real samples of what the model will see"
        )
    listed = ", ".join(f"{name!r} {value}" for name, value in shown.items())
    raise DataError(
        f"{path}: every calibration input is constant ({listed}); no input varies, so every range would be "
        "calibrated on one value: calibrate on real samples of what the model will see"
    )


def load_model_inputs(
    path: str | Path, input_names: list[str], role: str = "calibration"
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Return ``{input name: array}`` and the optional integer labels ``y`` (checked: >= 0)."""
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {ROLES}")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if not input_names:
        raise DataError(f"{path}: the model has no inputs to feed")
    with NpzReader(path) as archive:
        names = archive.names
        if all(name in names for name in input_names):
            wanted = {name: name for name in input_names}
        elif len(input_names) == 1 and "x" in names:
            wanted = {input_names[0]: "x"}
        else:
            raise DataError(
                f"{path}: expected arrays named {', '.join(repr(n) for n in input_names)}"
                f"{' (or x)' if len(input_names) == 1 else ''}, found {', '.join(sorted(names)) or 'none'}"
            )
        # Only the arrays the model takes (and its labels) are read: anything else in the file costs nothing.
        arrays = archive.read(list(dict.fromkeys([*wanted.values(), *(["y"] if "y" in names else [])])))
    inputs = {name: arrays[member] for name, member in wanted.items()}
    count = _check_arrays(path, inputs, role)
    labels = arrays.get("y")
    if labels is not None:
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{path}: 'y' must be a 1-D integer array, got shape {labels.shape} dtype {labels.dtype}")
        if len(labels) != count:
            raise DataError(f"{path}: 'y' has {len(labels)} labels for {count} samples")
        _check_label_range(path, labels)
        labels = labels.astype(np.int64)
    return inputs, labels


def _check_label_range(path: Path, labels: np.ndarray) -> None:
    """Class indices >= 0 that survive the cast to int64, checked in the labels' own dtype: a uint64
    label of 2^63 passes ``>= 0`` and then wraps negative."""
    if labels.size and labels.min() < 0:
        raise DataError(f"{path}: labels 'y' must be class indices >= 0, found {int(labels.min())}")
    largest = np.iinfo(np.int64).max
    if labels.size and labels.dtype.kind == "u" and labels.max() > largest:
        raise DataError(f"{path}: labels 'y' must be class indices <= {largest}, found {int(labels.max())}")


def check_labels_fit(path: str | Path, labels: np.ndarray, output_shape: tuple) -> None:
    """Labels are class indices into the model's (N, classes) output: refuse any that cannot be."""
    if len(output_shape) != 2:
        raise DataError(
            f"{path}: has labels 'y', but the model's first output has shape {tuple(output_shape)}, "
            "not (samples, classes); remove y or give a classifier"
        )
    classes = int(output_shape[1])
    if labels.max() >= classes:
        raise DataError(
            f"{path}: labels 'y' must be in 0..{classes - 1} (the model has {classes} outputs), "
            f"found {int(labels.max())}"
        )
