"""The project file (edgeport.toml) and the settings of ``edgeport run``.

Strict: unknown keys and wrong types are errors that name the field. Command
line options override the file, which overrides these defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasPath,
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from edgeport.core.bench_defaults import RUN
from edgeport.core.project_file import ERROR_TYPE, read_project_file, validation_message
from edgeport.errors import ConfigError
from edgeport.quantize import QuantConfig, QuantSettings, ToleranceSettings, validate_project_table
from edgeport.quantize.tolerance import backend_table

# Seeds feed numpy and scikit-learn, which take 32-bit unsigned seeds.
MAX_SEED = 2**32 - 1


class _Section(BaseModel):
    # NaN and Inf are no settings: TOML accepts `nan` and `inf`, and a NaN tolerance passes every check.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class DataSection(_Section):
    name: str = "digits"
    path: str | None = None
    image_size: int = Field(32, ge=4, le=1024)
    channels: Literal[1, 3] | None = None
    val_fraction: float = Field(0.15, gt=0, lt=1)
    test_fraction: float = Field(0.15, gt=0, lt=1)


class TeacherSection(_Section):
    model: str = "cnn:width=2,depth=4"
    weights: str | None = None
    epochs: int = Field(6, gt=0)
    batch_size: int = Field(64, gt=0)
    lr: float = Field(3e-3, gt=0)


class StudentSection(_Section):
    # Two blocks: too shallow to see a whole digit by itself, so the teacher's soft targets teach it what
    # plain cross-entropy does not (about +10 points on digits); one wide convolution (64 -> 128 channels)
    # does most of its work, which is where int8 kernels pay.
    model: str = "cnn:width=4,depth=2"
    epochs: int = Field(6, gt=0)
    batch_size: int = Field(64, gt=0)
    lr: float = Field(3e-3, gt=0)
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.9, ge=0, le=1)
    # standardized: logits z-scored before the temperature (distill/loss.py); hinton: the 2015 loss as is
    kd_loss: Literal["standardized", "hinton"] = "standardized"
    no_kd_baseline: bool = True
    # KD gain with an interval: train the KD and no-KD students on this many seeds (run/kd_gain.py)
    kd_seeds: int = Field(1, ge=1, le=50)


class ExportSection(_Section):
    exporter: Literal["dynamo", "torchscript"] = "dynamo"


class BenchSection(_Section):
    batch: int = Field(1, gt=0)
    threads: int = Field(1, gt=0)
    warmup: int = Field(RUN.warmup, ge=0)
    iterations: int = Field(RUN.iterations, gt=0)
    rounds: int = Field(RUN.rounds, gt=0)
    # The runtime the artifact ships with (a search dimension: "bench.runtime" = ["ort", "openvino"])
    runtime: Literal["ort", "openvino"] = "ort"
    precision: Literal["f32", "bf16", "f16"] | None = None  # openvino: its inference precision hint
    # `edgeport run`: the artifacts' memory and cold start, this many fresh processes each (0: not measured)
    cold_starts: int = Field(3, ge=0, le=100)

    @model_validator(mode="after")
    def _precision_needs_openvino(self) -> BenchSection:
        if self.precision is not None and self.runtime != "openvino":
            raise ValueError('precision is OpenVINO\'s inference precision hint: set bench.runtime = "openvino"')
        return self


class RunConfig(_Section):
    seed: int = Field(0, ge=0, le=MAX_SEED)
    data: DataSection = DataSection()
    teacher: TeacherSection = TeacherSection()
    student: StudentSection = StudentSection()
    export: ExportSection = ExportSection()
    # Typed per backend (quantize.config): validated lazily, so importing this module stays light.
    quantize: SerializeAsAny[QuantSettings] = Field(default_factory=lambda: validate_project_table({}))
    bench: BenchSection = BenchSection()
    # [run.quantize] max_accuracy_drop: the guard's tolerance (and the fallback), not a backend setting.
    # Read from the quantize table, where users set it (and the search varies it), kept here, and written
    # back there by model_dump, so that dumps, stored searches and cache keys keep their form.
    max_accuracy_drop: float | None = Field(
        None, ge=0, validation_alias=AliasPath("quantize", "max_accuracy_drop"), exclude=True
    )

    @field_validator("quantize", mode="wrap")
    @classmethod
    def _typed_quantize(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> QuantSettings:
        return validate_project_table(backend_table(value) if isinstance(value, Mapping) else value)

    @field_validator("max_accuracy_drop", mode="wrap")
    @classmethod
    def _tolerance_key(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> float | None:
        try:
            checked: float | None = handler(value)
        except ValidationError as exc:  # worded as the quantize table's other options are
            message = f"quantization max_accuracy_drop: {exc.errors()[0]['msg']} (got {value!r})"
            raise PydanticCustomError(ERROR_TYPE, message.replace("{", "{{").replace("}", "}}")) from None
        return checked

    @model_serializer(mode="wrap")
    def _tolerance_in_quantize_table(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped: dict[str, Any] = handler(self)
        if isinstance(dumped.get("quantize"), dict) and isinstance(self.quantize, QuantConfig):
            dumped["quantize"] = {**dumped["quantize"], "max_accuracy_drop": self.max_accuracy_drop}
        return dumped

    def tolerance(self) -> ToleranceSettings:
        """The guard's tolerance as set ([run.quantize] max_accuracy_drop, else the default)."""
        return ToleranceSettings(max_accuracy_drop=self.max_accuracy_drop)


def _merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


PROJECT_TABLES = ("run", "search")  # [search] is read by edgeport.search.settings


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Defaults, then the project file's ``[run]`` settings, then ``overrides`` (nested dicts)."""
    data: dict[str, Any] = {}
    source = "configuration"
    if path is not None:
        path = Path(path)
        source = str(path)
        document = read_project_file(path)
        unknown = sorted(set(document) - set(PROJECT_TABLES))
        if unknown:
            raise ConfigError(f"{path}: unknown table(s) {', '.join(unknown)}; expected {', '.join(PROJECT_TABLES)}")
        data = document.get("run", {})
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: 'run' must be a table")
    if overrides:
        data = _merge(data, overrides)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, source)) from exc
