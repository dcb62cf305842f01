"""The records of one ``edgeport run``: each built once, by one step of the pipeline, and frozen.

``RunInputs`` (the checked configuration and the prepared data) -> ``TrainedStudents`` (the train
step) -> ``BuiltModels`` (the export and quantize steps) -> ``Measurements`` (accuracy and latency)
-> ``RunResult``, the four together: what the manifest and the report are made of. A field is
Optional only where the run itself may lack it (the no-KD baseline, skipped by ``--skip-no-kd``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeport.config import RunConfig
from edgeport.exporter import ExportResult
from edgeport.quantize import QuantConfig
from edgeport.run.kd_gain import KDGain
from edgeport.run.select import StudentChoice
from edgeport.stages import CheckedRun, PreparedData, QuantizedStudent, TrainedModel


@dataclass(frozen=True)
class RunInputs:
    """What a run starts from, checked before any training."""

    config: RunConfig
    checked: CheckedRun
    quant_config: QuantConfig  # checked.quant_config: a run always quantizes
    prepared: PreparedData
    warnings: tuple[str, ...]  # the CPU's saturation risk, the data's label mapping


@dataclass(frozen=True)
class TrainedStudents:
    """The train step: the teacher, its logits, the distilled student and its no-KD twin."""

    teacher: TrainedModel
    teacher_logits: np.ndarray  # on the training split; QAT reuses them
    logits_cache_hit: bool
    student: TrainedModel
    baseline: TrainedModel | None  # None: skipped (--skip-no-kd)
    shipped: TrainedModel  # the student exported: the KD one, or the baseline when better on val
    choice: StudentChoice
    kd_gain: KDGain | None  # with student.kd_seeds > 1: the KD gain over seeds


@dataclass(frozen=True)
class BuiltModels:
    """The export and quantize steps: the shipped student as fp32 and int8 ONNX."""

    export: ExportResult
    quantized: QuantizedStudent
    warnings: tuple[str, ...]  # a layer-by-layer fallback that missed its tolerance


@dataclass(frozen=True)
class Measurements:
    """Every model's accuracy on val and test, and the interleaved latency of fp32 vs int8."""

    accuracies: dict
    latency: dict  # "fp32" / "int8" (and the other runtimes' labels) -> the benchmark result
    runtimes: dict  # every installed runtime's latency and accuracy, the fastest faithful one
    footprint: dict | None = None  # "fp32" / "int8" -> memory and cold start on the run's runtime (footprint.py)


@dataclass(frozen=True)
class RunResult:
    """A whole run: the inputs of its manifest and report."""

    inputs: RunInputs
    trained: TrainedStudents
    built: BuiltModels
    measured: Measurements

    @property
    def warnings(self) -> list[str]:
        return [*self.inputs.warnings, *self.built.warnings]
