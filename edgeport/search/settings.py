"""The ``[search]`` table of the project file: strategy, selection policy, budgets and the space.

The space maps dotted parameter names of the ``[run]`` settings (``student.temperature``,
``quantize.backend``, ``bench.threads``) to lists of values. Two extra kinds of name:
``student.model.<option>`` sets one option of the student's model spec (``student.model.width``),
and ``quantize.backend = "none"`` keeps the fp32 model as a candidate. ``space`` may also be a
list of such tables (``[[search.space]]``), each expanded on its own, as in scikit-learn's
``ParameterGrid``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edgeport.config import MAX_SEED, RunConfig
from edgeport.core.project_file import validation_message
from edgeport.errors import ConfigError
from edgeport.quantize import option_names

NO_QUANTIZATION = "none"
# Settings a search never varies: the baseline student is a report of `edgeport run`, not a candidate.
NOT_SEARCHABLE = {"student.no_kd_baseline", "student.kd_seeds"}
LATENCY_METRICS = ("p50", "p90", "p95", "mean")


def searchable_parameters() -> list[str]:
    names = []
    for section, info in RunConfig.model_fields.items():
        if info.exclude:  # read from another section's key (max_accuracy_drop: quantize.max_accuracy_drop)
            continue
        annotation = info.annotation
        if section == "quantize":  # typed per backend: every option some backend has
            names += [f"quantize.{option}" for option in option_names()]
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += [f"{section}.{field}" for field in annotation.model_fields]
        else:
            names.append(section)
    return [n for n in names if n not in NOT_SEARCHABLE]


_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*$")


def parse_duration(text: str | int | float) -> float:
    """Seconds from ``90``, ``"90s"``, ``"30m"``, ``"1h30m"``."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    elif re.fullmatch(r"\s*\d+(\.\d+)?\s*", str(text)):  # "90" on the command line: seconds
        seconds = float(text)
    else:
        match = _DURATION.match(str(text))
        if not match or not any(match.groups()):
            raise ConfigError(f"time budget {text!r} is not a duration such as '90s', '30m' or '1h30m'")
        hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if not 0 < seconds < float("inf"):  # NaN fails both comparisons
        raise ConfigError(f"time budget must be a positive, finite duration, got {text!r}")
    return seconds


class SearchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    strategy: Literal["grid", "random"] = "grid"
    n_iter: int | None = Field(None, gt=0)  # random: how many candidates to draw
    seed: int = Field(0, ge=0, le=MAX_SEED)  # random: the sampler's seed
    # Successive halving with training epochs as the resource: each rung trains the surviving
    # students for more epochs and keeps the best 1/halving_factor by validation accuracy.
    halving: bool = False
    halving_factor: int = Field(3, ge=2)
    halving_min_epochs: int = Field(1, gt=0)
    policy: Literal["max-accuracy", "min-latency", "weighted"] = "max-accuracy"
    latency_metric: Literal["p50", "p90", "p95", "mean"] = "p90"
    latency_budget_ms: float | None = Field(None, gt=0)
    max_accuracy_drop: float | None = Field(None, ge=0)  # points below the reference (max-accuracy)
    accuracy_reference: Literal["student", "teacher"] = "student"  # the trial's fp32 student, or the teacher
    accuracy_floor: float | None = Field(None, ge=0, le=100)  # min-latency: lowest acceptable accuracy (%)
    latency_weight: float = Field(1.0, ge=0)  # weighted: score = accuracy points - weight * latency ms
    # footprint constraints: each trial's artifact is then cold-started in fresh processes (benchmarks/
    # footprint.py) on its runtime, and a trial whose worst start exceeds one is infeasible
    max_peak_rss_mb: float | None = Field(None, gt=0)
    max_cold_start_ms: float | None = Field(None, gt=0)
    max_trials: int | None = Field(None, gt=0)
    time_budget: str | int | float | None = None
    space: dict[str, Any] | list[dict[str, Any]]

    @field_validator("time_budget")
    @classmethod
    def _duration(cls, value):
        if value is not None:
            parse_duration(value)
        return value

    def selection(self) -> dict:
        return {
            k: getattr(self, k)
            for k in (
                "policy",
                "latency_metric",
                "latency_budget_ms",
                "max_accuracy_drop",
                "accuracy_reference",
                "accuracy_floor",
                "latency_weight",
                "max_peak_rss_mb",
                "max_cold_start_ms",
            )
        }


def load_search_settings(document: dict, source: str) -> SearchSettings:
    table = document.get("search")
    if table is None:
        raise ConfigError(f"{source}: no [search] table; a search needs [search] with a [search.space]")
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: 'search' must be a table")
    if "space" not in table:
        raise ConfigError(f"{source}: [search] has no space; add [search.space] with lists of values")
    try:
        settings = SearchSettings.model_validate(table)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, source).replace("field '", "field 'search.", 1)) from exc
    if settings.strategy == "random" and settings.n_iter is None:
        raise ConfigError(f"{source}: search.strategy 'random' needs search.n_iter (how many candidates to draw)")
    if settings.strategy == "grid" and settings.n_iter is not None:
        raise ConfigError(f"{source}: search.n_iter applies to strategy 'random' only")
    if settings.policy == "min-latency" and settings.accuracy_floor is None:
        raise ConfigError(f"{source}: search.policy 'min-latency' needs search.accuracy_floor (percent)")
    return settings
