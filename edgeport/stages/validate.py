"""The checks ``edgeport run`` and every search candidate pass before any data is read or folder made."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeport.benchmarks.openvino_runtime import openvino_module
from edgeport.config import RunConfig
from edgeport.errors import ConfigError
from edgeport.models import ModelSpec
from edgeport.quantize import QuantConfig, build_quant_config


@dataclass(frozen=True)
class CheckedRun:
    teacher: ModelSpec
    student: ModelSpec
    quant_config: QuantConfig | None  # None: a search candidate that ships the fp32 model
    reduce_range_reason: str = ""


def validate(config: RunConfig, cpu: dict, fp32_candidate: bool = False) -> CheckedRun:
    """Model specs resolve, fractions add up, the teacher checkpoint exists, the quantization config
    builds for ``cpu``. ``fp32_candidate``: backend ``none`` (no quantization) is accepted."""
    teacher, student = ModelSpec.parse(config.teacher.model), ModelSpec.parse(config.student.model)
    teacher.validate()
    student.validate()
    if config.data.val_fraction + config.data.test_fraction >= 1:
        raise ConfigError("data.val_fraction + data.test_fraction must be < 1")
    if config.student.kd_seeds > 1 and not config.student.no_kd_baseline:
        raise ConfigError(
            "student.kd_seeds: the KD gain over seeds compares with the no-KD baseline; do not skip it (--skip-no-kd)"
        )
    if config.bench.runtime == "openvino":  # refused now, not after minutes of training
        openvino_module()
    if config.teacher.weights is not None and not Path(config.teacher.weights).is_file():
        raise ConfigError(f"{config.teacher.weights}: teacher checkpoint not found")
    if fp32_candidate and not isinstance(config.quantize, QuantConfig):
        return CheckedRun(teacher, student, None)
    quant_config, reason = build_quant_config(config.quantize, cpu)
    return CheckedRun(teacher, student, quant_config, reason)
