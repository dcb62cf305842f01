"""The quantize stage: the student's fp32 ONNX to a verified int8 ONNX, calibrated on training images."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edgeport.artifacts import sha256_file, sha256_json
from edgeport.data import calibration_subset
from edgeport.distill import KDConfig
from edgeport.exporter import OnnxLineage, write_metadata
from edgeport.progress import SILENT, Progress
from edgeport.quant_backends import ModelSource, QuantConfig, QuantResult, TrainingData, quantize
from edgeport.quant_backends.fallback import FallbackReport, Tolerance, quantize_with_fallback
from edgeport.quant_backends.guard import DEFAULT_MAX_DROP, GuardReport, verify_and_judge
from edgeport.stages.data import PreparedData
from edgeport.stages.train import TrainedModel


@dataclass(frozen=True)
class QuantizedStudent:
    result: QuantResult
    fallback: FallbackReport | None
    calibration_indices: np.ndarray
    verification: dict
    guard: GuardReport  # the tolerance verdict on val: never a silent loss

    def calibration(self) -> dict:
        """How it was calibrated, as the manifests record it."""
        indices = self.calibration_indices.tolist()
        return {"samples": len(indices), "split": "train", "indices_sha256": sha256_json(indices)}


def quantize_student(
    fp32_path: Path,
    student: TrainedModel,
    prepared: PreparedData,
    t_logits: np.ndarray,
    kd: KDConfig,
    quant_config: QuantConfig,
    out_path: Path,
    seed: int,
    lineage: OnnxLineage,
    progress: Progress = SILENT,
) -> QuantizedStudent:
    """Calibrate on seeded training images; with ``max_accuracy_drop``, fall back layer by layer; verify
    against the fp32 model on val; write ``lineage`` (with the source and settings) into the file."""
    splits = prepared.splits
    calib_idx = calibration_subset(splits.train, quant_config.calibration_samples, seed)
    training = TrainingData(
        splits.train.x, splits.train.y, splits.val.x, splits.val.y, t_logits, kd.temperature, kd.alpha
    )
    source = ModelSource(fp32_path, student.model, training)
    calibration = {"input": splits.train.x[calib_idx]}
    fallback = None
    if quant_config.max_accuracy_drop is None:
        result = quantize(source, calibration, quant_config, out_path, progress)
    else:
        val = {"input": splits.val.x}
        tolerance = Tolerance(max_drop=quant_config.max_accuracy_drop)
        result, fallback = quantize_with_fallback(
            source, calibration, quant_config, out_path, val, splits.val.y, tolerance, progress
        )
    settings = {"source_sha256": sha256_file(fp32_path), "backend": quant_config.backend}
    write_metadata(out_path, replace(lineage, kind="onnx-int8", quant=quant_config.short_hash(), **settings))
    drop = DEFAULT_MAX_DROP if quant_config.max_accuracy_drop is None else quant_config.max_accuracy_drop
    verification, guard = verify_and_judge(
        out_path, fp32_path, {"input": splits.val.x}, splits.val.y, Tolerance(max_drop=drop), "the validation split"
    )
    return QuantizedStudent(result, fallback, calib_idx, verification, guard)
