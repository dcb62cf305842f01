"""Checks on the fp32 model and its calibration inputs, and the reader ORT's calibrator pulls from."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader

from edgeport.data.feeds import BATCH_FIRST, PER_SAMPLE, Layout, feed_layout, sample_feed, show_shape
from edgeport.errors import QuantizationError

# Ops that only appear in a model that is already quantized.
QUANTIZED_OPS = {
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "QLinearConv",
    "QLinearMatMul",
    "ConvInteger",
    "MatMulInteger",
    "QGemm",
    "QLinearAdd",
    "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat",
}


def load_fp32_onnx(path: str | Path) -> onnx.ModelProto:
    """Read a model that is to be quantized; refuse unreadable or already-quantized files."""
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, OSError and others for a bad file
        raise QuantizationError(f"{path}: cannot read the ONNX model ({exc})") from exc
    quantized = sorted({n.op_type for n in model.graph.node} & QUANTIZED_OPS)
    if quantized:
        raise QuantizationError(
            f"{path}: the model is already quantized (it has {', '.join(quantized)} nodes); give the fp32 model"
        )
    return model


def declared_batch(inputs: dict[str, tuple[tuple, np.dtype]]) -> int | None:
    """The batch size the model fixes (the first input whose first dim is a number), or None."""
    for shape, _ in inputs.values():
        if shape and isinstance(shape[0], int) and shape[0] > 0:
            return shape[0]
    return None


def input_shapes(inputs: dict[str, tuple[tuple, np.dtype]]) -> dict[str, tuple]:
    return {name: shape for name, (shape, _) in inputs.items()}


def check_arrays_fit(
    inputs: dict[str, tuple[tuple, np.dtype]], arrays: dict[str, np.ndarray], source: str, role: str, model: str
) -> Layout:
    """Dtypes, the layout (feeds.py) and fixed dimensions of ``arrays`` against the model's inputs."""
    for name, (_, dtype) in inputs.items():
        if arrays[name].dtype != dtype:
            raise QuantizationError(
                f"{source}: {role} input {name!r} is {arrays[name].dtype}, the model {model} expects {dtype}"
            )
    layout = feed_layout(input_shapes(inputs), arrays, source, f"{role} input")
    # batch-first: the array's first axis is the model's batch axis (any size); per-sample: the
    # first axis counts samples and each slice is the model's whole shape, its batch axis included.
    first, shift = (1, 0) if layout == BATCH_FIRST else (0, 1)
    for name, (shape, _) in inputs.items():
        array = arrays[name]
        for axis in range(first, len(shape)):
            dim = shape[axis]
            if isinstance(dim, int) and dim > 0 and array.shape[axis + shift] != dim:
                raise QuantizationError(
                    f"{source}: {role} input {name!r} has shape {array.shape} ({layout}), the model "
                    f"{model} expects size {dim} on axis {axis + shift} {show_shape(shape)}"
                )
    return layout


def check_calibration(inputs: dict[str, tuple[tuple, np.dtype]], calibration: dict[str, np.ndarray], where: str) -> int:
    """Check names, dtypes, ranks, fixed dims and finiteness of calibration arrays; return the sample count.

    The library-level guard of the ORT backends; the CLI checks the .npz file first (data/model_inputs.py)."""
    missing = sorted(set(inputs) - set(calibration))
    extra = sorted(set(calibration) - set(inputs))
    if missing or extra:
        raise QuantizationError(
            f"{where}: calibration inputs {sorted(calibration)} do not match the model's inputs {sorted(inputs)}"
        )
    counts = {len(a) for a in calibration.values()}
    if 0 in counts:
        raise QuantizationError(f"{where}: the calibration set is empty")
    if len(counts) != 1:
        raise QuantizationError(f"{where}: calibration arrays have different sample counts {sorted(counts)}")
    check_arrays_fit(inputs, calibration, where, "calibration", Path(where).name)
    for name, array in calibration.items():
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise QuantizationError(f"{where}: calibration input {name!r} contains NaN or inf")
    return counts.pop()


class ArrayCalibrationReader(CalibrationDataReader):
    """Feeds ``calibration`` to ORT's calibrator in batches (batch-first) or one sample at a time
    (per-sample feeds), reporting the samples of each run.

    With ``chunk`` samples per chunk, ``len()`` counts chunks and ``set_range(i, j)`` narrows the reader
    to chunks ``i`` to ``j - 1``: what ``quantize_static``'s ``CalibStridedMinMax`` loop calls before
    each ``collect_data``, so that the calibrator holds one chunk's tensors at a time
    (backends/ort_calibrate.py). ``chunk`` is a multiple of ``batch_size`` (or every sample), so the
    batches are the same as without chunks."""

    def __init__(
        self,
        calibration: dict[str, np.ndarray],
        batch_size: int,
        on_batch: Callable[[int], None] = lambda n: None,
        pad: bool = False,
        layout: Layout = BATCH_FIRST,
        chunk: int = 0,
    ) -> None:
        """``pad``: the model fixes its batch size, so a short last batch is filled up with repeats of
        its final sample (repeats change no min/max range); batch-first only, as a per-sample slice is
        already a complete input. ``chunk``: samples per chunk (0: all of them, one chunk)."""
        self.calibration = calibration
        self.batch_size = 1 if layout == PER_SAMPLE else batch_size
        self.on_batch = on_batch
        self.pad = pad and layout == BATCH_FIRST
        self.layout = layout
        self.total = len(next(iter(calibration.values())))
        self.chunk = chunk or self.total
        self.position = 0
        self.end = self.total

    def __len__(self) -> int:
        """How many chunks (what ``set_range`` indexes)."""
        return -(-self.total // self.chunk)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.position = min(start_index * self.chunk, self.total)
        self.end = min(end_index * self.chunk, self.total)

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.position >= self.end:
            return None
        end = min(self.position + self.batch_size, self.end)
        if self.layout == PER_SAMPLE:
            batch = sample_feed(self.calibration, self.position)
        else:
            batch = {name: np.ascontiguousarray(a[self.position : end]) for name, a in self.calibration.items()}
        short = self.batch_size - (end - self.position)
        if self.pad and short > 0:
            batch = {name: np.concatenate([a, np.repeat(a[-1:], short, axis=0)]) for name, a in batch.items()}
        self.on_batch(end - self.position)
        self.position = end
        return batch

    def rewind(self) -> None:
        self.position, self.end = 0, self.total
