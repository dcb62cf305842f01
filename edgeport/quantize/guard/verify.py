"""Proof of an int8 artifact: it is valid ONNX, runs, agrees with the fp32 model, agrees with
itself in a second runtime, and its compute really runs on integer kernels.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.version_converter

from edgeport.benchmarks.openvino_runtime import OpenVinoSession, openvino_version
from edgeport.benchmarks.records import ONNXRUNTIME, RuntimeChoice
from edgeport.data.feeds import model_inputs, sample_count
from edgeport.errors import QuantizationError
from edgeport.quantize.guard.coverage import int8_coverage, openvino_coverage, require_quantized
from edgeport.quantize.guard.fidelity import fidelity
from edgeport.quantize.guard.heads import sequence_outputs
from edgeport.quantize.guard.reference_ops import CONTRIB_OPS
from edgeport.quantize.inputs.output_axes import OutputPlan, not_per_sample, output_plan, sample_axes
from edgeport.quantize.inputs.run import fixed_batch, ort_session, run_all_outputs, run_outputs

# onnx's reference evaluator runs every op in numpy: 0.2 s a sample for a PP-LCNet at 224x224, 3.3 s for the
# PP-OCRv4 detector at 320x320, 9 s for a PicoDet at 800x608 (AMD EPYC Zen 3). One sample runs every kernel
# the artifact has; more are read, up to REFERENCE_SAMPLES, while they fit REFERENCE_SECONDS in all.
REFERENCE_SAMPLES = 4
REFERENCE_SECONDS = 2.0
REFERENCE_MIN_OPSET = 19


def _default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


class _ReferenceSession:
    """onnx's reference evaluator behind the part of the onnxruntime session interface that
    ``run_all_outputs`` calls, so that it is fed as onnxruntime is: in chunks of the model's fixed batch
    size (padded), one per-sample feed a run, outputs joined along their sample axes."""

    def __init__(self, model: onnx.ModelProto, evaluator: Any) -> None:
        self._inputs = [_Arg(name, list(shape)) for name, (shape, _) in model_inputs(model).items()]
        self._outputs = [_Arg(o.name, []) for o in model.graph.output]
        self._evaluator = evaluator

    def get_inputs(self) -> list[_Arg]:
        return self._inputs

    def get_outputs(self) -> list[_Arg]:
        return self._outputs

    def run(self, _names: Any, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        values = self._evaluator.run(None, feed)
        found = list(values.values()) if isinstance(values, dict) else list(values)
        return [np.asarray(v) for v in found]


@dataclass(frozen=True)
class _Arg:
    """An onnxruntime NodeArg look-alike: a name and a shape (ints, or names for symbolic dims)."""

    name: str
    shape: list


def reference_agreement(
    int8_path: str | os.PathLike,
    inputs: dict[str, np.ndarray],
    ort_outputs: np.ndarray,
    samples: int = REFERENCE_SAMPLES,
    *,
    plan: OutputPlan | None = None,
    output: str | None = None,
) -> dict:
    """Run the int8 file in onnx's reference evaluator (a second, independent runtime) on the first sample, and
    on more of the first ``samples`` while they fit ``REFERENCE_SECONDS`` at the first one's pace; compare its
    ``output`` (the first by default) with onnxruntime's ``ort_outputs`` of it. ``plan``: onnxruntime's output
    plan of the same file (``output_plan``), so that the reference run is fed and joined the same way without
    probing it again."""
    from onnx.reference import ReferenceEvaluator

    try:
        model = onnx.load(str(int8_path))
        if _default_opset(model) < REFERENCE_MIN_OPSET:
            # onnx's reference runtime lacks Q/DQ for opset 18; 19+ means the same for int8 tensors.
            model = onnx.version_converter.convert_version(model, REFERENCE_MIN_OPSET)
        runner = _ReferenceSession(model, ReferenceEvaluator(model, new_ops=CONTRIB_OPS))
        name = output or runner.get_outputs()[0].name
        if plan is not None and plan.axes.get(name) is None:
            return {"samples": 0, "error": f"not compared: output {name!r} holds no axis of samples"}
        value = _reference_outputs(runner, inputs, samples, name, str(int8_path), plan)
        if value is None:
            return {"samples": 0, "error": f"not compared: output {name!r} holds no axis of samples"}
    except Exception as exc:  # unsupported (contrib) ops or reference-runtime limits
        return {"samples": 0, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    reference = ort_outputs[: len(value)]
    if reference.shape != value.shape:
        return {"samples": 0, "error": f"not compared: shape {value.shape} against onnxruntime's {reference.shape}"}
    return {"samples": int(len(value)), **fidelity(reference, value)}


def _reference_outputs(
    runner: _ReferenceSession,
    inputs: dict[str, np.ndarray],
    samples: int,
    name: str,
    source: str,
    plan: OutputPlan | None,
) -> np.ndarray | None:
    """``name``'s output on the first sample, then on as many more of the first ``samples`` as the first one's
    time allows within ``REFERENCE_SECONDS`` (joined, samples first); None where it holds no axis of samples."""
    started = time.perf_counter()
    plan = plan or output_plan(runner, {k: v[:2] for k, v in inputs.items()}, source)  # probed once, for both runs
    first = run_all_outputs(runner, {k: v[:1] for k, v in inputs.items()}, 1, source, plan=plan)
    if name in not_per_sample(first):
        return None
    pace = time.perf_counter() - started
    more = min(samples, sample_count(inputs), max(1, int(REFERENCE_SECONDS / max(pace, 1e-9)))) - 1
    if more <= 0:
        return first[name]
    rest = run_all_outputs(runner, {k: v[1 : 1 + more] for k, v in inputs.items()}, more, source, plan=plan)
    return np.concatenate([first[name], rest[name]])


def other_runtimes(
    int8_path: str | os.PathLike,
    inputs: dict[str, np.ndarray],
    ort_outputs: np.ndarray,
    *,
    plan: OutputPlan | None = None,
    output: str | None = None,
) -> dict:
    """The same int8 file on every other installed runtime (OpenVINO), against onnxruntime's outputs: the
    numerics of one artifact differ between runtimes (kernels, fusions, OpenVINO's bf16 default).
    ``output``: the one compared (the first by default); ``plan``: onnxruntime's output plan of the file."""
    if not openvino_version():
        return {}
    try:
        session = OpenVinoSession(int8_path, threads=1, precision=None)  # as it would be deployed
        all_outputs = run_all_outputs(session, inputs, plan=plan)
        outputs = all_outputs[output] if output else next(iter(all_outputs.values()))
    except Exception as exc:  # an op OpenVINO lacks, or its own error types: recorded, not fatal
        return {"openvino": {"error": " ".join(str(exc).split())[:300]}}
    if outputs.shape != ort_outputs.shape:
        return {"openvino": {"error": f"not compared: shape {outputs.shape} against onnxruntime's {ort_outputs.shape}"}}
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


def _vs_fp32(fp32_out: np.ndarray, int8_out: np.ndarray, whole: bool, fp32_path) -> dict:
    """``fidelity`` of the first output; one that holds no axis of samples (``whole``: a per-batch
    constant, a reduced output, rank 0 perhaps) is compared as one vector, not row by row."""
    if whole:
        return fidelity(fp32_out.reshape(1, -1), int8_out.reshape(1, -1))
    return fidelity(fp32_out, int8_out, sequence=_first_output_is_sequence(fp32_path))


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
    second_runtimes: bool = True,
) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``verify_int8``'s report, and every output of the fp32 and the int8 model on ``inputs`` (each
    model runs once, so that a caller judging all outputs does not run them again). ``runtime``: the
    runtime the artifact ships with; its int8 outputs are the ones returned (and judged), against the
    fp32 model on onnxruntime. ``second_runtimes``: the same file run on every other installed runtime too
    (``report["other_runtimes"]``)."""
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
    plan = output_plan(int8_session, inputs, str(int8_path))
    int8_all = run_all_outputs(int8_session, inputs, source=str(int8_path), plan=plan)
    fp32_all = run_all_outputs(ort_session(fp32_path), inputs)
    int8_out, fp32_out = next(iter(int8_all.values())), next(iter(fp32_all.values()))
    # the second runtimes are compared on the first output that holds the samples (a per-batch
    # constant sliced to a few samples would differ for no fault of the runtime)
    compared = next((n for n in int8_all if n not in not_per_sample(int8_all)), next(iter(int8_all)))
    report = {
        "checker": checker,
        "onnxruntime": "loads",
        "samples": int(sample_count(inputs)),
        "vs_fp32": _vs_fp32(fp32_out, int8_out, next(iter(int8_all)) in not_per_sample(int8_all), fp32_path),
        "reference_runtime": reference_agreement(int8_path, inputs, int8_all[compared], plan=plan, output=compared),
        # off where the caller judges the file on every runtime itself (quantize choosing its runtime)
        "other_runtimes": other_runtimes(int8_path, inputs, int8_all[compared], plan=plan, output=compared)
        if second_runtimes
        else {},
        "coverage": coverage,
    }
    if labels is not None:
        report["accuracy"] = {
            "fp32": float((fp32_out.argmax(1) == labels).mean() * 100),
            "int8": float((int8_out.argmax(1) == labels).mean() * 100),
        }
    if runtime is not None and runtime.name != ONNXRUNTIME.name:
        session = OpenVinoSession(int8_path, threads=1, precision=runtime.precision)
        int8_all = run_all_outputs(session, inputs, plan=plan)
        report["judged_on_runtime"] = f"{runtime.name} ({session.precision})"
        report["judged_on_precision"] = session.precision  # what it compiled, whatever the hint asked
        report["coverage_on_runtime"] = openvino_coverage(session, int8_path)
    return report, fp32_all, int8_all


__all__ = [  # ort_session and the runners live in inputs/run.py; named here too, where callers found them
    "fixed_batch",
    "int8_coverage",
    "not_per_sample",
    "ort_session",
    "reference_agreement",
    "require_quantized",
    "run_all_outputs",
    "run_outputs",
    "sample_axes",
    "verify_int8",
    "verify_with_outputs",
]
