"""onnxruntime's quantization pre-processing (shape inference and graph clean-up), run in a
private working folder.

When its symbolic shape inference gives up (an op it does not know), onnxruntime saves
``sym_shape_infer_temp.onnx`` (and its external data) into the current working folder, which left
stray files wherever the user ran edgeport. Running it with the working folder set to our own
temporary folder keeps those files there, and they go when it goes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgeport.errors import QuantizationError


@contextmanager
def working_folder(folder: Path) -> Iterator[None]:
    # The working folder belongs to the process: edgeport quantizes in one thread per process
    # (the search runs stages in worker processes), so nothing else resolves relative paths meanwhile.
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


# Per-channel DequantizeLinear (an axis attribute) exists from opset 13: older graphs are upgraded.
MIN_OPSET = 13


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _upgraded(fp32_path: Path, folder: Path, notes: dict) -> Path:
    """``fp32_path``, or a copy converted to ``MIN_OPSET`` when the graph is older (recorded in ``notes``)."""
    import onnx
    import onnx.version_converter

    model = onnx.load(str(fp32_path))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), MIN_OPSET)
    if opset >= MIN_OPSET:
        return fp32_path
    try:
        converted = onnx.version_converter.convert_version(model, MIN_OPSET)
    except Exception as exc:  # onnx raises its C++ converter's errors as plain exceptions
        raise QuantizationError(
            f"{fp32_path}: opset {opset} is older than the {MIN_OPSET} int8 per-channel needs, and onnx "
            f"could not convert it ({_first_line(exc)})"
        ) from exc
    path = folder / "upgraded.onnx"
    onnx.save(converted, str(path))
    notes["opset_upgraded"] = f"{opset} -> {MIN_OPSET}"
    return path


def _drop_shapeless_value_info(path: Path) -> None:
    """ONNX shape inference types the outputs of ops it does not know (contrib ops) without a shape;
    such entries say nothing and fail onnx.checker's full check of the quantized file."""
    import onnx

    model = onnx.load(str(path))
    kept = [
        v for v in model.graph.value_info if not v.type.HasField("tensor_type") or v.type.tensor_type.HasField("shape")
    ]
    if len(kept) < len(model.graph.value_info):
        del model.graph.value_info[:]
        model.graph.value_info.extend(kept)
        onnx.save(model, str(path))


def pre_process(fp32_path: Path, prepared: Path) -> dict:
    """``quant_pre_process`` of ``fp32_path`` into ``prepared``, with scratch files kept in prepared's folder.

    Graphs older than opset 13 are upgraded first. When onnxruntime's symbolic shape inference gives
    up (ops it does not know, which other exporters' graphs often have), ONNX's own shape inference
    is used instead. Returns what was done differently, for the backend's report.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    target = Path(prepared).resolve()
    notes: dict = {}
    source = _upgraded(Path(fp32_path).resolve(), target.parent, notes)
    try:
        with working_folder(target.parent):
            try:
                quant_pre_process(str(source), str(target))
            except Exception as exc:  # ORT raises plain Exceptions from its symbolic shape inference
                notes["symbolic_shape_inference"] = f"failed ({_first_line(exc)}); ONNX shape inference used"
                quant_pre_process(str(source), str(target), skip_symbolic_shape=True)
                _drop_shapeless_value_info(target)
    except Exception as exc:
        raise QuantizationError(f"{fp32_path}: ORT quantization pre-processing failed ({_first_line(exc)})") from exc
    return notes
