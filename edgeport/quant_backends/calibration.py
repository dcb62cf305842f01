"""Calibration inputs for ONNX Runtime: a CalibrationDataReader over in-memory arrays."""

from __future__ import annotations

from typing import Callable

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from edgeport.errors import QuantizationError


def check_inputs(model_inputs: dict[str, tuple], calibration: dict[str, np.ndarray], where: str) -> int:
    """Check names and ranks of calibration arrays against the model; return the sample count."""
    missing = sorted(set(model_inputs) - set(calibration))
    extra = sorted(set(calibration) - set(model_inputs))
    if missing or extra:
        raise QuantizationError(f"{where}: calibration inputs {sorted(calibration)} do not match the model's "
                                f"inputs {sorted(model_inputs)}")
    counts = {len(a) for a in calibration.values()}
    if len(counts) != 1 or 0 in counts:
        raise QuantizationError(f"{where}: every calibration array needs the same, non-zero number of samples")
    for name, shape in model_inputs.items():
        if len(shape) != calibration[name].ndim:
            raise QuantizationError(f"{where}: input {name!r} has rank {len(shape)} but the calibration "
                                    f"array has shape {calibration[name].shape}")
    return counts.pop()


class ArrayCalibrationReader(CalibrationDataReader):
    """Feeds ``calibration`` to ORT's calibrator in batches, reporting each batch."""

    def __init__(self, calibration: dict[str, np.ndarray], batch_size: int,
                 on_batch: Callable[[int], None] = lambda n: None) -> None:
        self.calibration = calibration
        self.batch_size = batch_size
        self.on_batch = on_batch
        self.total = len(next(iter(calibration.values())))
        self.position = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.position >= self.total:
            return None
        end = min(self.position + self.batch_size, self.total)
        batch = {name: np.ascontiguousarray(a[self.position:end]) for name, a in self.calibration.items()}
        self.on_batch(end - self.position)
        self.position = end
        return batch

    def rewind(self) -> None:
        self.position = 0
