"""Model inputs from an .npz file: one array per input name, or ``x`` for a single-input model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeport.errors import DataError


def load_model_inputs(path: str | Path, input_names: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Return ``{input name: array}`` and the optional integer labels ``y``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from exc
    if all(name in arrays for name in input_names):
        inputs = {name: arrays[name] for name in input_names}
    elif len(input_names) == 1 and "x" in arrays:
        inputs = {input_names[0]: arrays["x"]}
    else:
        raise DataError(f"{path}: expected arrays named {', '.join(repr(n) for n in input_names)}"
                        f"{' (or x)' if len(input_names) == 1 else ''}, found {', '.join(sorted(arrays)) or 'none'}")
    counts = {len(a) for a in inputs.values()}
    if len(counts) != 1:
        raise DataError(f"{path}: input arrays have different sample counts {sorted(counts)}")
    labels = arrays.get("y")
    if labels is not None:
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{path}: 'y' must be a 1-D integer array, got shape {labels.shape} dtype {labels.dtype}")
        if len(labels) != counts.pop():
            raise DataError(f"{path}: 'y' has {len(labels)} labels for {len(next(iter(inputs.values())))} samples")
        labels = labels.astype(np.int64)
    return inputs, labels
