"""What a fp32 ONNX model must be before quantization starts, checked up front with clear reasons.

Found by trying bad models: a model newer than onnxruntime's int8 kernels failed only after
calibration, as "the int8 model is not valid" from a staging folder; a model without inputs
complained about sample counts; a model with a fixed batch of 2 ended in a three-line ORT error.
Each is now one line that names the model and the cause, before any work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgeport.data.feeds import Layout, model_inputs, show_shape
from edgeport.errors import QuantizationError
from edgeport.quantize.inputs.calibration import check_arrays_fit, load_fp32_onnx

OLDEST_QDQ_OPSET = 10  # QuantizeLinear/DequantizeLinear exist from opset 10 on


@dataclass(frozen=True)
class ModelFacts:
    path: Path
    opset: int
    inputs: dict[str, tuple[tuple, np.dtype]]  # name -> (shape with symbolic dims as strings, dtype)

    @property
    def input_names(self) -> list[str]:
        return list(self.inputs)


def default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def _qdq_model(opset: int) -> bytes:
    graph = helper.make_graph(
        [
            helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
            helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"]),
        ],
        "qdq_probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]), helper.make_tensor("z", TensorProto.UINT8, [], [128])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model.SerializeToString()


@cache
def runs_int8_at(opset: int) -> bool:
    """Whether this onnxruntime has QuantizeLinear/DequantizeLinear kernels at ``opset``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        ort.InferenceSession(_qdq_model(opset), options, providers=["CPUExecutionProvider"])
    except Exception:  # ORT's own exception types: no kernel, or an opset it refuses
        return False
    return True


def newest_int8_opset(below: int) -> int | None:
    return next((v for v in range(below - 1, OLDEST_QDQ_OPSET - 1, -1) if runs_int8_at(v)), None)


def failure_reason(exc: BaseException, limit: int = 300) -> str:
    """One line for a third-party exception (onnxruntime, onnx, numpy, protobuf): its text without ORT's
    ``[ONNXRuntimeError] : 1 : FAIL :`` prefix and C++ source locations, whitespace (newlines included)
    collapsed, cut at ``limit`` characters; its type's name when it has no text."""
    text = str(exc).strip()
    text = re.sub(r"\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    text = re.sub(r"/onnxruntime_src/\S+ \S.*?\) ", "", text)
    text = " ".join(text.split())
    if not text:
        return type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _ort_reason(exc: Exception) -> str:
    """ORT's message without its C++ source location."""
    text = str(exc).strip()
    newest = re.search(r"official support for domain ai\.onnx is till opset (\d+)", text)
    if newest:
        return f"its newest supported opset is {newest.group(1)}"
    return failure_reason(exc)


def _refuse_zero_sized_inputs(path: Path, inputs: dict[str, tuple[tuple, np.dtype]]) -> None:
    """An input with a fixed axis of size 0 holds no values: nothing to calibrate, judge or measure (such a
    model ended in a numpy reshape ValueError deep in `--backend auto`'s smoothing check)."""
    for name, (shape, _) in inputs.items():
        zero = next((axis for axis, dim in enumerate(shape) if isinstance(dim, int) and dim == 0), None)
        if zero is not None:
            raise QuantizationError(
                f"{path}: input {name!r} has a fixed zero-sized axis {zero} ({show_shape(shape)}): an empty input "
                "carries no values to calibrate or verify"
            )


def check_fp32_model(path: str | Path) -> ModelFacts:
    """Read the model and prove onnxruntime can run it and its int8 form; refuse with the reason."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise QuantizationError(f"{path}: model file not found")
    model = load_fp32_onnx(path)
    inputs = model_inputs(model)
    if not inputs:
        raise QuantizationError(f"{path}: the model has no inputs; there is nothing to calibrate or verify")
    _refuse_zero_sized_inputs(path, inputs)
    opset = default_opset(model)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own types for models it cannot load
        reason = _ort_reason(exc)
        if "newest supported opset" in reason:
            raise QuantizationError(
                f"{path}: opset {opset} is newer than onnxruntime {_ort_version()} supports "
                f"({reason}); convert the model with onnx.version_converter"
            ) from exc
        raise QuantizationError(f"{path}: onnxruntime {_ort_version()} cannot load the model ({reason})") from exc
    if opset >= OLDEST_QDQ_OPSET and not runs_int8_at(opset):
        newest = newest_int8_opset(opset)
        hint = f"; convert it to opset {newest} with onnx.version_converter" if newest else ""
        raise QuantizationError(
            f"{path}: opset {opset} is newer than onnxruntime {_ort_version()} runs int8 "
            f"(no QuantizeLinear kernel at opset {opset}){hint}"
        )
    return ModelFacts(path, opset, inputs)


def check_inputs_fit(facts: ModelFacts, arrays: dict[str, np.ndarray], source: str | Path, role: str) -> Layout:
    """Dtypes, ranks and fixed dimensions of an .npz file's arrays against the model's inputs; their
    layout, batch-first or per-sample feeds (feeds.py), follows from the ranks."""
    # Samples whose inner axes hold nothing: a dynamic axis of size 0, the same emptiness as a fixed one (an
    # empty set of samples is refused where the file is read, with its own message).
    empty = next(
        (name for name, a in arrays.items() if a.ndim and len(a) and not a.size and name in facts.inputs), None
    )
    if empty is not None:
        raise QuantizationError(
            f"{source}: {role} {empty!r} has shape {arrays[empty].shape}, which holds no values; "
            f"{facts.path.name} needs at least one value per input"
        )
    return check_arrays_fit(facts.inputs, arrays, str(source), role, facts.path.name)
