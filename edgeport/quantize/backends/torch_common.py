"""Shared steps of the PyTorch backends: the example input, calibration passes, ONNX export."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeport.core.progress import Progress
from edgeport.errors import ExportError, QuantizationError

CALIBRATION_BATCH = 32


def single_input(calibration: dict[str, np.ndarray], backend: str) -> tuple[str, np.ndarray]:
    if len(calibration) != 1:
        raise QuantizationError(
            f"backend {backend!r} quantizes single-input torch models; calibration has inputs {sorted(calibration)}"
        )
    name, array = next(iter(calibration.items()))
    if len(array) == 0:
        raise QuantizationError(f"backend {backend!r}: the calibration set is empty")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise QuantizationError(f"backend {backend!r}: calibration input {name!r} contains NaN or inf")
    return name, array


def require_torch_model(source, backend: str):
    if source.torch_model is None:
        raise QuantizationError(
            f"backend {backend!r} quantizes a torch model; give one "
            "(--torch package.module:factory --weights W.safetensors)"
        )
    return source.torch_model.eval()


def torch_inputs(source, calibration: dict[str, np.ndarray], calibration_samples: int, backend: str):
    """The torch model, its input name and the calibration samples a torch backend works from."""
    model = require_torch_model(source, backend)
    input_name, samples = single_input(calibration, backend)
    return model, input_name, samples[:calibration_samples]


def calibrate(model, samples: np.ndarray, progress: Progress) -> None:
    """Run the observed model over the calibration samples so its observers record ranges."""
    import torch

    with torch.no_grad(), progress.task("calibrate", total=len(samples)) as advance:
        for start in range(0, len(samples), CALIBRATION_BATCH):
            batch = samples[start : start + CALIBRATION_BATCH]
            model(torch.from_numpy(np.ascontiguousarray(batch)))
            advance(len(batch))


def export_int8(model, samples: np.ndarray, output_path: Path, exporter: str, input_name: str, backend: str) -> None:
    from edgeport.exporter import write_onnx  # imports torch: loaded only when a torch backend exports

    try:
        write_onnx(model, samples[:2], output_path, exporter, input_name=input_name)
    except ExportError as exc:
        raise QuantizationError(f"backend {backend!r}: {exc}") from exc
