"""The quantize stage: the student's fp32 ONNX to a verified int8 ONNX, calibrated on training images."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edgeport.benchmarks.records import RuntimeChoice
from edgeport.config import RunConfig
from edgeport.core.artifacts import sha256_file, sha256_json
from edgeport.core.progress import SILENT, Progress
from edgeport.data import calibration_subset
from edgeport.exporter import OnnxLineage
from edgeport.quantize.config import QuantConfig
from edgeport.quantize.guard.judge import GuardReport, Validation
from edgeport.quantize.registry import QuantResult
from edgeport.quantize.request import QuantizeRequest
from edgeport.quantize.source import ModelSource, TrainingData
from edgeport.quantize.strategy.fallback import FallbackReport
from edgeport.quantize.strategy.outcome import AutoOutcome
from edgeport.quantize.verified import quantize_verified
from edgeport.stages.data import PreparedData
from edgeport.stages.train import TrainedModel, kd_config

JUDGED_ON = "the validation split"


@dataclass(frozen=True)
class QuantizedStudent:
    result: QuantResult
    fallback: FallbackReport | None
    calibration_indices: np.ndarray
    verification: dict
    guard: GuardReport  # the tolerance verdict on val: never a silent loss
    config: QuantConfig  # what was applied: for backend "auto", the chosen recipe's config
    auto: AutoOutcome | None = None  # backend "auto": every recipe tried, and the one chosen

    def calibration(self) -> dict:
        """How it was calibrated, as the manifests record it."""
        indices = self.calibration_indices.tolist()
        return {"samples": len(indices), "split": "train", "indices_sha256": sha256_json(indices)}


@dataclass(frozen=True)
class Fp32Student:
    """The student to quantize, in both forms: its fp32 ONNX export (what the ONNX backends read, with
    the lineage its int8 model gets) and its torch model (what the torch backends and QAT read), with the
    teacher's logits QAT keeps the KD loss with (None: fine-tuned without the teacher)."""

    onnx_path: Path
    model: TrainedModel
    lineage: OnnxLineage
    teacher_logits: np.ndarray | None = None


def quantize_student(
    student: Fp32Student,
    prepared: PreparedData,
    config: RunConfig,
    quant_config: QuantConfig,
    out_path: Path,
    progress: Progress = SILENT,
) -> QuantizedStudent:
    """Calibrate on seeded training images (``config.seed``); with ``[run.quantize] max_accuracy_drop``,
    fall back layer by layer; verify against the fp32 model on val, as ``bench.runtime`` runs it
    (``quantize_verified``); write the lineage (with the source and settings) into the file.
    ``quant_config``: ``config.quantize`` with ``reduce_range`` decided (validate / the search's plan)."""
    splits = prepared.splits
    kd = kd_config(config)
    calib_idx = calibration_subset(splits.train, quant_config.calibration_samples, config.seed)
    training = TrainingData(
        splits.train.x,
        splits.train.y,
        splits.val.x,
        splits.val.y,
        student.teacher_logits,
        kd.temperature,
        kd.alpha,
        kd.loss,
    )
    tolerance = config.tolerance()
    request = QuantizeRequest(
        ModelSource(student.onnx_path, student.model.model, training),
        {"input": splits.train.x[calib_idx]},
        Validation({"input": splits.val.x}, splits.val.y, tolerance.tolerance(labelled=True), JUDGED_ON),
        quant_config,
        out_path,
        replace(student.lineage, source_sha256=sha256_file(student.onnx_path)),
        fallback=tolerance.fallback,
        runtime=RuntimeChoice(config.bench.runtime, config.bench.precision),
        # run and search measure int8 against fp32 themselves, with the release settings (latency stage)
        speed_check=False,
    )
    outcome = quantize_verified(request, progress)
    return QuantizedStudent(
        outcome.result, outcome.fallback, calib_idx, outcome.verification, outcome.guard, outcome.config, outcome.auto
    )
