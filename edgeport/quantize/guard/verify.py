"""Proof of an int8 artifact: it is valid ONNX, runs, agrees with the fp32 model, agrees with
itself in a second runtime, and its compute really runs on integer kernels.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.version_converter

from edgeport.benchmarks.openvino_runtime import OpenVinoSession, openvino_version
from edgeport.benchmarks.records import ONNXRUNTIME, RuntimeChoice
from edgeport.data.feeds import feed_layout, iter_feeds, join_outputs, model_inputs
from edgeport.errors import CheckFailedError, QuantizationError
from edgeport.quantize.guard.fidelity import fidelity, sequence_outputs
from edgeport.quantize.inputs.calibration import QUANTIZED_OPS, input_shapes
from edgeport.quantize.inputs.graph import iter_nodes
from edgeport.quantize.inputs.run import fixed_batch, ort_session, run_all_outputs, run_outputs

# Compute ops whose float form after ORT optimisation means "this layer did not become int8".
FLOAT_COMPUTE = {"Conv", "Gemm", "MatMul", "FusedConv", "FusedGemm", "FusedMatMul", "NhwcFusedConv"}
INTEGER_COMPUTE = {
    "QLinearConv",
    "QLinearMatMul",
    "MatMulInteger",
    "ConvInteger",
    "QGemm",
    "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat",
    "NhwcQLinearConv",
}
REFERENCE_SAMPLES = 4
REFERENCE_MIN_OPSET = 19


def _default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def int8_coverage(int8_path: str | os.PathLike) -> dict:
    """Share of Conv/Gemm/MatMul that run as integer kernels after ORT_ENABLE_ALL, unfused ones named.

    Layers inside If/Loop/Scan subgraphs count too (``in_subgraphs`` says how many sat there);
    ``quantized_nodes`` counts every node only a quantized model has (Q/DQ, integer kernels).
    """
    with tempfile.TemporaryDirectory() as tmp:
        optimized = os.path.join(tmp, "optimized.onnx")
        ort_session(int8_path, optimized)
        graph = onnx.load(optimized).graph
    nodes = list(iter_nodes(graph))
    integer = [n for n, _ in nodes if n.op_type in INTEGER_COMPUTE]
    floating = [n for n, _ in nodes if n.op_type in FLOAT_COMPUTE]
    nested = sum(1 for n, depth in nodes if depth > 0 and n.op_type in INTEGER_COMPUTE | FLOAT_COMPUTE)
    total = len(integer) + len(floating)
    return {
        "integer_kernels": len(integer),
        "float_kernels": len(floating),
        "share": len(integer) / total if total else 0.0,
        "in_subgraphs": nested,
        "quantized_nodes": sum(1 for n, _ in nodes if n.op_type in QUANTIZED_OPS | INTEGER_COMPUTE),
        "integer_ops": dict(sorted(Counter(n.op_type for n in integer).items())),
        "unfused": [f"{n.name or '(unnamed)'} ({n.op_type})" for n in floating],
    }


def require_quantized(coverage: dict) -> None:
    """An "int8" file in which nothing was quantized is a failed check, never a success."""
    if coverage["quantized_nodes"]:
        return
    layers = coverage["float_kernels"]
    where = (
        f"; {coverage['in_subgraphs']} of its {layers} Conv/Gemm/MatMul layer(s) sit inside If/Loop/Scan "
        "subgraphs, which the quantizer does not enter"
        if coverage["in_subgraphs"]
        else f" (it has {layers} Conv/Gemm/MatMul layer(s))"
    )
    raise CheckFailedError(
        f"nothing was quantized: the output has no QuantizeLinear/DequantizeLinear or integer nodes{where}"
    )


def _first_output(outputs: dict[str, Any] | list[Any]) -> Any:
    """The first output of ``ReferenceEvaluator.run`` (a list for requested outputs; typed as either)."""
    return next(iter(outputs.values())) if isinstance(outputs, dict) else outputs[0]


def reference_agreement(
    int8_path: str | os.PathLike,
    inputs: dict[str, np.ndarray],
    ort_outputs: np.ndarray,
    samples: int = REFERENCE_SAMPLES,
) -> dict:
    """Run the int8 file in onnx's reference evaluator (a second, independent runtime)."""
    from onnx.reference import ReferenceEvaluator

    feeds = {k: v[:samples] for k, v in inputs.items()}
    try:
        model = onnx.load(str(int8_path))
        layout = feed_layout(input_shapes(model_inputs(model)), feeds, str(int8_path))
        if _default_opset(model) < REFERENCE_MIN_OPSET:
            # onnx's reference runtime lacks Q/DQ for opset 18; 19+ means the same for int8 tensors.
            model = onnx.version_converter.convert_version(model, REFERENCE_MIN_OPSET)
        evaluator = ReferenceEvaluator(model)
        parts = [np.asarray(_first_output(evaluator.run(None, feed))) for feed in iter_feeds(feeds, layout, samples)]
        outputs = join_outputs(parts, layout).astype(np.float64)
    except Exception as exc:  # unsupported (contrib) ops or reference-runtime limits
        return {"samples": 0, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    return {"samples": int(len(outputs)), **fidelity(ort_outputs[:samples], outputs)}


def other_runtimes(int8_path: str | os.PathLike, inputs: dict[str, np.ndarray], ort_outputs: np.ndarray) -> dict:
    """The same int8 file on every other installed runtime (OpenVINO), against onnxruntime's outputs: the
    numerics of one artifact differ between runtimes (kernels, fusions, OpenVINO's bf16 default)."""
    if not openvino_version():
        return {}
    try:
        session = OpenVinoSession(int8_path, threads=1, precision=None)  # as it would be deployed
        outputs = next(iter(run_all_outputs(session, inputs).values()))
    except Exception as exc:  # an op OpenVINO lacks, or its own error types: recorded, not fatal
        return {"openvino": {"error": " ".join(str(exc).split())[:300]}}
    return {"openvino": {"precision_used": session.precision, **fidelity(ort_outputs, outputs)}}


def _check(int8_path: Path, fp32_path: str | os.PathLike) -> str:
    """onnx.checker's full check (with shape inference). When the fp32 source fails it with the same
    complaint (outputs declared without shapes, as contrib ops leave them; onnxruntime runs such
    models), the int8 model is held to what its source passes: onnxruntime and the fidelity checks."""
    try:
        onnx.checker.check_model(str(int8_path), full_check=True)
        return "passed"
    except Exception as int8_error:  # onnx raises its C++ checker's errors as plain exceptions
        try:
            onnx.checker.check_model(str(fp32_path), full_check=True)
        except Exception as fp32_error:
            if str(fp32_error) == str(int8_error):
                return f"not applicable: the fp32 model fails onnx.checker the same way ({int8_error})"
        raise


def _first_output_is_sequence(fp32_path) -> bool:
    """Whether the graph marks its first output as per-step class scores (a CTC recognizer's)."""
    model = onnx.load(str(fp32_path), load_external_data=False)
    return bool(model.graph.output) and model.graph.output[0].name in sequence_outputs(model)


def verify_int8(
    int8_path: str | os.PathLike,
    fp32_path: str | os.PathLike,
    inputs: dict[str, np.ndarray],
    labels: np.ndarray | None = None,
) -> dict:
    """Everything the manifest records about an int8 artifact; raises if it is not a working model."""
    return verify_with_outputs(int8_path, fp32_path, inputs, labels)[0]


def verify_with_outputs(
    int8_path: str | os.PathLike,
    fp32_path: str | os.PathLike,
    inputs: dict[str, np.ndarray],
    labels: np.ndarray | None = None,
    runtime: RuntimeChoice | None = None,
) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``verify_int8``'s report, and every output of the fp32 and the int8 model on ``inputs`` (each
    model runs once, so that a caller judging all outputs does not run them again). ``runtime``: the
    runtime the artifact ships with; its int8 outputs are the ones returned (and judged), against the
    fp32 model on onnxruntime."""
    int8_path = Path(int8_path)
    try:
        checker = _check(int8_path, fp32_path)
        int8_session = ort_session(int8_path)
    except Exception as exc:
        raise QuantizationError(
            f"{fp32_path}: the int8 model quantized from it is not valid or does not load ({exc})"
        ) from exc
    coverage = int8_coverage(int8_path)
    require_quantized(coverage)
    int8_all = run_all_outputs(int8_session, inputs)
    fp32_all = run_all_outputs(ort_session(fp32_path), inputs)
    int8_out, fp32_out = next(iter(int8_all.values())), next(iter(fp32_all.values()))
    report = {
        "checker": checker,
        "onnxruntime": "loads",
        "samples": int(len(int8_out)),
        "vs_fp32": fidelity(fp32_out, int8_out, sequence=_first_output_is_sequence(fp32_path)),
        "reference_runtime": reference_agreement(int8_path, inputs, int8_out),
        "other_runtimes": other_runtimes(int8_path, inputs, int8_out),
        "coverage": coverage,
    }
    if labels is not None:
        report["accuracy"] = {
            "fp32": float((fp32_out.argmax(1) == labels).mean() * 100),
            "int8": float((int8_out.argmax(1) == labels).mean() * 100),
        }
    if runtime is not None and runtime.name != ONNXRUNTIME.name:
        session = OpenVinoSession(int8_path, threads=1, precision=runtime.precision)
        int8_all = run_all_outputs(session, inputs)
        report["judged_on_runtime"] = f"{runtime.name} ({session.precision})"
        report["judged_on_precision"] = session.precision  # what it compiled, whatever the hint asked
    return report, fp32_all, int8_all


__all__ = [  # ort_session and the runners live in inputs/run.py; named here too, where callers found them
    "fixed_batch",
    "int8_coverage",
    "ort_session",
    "reference_agreement",
    "require_quantized",
    "run_all_outputs",
    "run_outputs",
    "verify_int8",
    "verify_with_outputs",
]
