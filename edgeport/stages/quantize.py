"""The quantize stage: the student's fp32 ONNX to a verified int8 ONNX, calibrated on training images."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edgeport.benchmarks.records import RuntimeChoice
from edgeport.core.artifacts import sha256_file, sha256_json
from edgeport.core.progress import SILENT, Progress
from edgeport.data import calibration_subset
from edgeport.distill import KDConfig
from edgeport.errors import QuantizationError
from edgeport.exporter import OnnxLineage, write_metadata
from edgeport.quantize import ModelSource, QuantConfig, QuantResult, TrainingData, quantize
from edgeport.quantize.guard.judge import DEFAULT_MAX_DROP, GuardReport, verify_and_judge
from edgeport.quantize.strategy.auto import AutoOutcome, run_recipes
from edgeport.quantize.strategy.fallback import FallbackReport, Tolerance, quantize_with_fallback
from edgeport.quantize.strategy.recipes import AutoConfig
from edgeport.stages.data import PreparedData
from edgeport.stages.train import TrainedModel

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


def quantize_student(
    fp32_path: Path,
    student: TrainedModel,
    prepared: PreparedData,
    t_logits: np.ndarray | None,
    kd: KDConfig,
    quant_config: QuantConfig,
    out_path: Path,
    seed: int,
    lineage: OnnxLineage,
    progress: Progress = SILENT,
    runtime: RuntimeChoice | None = None,
) -> QuantizedStudent:
    """Calibrate on seeded training images; with ``max_accuracy_drop``, fall back layer by layer; verify
    against the fp32 model on val; write ``lineage`` (with the source and settings) into the file.
    ``runtime`` (``bench.runtime``): the int8 model is judged, and auto's recipes ranked, as it runs there."""
    splits = prepared.splits
    calib_idx = calibration_subset(splits.train, quant_config.calibration_samples, seed)
    training = TrainingData(
        splits.train.x, splits.train.y, splits.val.x, splits.val.y, t_logits, kd.temperature, kd.alpha, kd.loss
    )
    source = ModelSource(fp32_path, student.model, training)
    calibration, val = {"input": splits.train.x[calib_idx]}, {"input": splits.val.x}
    drop = DEFAULT_MAX_DROP if quant_config.max_accuracy_drop is None else quant_config.max_accuracy_drop
    tolerance = Tolerance(max_drop=drop)
    fallback, auto, applied = None, None, quant_config
    if isinstance(quant_config, AutoConfig):
        auto = _auto(source, calibration, val, splits.val.y, quant_config, tolerance, out_path, progress, runtime)
        assert auto.chosen is not None and auto.chosen.config is not None
        applied, result = auto.chosen.config, replace(auto.chosen.result, path=out_path)
    elif quant_config.max_accuracy_drop is None:
        result = quantize(source, calibration, quant_config, out_path, progress)
    else:
        result, fallback = quantize_with_fallback(
            source, calibration, quant_config, out_path, val, splits.val.y, tolerance, progress
        )
    settings = {"source_sha256": sha256_file(fp32_path), "backend": applied.backend}
    write_metadata(out_path, replace(lineage, kind="onnx-int8", quant=applied.short_hash(), **settings))
    judged_on = JUDGED_ON + (f"; int8 run on {runtime.label()}" if runtime and runtime.name != "ort" else "")
    verification, guard = verify_and_judge(out_path, fp32_path, val, splits.val.y, tolerance, judged_on, runtime)
    return QuantizedStudent(result, fallback, calib_idx, verification, guard, applied, auto)


def _auto(source, calibration, val, labels, auto_config, tolerance, out_path: Path, progress, runtime) -> AutoOutcome:
    """Backend "auto": the recipes of ``edgeport quantize``, judged on val; the chosen one moved to ``out_path``."""
    from edgeport.benchmarks import cpu_fingerprint

    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".auto-") as staging:
        outcome = run_recipes(
            source,
            calibration,
            val,
            labels,
            auto_config,
            tolerance,
            JUDGED_ON,
            Path(staging),
            cpu_fingerprint(),
            progress,
            runtime or RuntimeChoice(),
        )
        chosen = outcome.chosen
        if chosen is None or chosen.result is None:
            errors = "; ".join(f"{a.recipe.name}: {a.error}" for a in outcome.attempts)
            raise QuantizationError(f"{source.onnx_path}: no quantization recipe worked ({errors})")
        os.replace(chosen.result.path, out_path)
    return outcome
