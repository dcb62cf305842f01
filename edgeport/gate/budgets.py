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

import os
import re
import stat
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeport.config import read_project_file, validation_message
from edgeport.errors import ConfigError

PERCENTILE_BUDGETS = ("p50_ms", "p90_ms", "p99_ms")
TARGET_NAME = re.compile(r"^[A-Za-z0-9._-]+$")  # names appear in JUnit XML, GitHub annotations and file names
CHECKS = (*PERCENTILE_BUDGETS, "max_accuracy_drop", "min_accuracy", "max_size_mb", "min_speedup", "max_regression")


class _Strict(BaseModel):
    # allow_inf_nan=False: TOML has `inf` and `nan` literals, and `p50_ms = inf` must not pass every result
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Hardware(_Strict):
    """What the target's results must have been measured on."""

    isa: list[str] = []  # flags that must be present, e.g. ["avx2", "avx512_vnni"]
    cpu_model: str | None = None  # fnmatch pattern on the CPU model, e.g. "*Cortex-A72*"
    machine: str | None = None  # platform.machine(): x86_64, aarch64, ...
    min_logical_cores: int | None = Field(None, gt=0)


class TargetBudget(_Strict):
    description: str | None = None
    batch: int = Field(1, gt=0)
    threads: int = Field(1, gt=0)
    p50_ms: float | None = Field(None, gt=0)
    p90_ms: float | None = Field(None, gt=0)
    p99_ms: float | None = Field(None, gt=0)
    max_accuracy_drop: float | None = Field(None, ge=0, le=100)  # points below the fp32 reference
    min_accuracy: float | None = Field(None, gt=0, le=100)  # percent
    max_size_mb: float | None = Field(None, gt=0)  # 1 MB = 10^6 bytes
    min_speedup: float | None = Field(None, gt=0)  # fp32 p50 / artifact p50
    max_regression: float | None = Field(None, gt=0, lt=10)  # relative slowdown vs a baseline: 0.10 = 10%
    hardware: Hardware = Hardware()

    def checks(self) -> list[str]:
        return [name for name in CHECKS if getattr(self, name) is not None]


class BudgetFile(_Strict):
    targets: dict[str, TargetBudget]


def load_budgets(path: str | Path) -> dict[str, TargetBudget]:
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


def refuse_special_file(path: Path, what: str) -> None:
    """Refuse a folder or a device (``/dev/zero`` would be read forever); pipes and regular files are read."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return  # the reader says "not found"
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror or exc})") from exc
    if stat.S_ISDIR(mode):
        raise ConfigError(f"{path}: the {what} is a folder; give a file")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        raise ConfigError(f"{path}: the {what} is a device, not a file")


def select_target(targets: dict[str, TargetBudget], name: str | None, path: str | Path) -> tuple[str, TargetBudget]:
    if name is None:
        if len(targets) == 1:
            return next(iter(targets.items()))
        raise ConfigError(f"{path}: several targets ({', '.join(targets)}); choose one with --target")
    if name not in targets:
        raise ConfigError(f"{path}: unknown target {name!r}; the file defines {', '.join(targets)}")
    return name, targets[name]
