"""Accuracy-aware fallback: keep the layers that quantize worst in float until the int8 model is
within tolerance of the fp32 model.

Sensitivity of a layer = the quality of the int8 model when only that layer stays in float.
Layers are then excluded greedily, most helpful first, re-measuring after each step, until the
model is within tolerance or every candidate is excluded. Every step is recorded.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from edgeport.errors import ConfigError
from edgeport.progress import SILENT, Progress
from edgeport.quant_backends.config import QuantConfig
from edgeport.quant_backends.guard import Tolerance
from edgeport.quant_backends.registry import QuantResult
from edgeport.quant_backends.source import ModelSource
from edgeport.quant_backends.verify import fidelity, ort_session, run_outputs

ONNX_LAYER_OPS = {"Conv", "Gemm", "MatMul", "ConvTranspose"}


@dataclass
class FallbackReport:
    metric: str
    fp32: float
    tolerance: float
    steps: list[dict] = field(default_factory=list)
    sensitivity: list[dict] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    within_tolerance: bool = False

    def describe(self) -> dict:
        return dataclasses.asdict(self)


def layer_candidates(source: ModelSource, needs: str) -> list[str]:
    """Names a backend can exclude: ONNX node names, or torch module names of conv/linear layers."""
    if needs == "onnx":
        graph = onnx.load(str(source.onnx_path), load_external_data=False).graph
        return [n.name for n in graph.node if n.op_type in ONNX_LAYER_OPS and n.name]
    from torch import nn

    return [
        name
        for name, module in source.torch_model.named_modules()
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))
    ]


def _check_request(known: list[str], allowed, tolerance: Tolerance, val_labels) -> None:
    unknown = sorted(set(allowed or ()) - set(known))
    if unknown:
        raise ConfigError(
            f"fallback layer(s) {', '.join(unknown)} not found; the model's layers are {', '.join(known)}"
        )
    if tolerance.max_drop is not None and val_labels is None:
        raise ConfigError(
            "max_accuracy_drop needs validation labels (y in the --val file); use min_cosine for models without labels"
        )


def quantize_with_fallback(
    source: ModelSource,
    calibration: dict[str, np.ndarray],
    config: QuantConfig,
    output_path: str | Path,
    val_inputs: dict[str, np.ndarray],
    val_labels: np.ndarray | None,
    tolerance: Tolerance,
    progress: Progress = SILENT,
    allowed: list[str] | None = None,
) -> tuple[QuantResult, FallbackReport]:
    """``allowed`` limits which layers may fall back to float (default: every conv/linear layer)."""
    from edgeport.quant_backends import backend_for, check_exclusions, run_backend

    backend, config = backend_for(config)
    check_exclusions(source, config)
    known = layer_candidates(source, backend.needs)
    _check_request(known, allowed, tolerance, val_labels)
    output_path = Path(output_path)
    fp32_out = run_outputs(ort_session(source.onnx_path), val_inputs)
    if tolerance.max_drop is not None:
        fp32_quality = float((fp32_out.argmax(1) == val_labels).mean() * 100)
        report = FallbackReport("top1_accuracy", fp32_quality, fp32_quality - tolerance.max_drop)
    else:
        report = FallbackReport("mean_cosine", 1.0, tolerance.min_cosine)

    with tempfile.TemporaryDirectory(dir=output_path.parent, prefix=".fallback-") as tmp:

        def attempt(excluded: list[str], name: str) -> tuple[float, QuantResult]:
            trial = config.model_copy(update={"exclude_nodes": tuple(config.exclude_nodes) + tuple(excluded)})
            result = run_backend(backend, source, calibration, trial, Path(tmp) / f"{name}.onnx", SILENT)
            int8_out = run_outputs(ort_session(result.path), val_inputs)
            if val_labels is not None and tolerance.max_drop is not None:
                return float((int8_out.argmax(1) == val_labels).mean() * 100), result
            return fidelity(fp32_out, int8_out)["mean_cosine"], result

        quality, best = attempt([], "full")
        report.steps.append({"excluded": [], report.metric: quality})
        if quality < report.tolerance:
            candidates = [c for c in known if c not in config.exclude_nodes and (allowed is None or c in allowed)]
            with progress.task("layer sensitivity", total=len(candidates)) as advance:
                for index, candidate in enumerate(candidates):
                    score, _ = attempt([candidate], f"sensitivity-{index}")
                    report.sensitivity.append({"layer": candidate, report.metric: score})
                    advance(1)
            ranked = sorted(report.sensitivity, key=lambda row: -row[report.metric])
            with progress.task("fallback", total=len(ranked)) as advance:
                for step, row in enumerate(ranked, start=1):
                    report.excluded.append(row["layer"])
                    quality, best = attempt(list(report.excluded), f"step-{step}")
                    report.steps.append({"excluded": list(report.excluded), report.metric: quality})
                    advance(1)
                    if quality >= report.tolerance:
                        break
        report.within_tolerance = quality >= report.tolerance
        shutil.move(best.path, output_path)
    final = dataclasses.replace(
        best, path=output_path, report={**best.report, "fallback_excluded": list(report.excluded)}
    )
    return final, report


def fallback_miss(report: FallbackReport) -> str:
    """The plain statement that the returned model is outside tolerance."""
    final = report.steps[-1][report.metric]
    return (
        f"the int8 model misses the tolerance: {report.metric} {final:.4g} < required {report.tolerance:.4g} "
        f"even with {len(report.excluded)} layer(s) kept in float"
    )
