"""The gate's footprint budgets: peak memory, cold start and first run (benchmarks/footprint.py).

The figures come from the result file (`edgeport bench --footprint -o`) or, when the gate measures the
artifact itself (--artifact), from cold starts it runs on the target's runtime. Each budget is judged
on the worst of the cold starts: a service must start within budget every time it starts, and memory
varies little from one start to the next. onnxruntime targets name their memory setting
(``cpu_mem_arena``, default true: onnxruntime's own default); a figure measured with the other setting
says nothing about the target.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeport.benchmarks.footprint import COLD_STARTS, measure_footprint
from edgeport.benchmarks.records import BenchSettings
from edgeport.benchmarks.session import create_session, model_feeds
from edgeport.errors import ConfigError
from edgeport.gate.budgets import FOOTPRINT_BUDGETS, GateTarget
from edgeport.gate.decide import Check

if TYPE_CHECKING:
    from edgeport.benchmarks.ssh_device import RemoteDevice

# budget -> (the footprint figure it reads, its unit, what it is called in a reason)
_FIGURES = {
    "max_peak_rss_mb": ("peak_rss_mb", "MB", "peak resident memory"),
    "max_cold_start_ms": ("cold_start_ms", "ms", "cold start (session creation + first run)"),
    "max_first_run_ms": ("first_inference_ms", "ms", "first run"),
}


class _Spread(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    median: float = Field(ge=0)
    min: float = Field(ge=0)
    max: float = Field(ge=0)


class _Footprint(BaseModel):
    """One footprint record as `edgeport bench --footprint` writes it; strict: strings are no figures."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)
    runtime: str
    precision: str | None = None
    cpu_mem_arena: bool | None = None
    cold_starts: int = Field(gt=0)
    peak_rss_mb: _Spread
    cold_start_ms: _Spread
    first_inference_ms: _Spread


def read_footprints(value: Any, source: str) -> list[dict[str, Any]] | None:
    """A result entry's ``footprint`` list, checked; None when the entry has none."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise ConfigError(f"{source}: field 'footprint': expected a list of footprint records")
    records = []
    for index, record in enumerate(value):
        try:
            records.append(_Footprint.model_validate(record).model_dump())
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in (index, *err["loc"]))
            raise ConfigError(f"{source}: field 'footprint.{field}': {err['msg']}") from exc
    return records


def wanted(target: GateTarget) -> list[str]:
    return [name for name in FOOTPRINT_BUDGETS if getattr(target, name) is not None]


def _setting(target: GateTarget) -> tuple[str, str | None, bool | None]:
    runtime = target.runtime_choice
    return runtime.name, runtime.precision, (target.cpu_mem_arena if runtime.name == "ort" else None)


def _describe(target: GateTarget) -> str:
    name, precision, arena = _setting(target)
    where = name + (f"/{precision}" if precision else "")
    return where + ("" if arena is None else f" with its CPU arena {'on' if arena else 'off'}")


def footprint_for(footprints: list[dict[str, Any]] | None, target: GateTarget) -> dict[str, Any] | None:
    """The record measured as ``target`` deploys: its runtime, precision hint and (onnxruntime) arena."""
    setting = _setting(target)
    return next(
        (f for f in footprints or () if (f["runtime"], f["precision"], f["cpu_mem_arena"]) == setting),
        None,
    )


def require_footprint(name: str, target: GateTarget, footprints: list[dict[str, Any]] | None, source: str) -> None:
    """Refuse, before anything is judged, footprint budgets that ``source`` has no figures for."""
    budgets = wanted(target)
    if budgets and footprint_for(footprints, target) is None:
        raise ConfigError(
            f"target {name!r} has {', '.join(budgets)}: {source} has no footprint on {_describe(target)}; "
            "measure it with `edgeport bench --footprint -o` or let the gate measure (--artifact)"
        )


def measure_for_target(
    artifact: Path, target: GateTarget, settings: BenchSettings, device: RemoteDevice | None = None
) -> list[dict[str, Any]]:
    """The artifact's footprint as ``target`` deploys it, measured now (synthetic inputs, settings' seed), here
    or on ``device``."""
    runtime, arena = target.runtime_choice, _setting(target)[2]
    feeds = model_feeds(create_session(artifact, settings), artifact, settings, None, None)
    return [measure_footprint(artifact, settings, feeds, runtime, arena, COLD_STARTS, device)]


def footprint_checks(target: GateTarget, footprints: list[dict[str, Any]] | None) -> list[Check]:
    """One check per footprint budget, on the worst cold start of the record the target deploys as."""
    record = footprint_for(footprints, target)
    checks = []
    for budget in wanted(target):
        if record is None:  # require_footprint refused this before any measurement
            raise RuntimeError(f"internal error: no footprint for {budget}")
        figure, unit, what = _FIGURES[budget]
        spread, limit = record[figure], getattr(target, budget)
        worst = spread["max"]
        reason = (
            f"{what}, worst of {record['cold_starts']} cold starts (median {spread['median']:.1f} {unit}), "
            f"{_describe(target)}"
        )
        checks.append(
            Check(budget, f"<= {limit:g} {unit}", worst, unit, None, "pass" if worst <= limit else "fail", reason)
        )
    return checks


__all__ = ["footprint_checks", "footprint_for", "measure_for_target", "read_footprints", "require_footprint", "wanted"]
