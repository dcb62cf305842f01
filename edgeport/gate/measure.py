"""Measure until conclusive: with --artifact alone the gate measures the artifact (interleaved with its fp32
reference and its baseline, when given) and, while a latency check is inconclusive, measures more rounds,
up to ``max_extra_measurements`` times, before reporting "inconclusive".
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from edgeport.benchmarks.rounds import CONFIDENCE
from edgeport.core.progress import Progress
from edgeport.gate.budgets import PERCENTILE_BUDGETS, GateTarget
from edgeport.gate.checks import evaluate_checks, require_samples
from edgeport.gate.decide import Check
from edgeport.gate.footprint_checks import wanted
from edgeport.gate.integrity import check_unchanged
from edgeport.gate.load import GateEvidence, required
from edgeport.gate.measurer import Measurer
from edgeport.gate.pool_measure import DeviceLost, PoolMeasurer
from edgeport.gate.request import GateRequest

LATENCY_CHECKS = {*PERCENTILE_BUDGETS, "max_regression", "min_speedup"}


@dataclass(frozen=True)
class Judgement:
    checks: list[Check]
    confidence: float  # per look: the 95% error split over every look the gate may take
    extra_measurements: int


def prepare_measurer(request: GateRequest, target: GateTarget, ev: GateEvidence, progress: Progress) -> Measurer | None:
    """A Measurer when the gate measures (no --result), refused now when its samples could not support a
    budget; otherwise the result's samples are checked the same way."""
    if ev.current is not None:
        require_samples(target, ev.current.samples_ms.size, ev.current.source, "measure more iterations")
        return None
    # a measurement records exactly --iterations samples
    require_samples(target, request.iterations, f"--iterations {request.iterations}", "raise --iterations")
    models = (required(request.artifact, "--artifact"), request.reference if ev.measure_reference else None)
    if request.pool is not None:  # on a device of the pool (pool_measure.py)
        return PoolMeasurer(*models, target, request, progress)
    return Measurer(*models, target, request, progress)  # validates the benchmark settings


def _first_measurement(request: GateRequest, target: GateTarget, ev: GateEvidence, measurer: Measurer) -> None:
    ev.cool_down = measurer.cool(target)  # a warm device measures a warm device's latency
    measured = measurer.measure()
    ev.current = measured["artifact"]
    if wanted(target):  # footprint budgets: cold starts of the artifact as the target deploys it
        ev.current.footprint = measurer.footprint(target)
    if "reference" in measured:
        ev.reference, ev.reference_paired = measured["reference"], measurer.paired
    ev.baseline = measured.get("baseline", ev.baseline)
    check_unchanged(request, ev, ev.current)
    require_samples(target, ev.current.samples_ms.size, ev.current.source, "measure more iterations")


def _more_samples(ev: GateEvidence, measurer: Measurer) -> None:
    more = measurer.measure()
    ev.current = required(ev.current, "the measurement").extended(more["artifact"])
    if "reference" in more:
        ev.reference = required(ev.reference, "the fp32 reference").extended(more["reference"])
    if "baseline" in more:
        ev.baseline = required(ev.baseline, "the baseline").extended(more["baseline"])


def needs_more(checks: list[Check], extra: int) -> bool:
    """Measure again while a latency check is inconclusive; confirm a failed one once (a burst of noise
    can cover a whole measurement, a real slowdown shows again)."""
    latency = [c.verdict for c in checks if c.name in LATENCY_CHECKS]
    return "inconclusive" in latency or ("fail" in latency and extra == 0)


def measure_until_conclusive(
    request: GateRequest, target: GateTarget, ev: GateEvidence, measurer: Measurer | None
) -> Judgement:
    """The checks decided on the evidence, measured first (and again, while inconclusive) when ``measurer``.
    On a device pool, a device lost after the first measurement drops everything measured there and the
    gate measures again from the start on another device."""
    read = replace(ev)  # the evidence as read from files, before any measurement
    while True:
        try:
            return _judged(request, target, ev, measurer)
        except DeviceLost as lost:
            if not isinstance(measurer, PoolMeasurer):
                raise
            measurer.progress.log(f"{lost}: measuring again from the start on another device of the pool")
            measurer.restart()
            for name in (f.name for f in fields(ev)):
                setattr(ev, name, getattr(read, name))


def _judged(request: GateRequest, target: GateTarget, ev: GateEvidence, measurer: Measurer | None) -> Judgement:
    if measurer is not None:
        _first_measurement(request, target, ev, measurer)
    # The gate may look up to 1 + max_extra_measurements times when it measures itself; splitting the
    # 5% error over those looks (Bonferroni) keeps re-measuring from passing a borderline budget by chance.
    looks = 1 + request.max_extra_measurements if measurer is not None else 1
    confidence = 1 - (1 - CONFIDENCE) / looks
    checks = evaluate_checks(target, ev, request.mode, request.seed, confidence)
    extra = 0
    while measurer is not None and extra < request.max_extra_measurements and needs_more(checks, extra):
        _more_samples(ev, measurer)
        extra += 1
        checks = evaluate_checks(target, ev, request.mode, request.seed, confidence)
    return Judgement(checks, confidence, extra)
