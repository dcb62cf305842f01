"""``edgeport gate``: judge one artifact against one target's budget; exit 0 pass, 1 fail, 2 bad input.

With ``--result`` the gate judges a measurement already made; with ``--artifact`` alone it measures
first (at the target's batch and threads) and, while a latency check is inconclusive, measures
more rounds, up to ``max_extra_measurements`` times, before reporting "inconclusive".

This module only orders the steps: load the evidence (edgeport.gate.load), check it belongs together
(edgeport.gate.integrity), measure until conclusive (edgeport.gate.measure), report (edgeport.gate.report).
Reading and checking alternate so that the first problem met is the one named, and everything that can be
refused is refused before the measurement (seconds to minutes) starts.
"""

from __future__ import annotations

from pathlib import Path

from edgeport.benchmarks.fingerprint import environment_fingerprint
from edgeport.core.progress import SILENT, Progress
from edgeport.errors import ConfigError
from edgeport.gate.budgets import GateTarget, load_budgets, select_target
from edgeport.gate.checks import require_inputs
from edgeport.gate.deploy import with_deployed_runtime
from edgeport.gate.footprint_checks import wanted
from edgeport.gate.heat import check_cool_down_possible
from edgeport.gate.integrity import (
    check_baseline,
    check_hardware,
    check_machines,
    check_manifest_matches,
    check_not_emulated,
    check_result_is_artifact,
)
from edgeport.gate.load import (
    check_request,
    measuring_environment,
    read_artifact_manifest,
    read_baseline,
    read_measurements,
)
from edgeport.gate.measure import measure_until_conclusive, prepare_measurer
from edgeport.gate.report import GateReport, build_report
from edgeport.gate.request import GateRequest

__all__ = ["GateRequest", "evaluate_gate", "run_gate", "target_for_settings"]


def evaluate_gate(request: GateRequest, progress: Progress = SILENT) -> GateReport:
    """The verdict on ``request`` as a typed report; raises an EdgeportError (exit 2) for input it refuses."""
    check_request(request)
    name, target = select_target(load_budgets(request.budget), request.target, request.budget)
    target, runtime_from = with_deployed_runtime(request, target)
    if request.pool is not None:
        check_pool_request(name, target, request)
    ev = read_measurements(request, target)
    check_result_is_artifact(request, ev)
    read_artifact_manifest(request, ev)
    check_manifest_matches(request, target, ev)
    require_inputs(name, target, request, ev)
    if request.pool is None:  # on a device of the pool, the hardware is known once measured (below)
        ev.environment = measuring_environment(ev)
        check_machines(name, target, request, ev)
    measurer = prepare_measurer(request, target, ev, progress)
    try:
        if measurer is not None and request.pool is None:  # a cool-down it was asked for must be checkable here
            check_cool_down_possible(name, target)
        ev.baseline = read_baseline(request, target)
        check_baseline(request, ev)
        judgement = measure_until_conclusive(request, target, ev, measurer)
    finally:
        if measurer is not None:
            measurer.close()
    if request.pool is not None and ev.current is not None:
        ev.environment = ev.current.environment
        check_hardware(name, target.hardware, ev.environment, ev.current.source)
        check_not_emulated(name, target, ev.environment, ev.current.source)
    return build_report(name, target, request, ev, judgement, runtime_from)


def check_pool_request(name: str, target: GateTarget, request: GateRequest) -> None:
    """With --pool the gate measures on one device of the pool everything it compares: no result files
    measured elsewhere."""
    if request.result is not None or request.baseline is not None:
        raise ConfigError(
            "--pool measures the artifact on a device of the pool: give --artifact (and --baseline-artifact), "
            "not --result or --baseline measured elsewhere"
        )


def run_gate(request: GateRequest, progress: Progress = SILENT) -> dict:
    """The verdict as the JSON object gate.json and ``edgeport gate --json`` hold."""
    return evaluate_gate(request, progress).as_dict()


def target_for_settings(
    budget: Path,
    name: str | None,
    batch: int,
    threads: int,
    where: str,
    remote: str | None = None,
    measures_footprint: bool = False,
) -> tuple[str, GateTarget]:
    """The target a run or search will be gated against, refused up front when it measures other settings."""
    name, target = select_target(load_budgets(budget), name, budget)
    if (target.batch, target.threads) != (batch, threads):
        raise ConfigError(
            f"{budget}: target {name!r} is for batch {target.batch}, {target.threads} thread(s), but {where} "
            f"measures batch {batch}, {threads} thread(s); set [run.bench] batch/threads to match"
        )
    if (footprint := wanted(target)) and not measures_footprint:
        raise ConfigError(
            f"{budget}: target {name!r} has {', '.join(footprint)}, which {where} does not measure; gate the "
            "artifact afterwards with `edgeport gate --artifact ...` (it measures cold starts)"
            + {
                "this run": "; or set [run.bench] cold_starts above 0",
                "this search": "; or constrain max_peak_rss_mb or max_cold_start_ms in [search] (each trial is "
                "then cold-started)",
            }.get(where, "")
        )
    if target.max_regression is not None:
        raise ConfigError(
            f"{budget}: target {name!r} has max_regression, which needs a baseline; gate it afterwards "
            "with `edgeport gate --baseline ...` or `--baseline-artifact ...`"
        )
    if remote is None:
        check_hardware(name, target.hardware, environment_fingerprint(), "this machine")
    return name, target
