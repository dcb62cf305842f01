"""The budget file (budgets.toml): one table per target, strict.

```toml
[targets.x86-avx2]
batch = 1
threads = 1
p90_ms = 1.0
max_accuracy_drop = 1.0
[targets.x86-avx2.hardware]
isa = ["avx2"]
cpu_model = "*EPYC*"
```
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgeport.benchmarks.records import ONNXRUNTIME, RuntimeChoice
from edgeport.core.json_files import refuse_special_file
from edgeport.core.project_file import read_project_file, validation_message
from edgeport.errors import ConfigError

PERCENTILE_BUDGETS = ("p50_ms", "p90_ms", "p99_ms")
TARGET_NAME = re.compile(r"^[A-Za-z0-9._-]+$")  # names appear in JUnit XML, GitHub annotations and file names
# memory and cold start, from the footprint's cold starts (gate/footprint_checks.py)
FOOTPRINT_BUDGETS = ("max_peak_rss_mb", "max_cold_start_ms", "max_first_run_ms")
CHECKS = (
    *PERCENTILE_BUDGETS,
    "max_accuracy_drop",
    "min_accuracy",
    "max_size_mb",
    "min_speedup",
    "max_regression",
    *FOOTPRINT_BUDGETS,
)


class _Strict(BaseModel):
    # allow_inf_nan=False: TOML has `inf` and `nan` literals, and `p50_ms = inf` must not pass every result
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Hardware(_Strict):
    """What the target's results must have been measured on."""

    isa: list[str] = []  # flags that must be present, e.g. ["avx2", "avx512_vnni"]
    cpu_model: str | None = None  # fnmatch pattern on the CPU model, e.g. "*Cortex-A72*"
    machine: str | None = None  # platform.machine(): x86_64, aarch64, ...
    min_logical_cores: int | None = Field(None, gt=0)


class GateTarget(_Strict):
    """One [targets.NAME] table: the settings it is measured at, its budgets, the hardware it runs on."""

    description: str | None = None
    batch: int = Field(1, gt=0)
    threads: int = Field(1, gt=0)
    # The runtime that executes the artifact on the target; results measured on another are refused. None:
    # the runtime the artifact's manifest says it ships on (`edgeport quantize` choosing it), else onnxruntime
    runtime: Literal["ort", "openvino"] | None = None
    precision: Literal["f32", "bf16", "f16"] | None = None  # openvino: inference precision hint
    p50_ms: float | None = Field(None, gt=0)
    p90_ms: float | None = Field(None, gt=0)
    p99_ms: float | None = Field(None, gt=0)
    max_accuracy_drop: float | None = Field(None, ge=0, le=100)  # points below the fp32 reference
    min_accuracy: float | None = Field(None, gt=0, le=100)  # percent
    max_size_mb: float | None = Field(None, gt=0)  # 1 MB = 10^6 bytes
    min_speedup: float | None = Field(None, gt=0)  # fp32 p50 / artifact p50
    max_regression: float | None = Field(None, gt=0, lt=10)  # relative slowdown vs a baseline: 0.10 = 10%
    max_peak_rss_mb: float | None = Field(None, gt=0)  # the serving process's peak resident memory
    max_cold_start_ms: float | None = Field(None, gt=0)  # session creation + first run, in a fresh process
    max_first_run_ms: float | None = Field(None, gt=0)  # the first run alone
    # onnxruntime's CPU memory arena as the target deploys it (its default: on); footprints only
    cpu_mem_arena: bool = True
    # Cool-down before the gate measures (gate/heat.py): the device's temperature at rest, turning it on,
    # how close to it the device must come, and for how long the gate waits
    idle_temperature_c: float | None = Field(None, gt=-50, lt=150)
    cool_down_c: float = Field(5.0, gt=0, le=100)
    cool_down_timeout_s: float = Field(300.0, gt=0, le=86400)
    hardware: Hardware = Hardware()

    @model_validator(mode="after")
    def _precision_needs_openvino(self) -> GateTarget:
        if self.precision is not None and self.runtime != "openvino":
            raise ValueError('precision is OpenVINO\'s inference precision hint: set runtime = "openvino"')
        if not self.cpu_mem_arena and self.runtime == "openvino":
            raise ValueError("cpu_mem_arena is onnxruntime's memory arena: OpenVINO has none")
        return self

    @property
    def runtime_choice(self) -> RuntimeChoice:
        """The runtime the target ships with, as the benchmarks take it (a budget file names it in two fields)."""
        return RuntimeChoice(self.runtime or ONNXRUNTIME.name, self.precision)

    def checks(self) -> list[str]:
        return [name for name in CHECKS if getattr(self, name) is not None]


class BudgetFile(_Strict):
    targets: dict[str, GateTarget]


def load_budgets(path: str | Path) -> dict[str, GateTarget]:
    path = Path(path)
    refuse_special_file(path, "budget file")
    document = read_project_file(path, "budget file")
    try:
        budgets = BudgetFile.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, str(path))) from exc
    if not budgets.targets:
        raise ConfigError(f"{path}: no targets; add a [targets.NAME] table")
    for name in budgets.targets:
        if not TARGET_NAME.match(name):
            raise ConfigError(f"{path}: target name {name!r} may only hold letters, digits, '.', '_' and '-'")
    for name, target in budgets.targets.items():
        if not target.checks():
            raise ConfigError(f"{path}: target {name!r} has no budget; give at least one of {', '.join(CHECKS)}")
    return budgets.targets


def select_target(targets: dict[str, GateTarget], name: str | None, path: str | Path) -> tuple[str, GateTarget]:
    if name is None:
        if len(targets) == 1:
            return next(iter(targets.items()))
        raise ConfigError(f"{path}: several targets ({', '.join(targets)}); choose one with --target")
    if name not in targets:
        raise ConfigError(f"{path}: unknown target {name!r}; the file defines {', '.join(targets)}")
    return name, targets[name]
