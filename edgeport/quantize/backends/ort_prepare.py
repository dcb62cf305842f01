"""onnxruntime's quantization pre-processing (shape inference and graph clean-up), run in a
private working folder.

When its symbolic shape inference gives up (an op it does not know), onnxruntime saves
``sym_shape_infer_temp.onnx`` (and its external data) into the current working folder, which left
stray files wherever the user ran edgeport; and ``quant_pre_process`` works in a ``pre.quant.*``
folder of the system's temporary folder, left behind when a quantization is killed. Running it with
the working folder and Python's temporary folder both set to our own staging folder keeps all of
those files there, and they go when it goes.

Models saved with external data (``model.onnx`` + ``model.onnx.data``, torch's default exporter) stay
that way through every step here: onnxruntime's pre-processing is asked to write its intermediate
and final models with their own external data files, beside them, where the next step looks for them
(given only the ``.onnx``, its fallback path looked for ``model.onnx.data`` in its own temporary folder).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from edgeport.errors import QuantizationError
from edgeport.quantize.inputs.graph import subgraphs

if TYPE_CHECKING:
    import onnx


@contextmanager
def working_folder(folder: Path) -> Iterator[None]:
    """The working folder and Python's temporary folder (``tempfile``) set to ``folder`` meanwhile."""
    # Both belong to the process: edgeport quantizes in one thread per process (the search runs
    # stages in worker processes), so nothing else resolves relative paths or makes temporary files
    # meanwhile.
    previous, previous_temp = os.getcwd(), tempfile.tempdir
    os.chdir(folder)
    tempfile.tempdir = str(Path(folder).resolve())
    try:
        yield
    finally:
        tempfile.tempdir = previous_temp
        os.chdir(previous)


# Per-channel DequantizeLinear (an axis attribute) exists from opset 13: older graphs are upgraded.
MIN_OPSET = 13


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor a graph holds: initializers, and Constant-like attributes, subgraphs included."""
    import onnx

    yield from graph.initializer
    yield from (sparse.values for sparse in graph.sparse_initializer)
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR:
                yield attribute.t
            elif attribute.type == onnx.AttributeProto.TENSORS:
                yield from attribute.tensors
        for sub in subgraphs(node):
            yield from graph_tensors(sub)


def external_data_locations(path: str | os.PathLike) -> list[str]:
    """The external data files the ONNX file at ``path`` keeps tensors in, relative to it, sorted (read
    without them)."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    model = onnx.load(str(path), load_external_data=False)
    return sorted({ExternalDataInfo(t).location for t in graph_tensors(model.graph) if uses_external_data(t)})


def has_external_data(path: str | os.PathLike) -> bool:
    """Whether the ONNX file at ``path`` keeps tensors in external data files (read without them)."""
    return bool(external_data_locations(path))


def data_file(path: Path) -> Path:
    """Where a model written here keeps its external data: ``prepared.onnx`` -> ``prepared.onnx.data``."""
    return path.with_name(path.name + ".data")


def save_model(model: onnx.ModelProto, path: Path, external: bool) -> None:
    """Write ``model`` (its tensors in memory) to ``path``; with ``external``, its tensors of 1 KiB and
    more go to one data file beside it (``data_file``), replacing any earlier one: onnx appends to an
    existing data file."""
    import onnx

    if not external:
        onnx.save(model, str(path))
        return
    data_file(path).unlink(missing_ok=True)
    onnx.save(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=data_file(path).name,
        size_threshold=1024,
    )


def upgraded(fp32_path: Path, folder: Path, notes: dict, external: bool) -> Path:
    """``fp32_path``, or a copy converted to ``MIN_OPSET`` when the graph is older (recorded in ``notes``)."""
    import onnx
    import onnx.version_converter

    header = onnx.load(str(fp32_path), load_external_data=False)
    opset = next((o.version for o in header.opset_import if o.domain in ("", "ai.onnx")), MIN_OPSET)
    if opset >= MIN_OPSET:
        return fp32_path
    try:
        converted = onnx.version_converter.convert_version(onnx.load(str(fp32_path)), MIN_OPSET)
    except Exception as exc:  # onnx raises its C++ converter's errors as plain exceptions
        raise QuantizationError(
            f"{fp32_path}: opset {opset} is older than the {MIN_OPSET} int8 per-channel needs, and onnx "
            f"could not convert it ({_first_line(exc)})"
        ) from exc
    path = folder / "upgraded.onnx"
    save_model(converted, path, external)
    notes["opset_upgraded"] = f"{opset} -> {MIN_OPSET}"
    return path


def _drop_shapeless_value_info(path: Path, external: bool) -> None:
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
        save_model(model, path, external)


def pre_process(fp32_path: Path, prepared: Path) -> dict:
    """``quant_pre_process`` of ``fp32_path`` into ``prepared``, with scratch files kept in prepared's folder.

    Graphs older than opset 13 are upgraded first. When onnxruntime's symbolic shape inference gives
    up (ops it does not know, which other exporters' graphs often have), ONNX's own shape inference
    is used instead. A model with external data gets ``prepared`` with its own (``data_file``).
    Returns what was done differently, for the backend's report.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    target = Path(prepared).resolve()
    notes: dict = {}
    try:
        external = has_external_data(fp32_path)
    except Exception as exc:  # a file the checks before let through but onnx cannot parse
        raise QuantizationError(f"{fp32_path}: cannot read the ONNX model ({_first_line(exc)})") from exc
    source = upgraded(Path(fp32_path).resolve(), target.parent, notes, external)
    options: dict = {}
    if external:
        options = {
            "save_as_external_data": True,
            "all_tensors_to_one_file": True,
            "external_data_location": data_file(target).name,
        }
    try:
        with working_folder(target.parent):
            try:
                quant_pre_process(str(source), str(target), **options)
            except Exception as exc:  # ORT raises plain Exceptions from its symbolic shape inference
                notes["symbolic_shape_inference"] = f"failed ({_first_line(exc)}); ONNX shape inference used"
                quant_pre_process(str(source), str(target), skip_symbolic_shape=True, **options)
                _drop_shapeless_value_info(target, external)
    except Exception as exc:
        raise QuantizationError(f"{fp32_path}: ORT quantization pre-processing failed ({_first_line(exc)})") from exc
    return notes
