"""The checks a target's budget calls for: refused up front when their evidence will be missing or too
thin, then decided (edgeport.gate.decide) from the evidence gathered."""

from __future__ import annotations

from edgeport.errors import ConfigError
from edgeport.gate.budgets import PERCENTILE_BUDGETS, GateTarget
from edgeport.gate.decide import (
    Check,
    accuracy_drop_check,
    min_accuracy_check,
    needed_samples,
    percentile_check,
    regression_check,
    size_check,
    speedup_check,
)
from edgeport.gate.footprint_checks import footprint_checks, require_footprint
from edgeport.gate.heat import throttled_check
from edgeport.gate.load import GateEvidence, required
from edgeport.gate.request import GateRequest


def require_inputs(name: str, target: GateTarget, request: GateRequest, ev: GateEvidence) -> None:
    """Refuse, before any measurement, a check whose evidence will not be there."""
    if target.max_regression is not None and request.baseline is None and request.baseline_artifact is None:
        raise ConfigError(
            f"target {name!r} has max_regression: give --baseline previous-result.json "
            "(or --baseline-artifact previous.onnx with --artifact)"
        )
    if target.min_speedup is not None and ev.reference is None and not ev.measure_reference:
        raise ConfigError(
            f"target {name!r} has min_speedup: it needs the fp32 latency (a run's latency.json, an "
            "`edgeport bench A --vs FP32` result, or --reference fp32.onnx with --artifact)"
        )
    for check, need_fp32 in (("max_accuracy_drop", True), ("min_accuracy", False)):
        if getattr(target, check) is not None and (ev.facts is None or ev.facts.accuracy_split(need_fp32) is None):
            raise ConfigError(
                f"target {name!r} has {check}: it needs the artifact's manifest with "
                f"{'int8 and fp32 accuracies' if need_fp32 else 'its accuracy'} (pass --manifest)"
            )
    if target.max_size_mb is not None and ev.size_bytes is None:
        raise ConfigError(f"target {name!r} has max_size_mb: give --artifact or the artifact's manifest")
    if ev.current is not None:  # a result file: its footprint must be there (the gate measures its own otherwise)
        require_footprint(name, target, ev.current.footprint, ev.current.source)


def require_samples(target: GateTarget, count: int, source: str, remedy: str) -> None:
    """Refuse a percentile budget that ``count`` latency samples cannot support."""
    for budget in PERCENTILE_BUDGETS:
        if getattr(target, budget) is not None and count < needed_samples(budget):
            raise ConfigError(
                f"{source}: {count} samples cannot support a {budget[:3]} budget (needs at least "
                f"{needed_samples(budget)}); {remedy}"
            )


def _latency_checks(target: GateTarget, ev: GateEvidence, mode: str, seed: int, confidence: float) -> list[Check]:
    current = required(ev.current, "the measurement")
    checks = [
        percentile_check(name, getattr(target, name), current.rounds, mode, seed, confidence)
        for name in PERCENTILE_BUDGETS
        if getattr(target, name) is not None
    ]
    if target.min_speedup is not None:
        reference = required(ev.reference, "the fp32 reference")
        checks.append(
            speedup_check(
                current.rounds, reference.rounds, target.min_speedup, mode, seed, ev.reference_paired, confidence
            )
        )
    if target.max_regression is not None:
        baseline = required(ev.baseline, "the baseline")
        checks.append(
            regression_check(
                current.rounds, baseline.rounds, target.max_regression, mode, seed, ev.baseline_paired, confidence
            )
        )
    return checks


def _accuracy(ev: GateEvidence, need_fp32: bool) -> tuple[str, float, float | None]:
    """The split, the artifact's accuracy and (when ``need_fp32``, always) the fp32 model's."""
    found = ev.facts.accuracy_split(need_fp32) if ev.facts is not None else None
    split, entry = required(found, "the accuracies" if need_fp32 else "the accuracy")
    return split, required(entry.artifact, "the accuracy"), entry.fp32


def evaluate_checks(target: GateTarget, ev: GateEvidence, mode: str, seed: int, confidence: float) -> list[Check]:
    """Every check the target has: latency (percentiles, speed-up, regression), accuracy, size, footprint."""
    checks = _latency_checks(target, ev, mode, seed, confidence)
    if target.max_accuracy_drop is not None:
        split, accuracy, fp32 = _accuracy(ev, need_fp32=True)
        checks.append(
            accuracy_drop_check(accuracy, required(fp32, "the fp32 accuracy"), split, target.max_accuracy_drop)
        )
    if target.min_accuracy is not None:
        split, accuracy, _ = _accuracy(ev, need_fp32=False)
        checks.append(min_accuracy_check(accuracy, split, target.min_accuracy))
    if target.max_size_mb is not None:
        checks.append(size_check(required(ev.size_bytes, "the artifact size"), target.max_size_mb))
    current = required(ev.current, "the measurement")
    heat = ([ev.cool_down] if ev.cool_down else []) + throttled_check(current.sustained)
    return checks + footprint_checks(target, current.footprint) + heat
