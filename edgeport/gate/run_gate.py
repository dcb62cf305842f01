"""``edgeport gate``: judge one artifact against one target's budget; exit 0 pass, 1 fail, 2 bad input.

With ``--result`` the gate judges a measurement already made; with ``--artifact`` alone it measures
first (at the target's batch and threads) and, while a latency check is inconclusive, measures
more rounds, up to ``max_extra_measurements`` times, before reporting "inconclusive".
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edgeport.artifacts import sha256_file
from edgeport.benchmarks.latency import BenchSettings, measure_interleaved
from edgeport.errors import ArtifactError, ConfigError
from edgeport.gate.budgets import PERCENTILE_BUDGETS, Hardware, TargetBudget, load_budgets, select_target
from edgeport.gate.decide import (Check, accuracy_drop_check, min_accuracy_check, needed_samples, percentile_check,
                                  regression_check, size_check, speedup_check)
from edgeport.gate.evidence import ArtifactFacts, Measurement, find_manifest, read_manifest, read_result
from edgeport.gate.rounds import rounds_of
from edgeport.progress import SILENT, Progress

MODES = ("ci", "point")
LATENCY_CHECKS = {*PERCENTILE_BUDGETS, "max_regression", "min_speedup"}


@dataclass
class GateRequest:
    budget: Path
    target: str | None = None
    result: Path | None = None
    artifact: Path | None = None
    manifest: Path | None = None
    baseline: Path | None = None
    baseline_artifact: Path | None = None  # the previous release's ONNX, measured interleaved with --artifact
    reference: Path | None = None      # fp32 ONNX to measure beside --artifact for min_speedup
    reference_result: Path | None = None  # or a result file whose measurement is the fp32 reference
    mode: str = "ci"
    allow_inconclusive: bool = False
    max_extra_measurements: int = 3
    warmup: int = 100
    iterations: int = 2000
    rounds: int = 10
    seed: int = 0


def check_hardware(name: str, expected: Hardware, environment: dict, source: str) -> None:
    """Refuse a result measured on hardware the target does not describe, naming what differs."""
    cpu = environment.get("cpu", {})
    have = {flag.lower() for flag in cpu.get("isa", [])}
    missing = [flag for flag in expected.isa if flag.lower() not in have]
    if missing:
        raise ConfigError(f"{source}: measured on a CPU without {', '.join(missing)} (it has {', '.join(sorted(have)) or 'none'}), "
                          f"but target {name!r} expects {', '.join(expected.isa)}")
    model = str(cpu.get("model", ""))
    if expected.cpu_model and not fnmatch.fnmatch(model.lower(), expected.cpu_model.lower()):
        raise ConfigError(f"{source}: measured on CPU {model!r}, but target {name!r} expects cpu_model {expected.cpu_model!r}")
    if expected.machine and cpu.get("machine") != expected.machine:
        raise ConfigError(f"{source}: measured on machine {cpu.get('machine')!r}, but target {name!r} expects "
                          f"{expected.machine!r}")
    cores = cpu.get("logical_cores")
    if expected.min_logical_cores and (cores is None or cores < expected.min_logical_cores):
        raise ConfigError(f"{source}: measured with {cores} logical cores, but target {name!r} expects at least "
                          f"{expected.min_logical_cores}")


def _same_machine(current: Measurement, baseline: Measurement) -> None:
    a, b = current.environment.get("cpu", {}), baseline.environment.get("cpu", {})
    for key in ("model", "machine", "logical_cores"):
        if a.get(key) != b.get(key):
            raise ConfigError(f"{baseline.source}: the baseline was measured on another machine ({key} {b.get(key)!r} "
                              f"vs {a.get(key)!r}); a regression check needs both on the same hardware")


class _Measurer:
    """Measures the artifact (and the fp32 reference) interleaved; later calls add more samples."""

    def __init__(self, artifact: Path, reference: Path | None, target: TargetBudget, request: GateRequest,
                 progress: Progress) -> None:
        self.models = {"artifact": str(artifact)} | ({"reference": str(reference)} if reference else {}) \
            | ({"baseline": str(request.baseline_artifact)} if request.baseline_artifact else {})
        self.settings = BenchSettings(batch=target.batch, threads=target.threads, warmup=request.warmup,
                                      iterations=request.iterations, rounds=request.rounds, seed=request.seed)
        self.progress = progress
        self.count = 0

    def measure(self) -> dict[str, Measurement]:
        self.count += 1
        settings = replace(self.settings, seed=self.settings.seed + self.count - 1)
        with self.progress.task(f"gate measurement {self.count}", total=settings.rounds) as advance:
            results = measure_interleaved(self.models, settings, None, advance)
        return {label: Measurement(rounds_of(np.asarray(r.samples_ms, dtype=np.float64), r.settings), r.settings,
                                   r.environment, r.model_sha256, r.model_path, "measured now")
                for label, r in results.items()}


def _accuracy_split(facts: ArtifactFacts, need_fp32: bool) -> tuple[str, dict] | None:
    for split in ("test", "validation file", "val"):
        entry = facts.accuracy.get(split)
        if entry and entry.get("artifact") is not None and (not need_fp32 or entry.get("fp32") is not None):
            return split, entry
    return None


def _evaluate(target: TargetBudget, current: Measurement, reference: Measurement | None, baseline: Measurement | None,
              facts: ArtifactFacts | None, size_bytes: int | None, mode: str, seed: int,
              paired: bool = False) -> list[Check]:
    checks: list[Check] = []
    for name in PERCENTILE_BUDGETS:
        if getattr(target, name) is not None:
            checks.append(percentile_check(name, getattr(target, name), current.rounds, mode, seed))
    if target.min_speedup is not None:
        checks.append(speedup_check(current.rounds, reference.rounds, target.min_speedup, mode, seed))
    if target.max_regression is not None:
        checks.append(regression_check(current.rounds, baseline.rounds, target.max_regression, mode, seed, paired))
    if target.max_accuracy_drop is not None:
        split, entry = _accuracy_split(facts, need_fp32=True)
        checks.append(accuracy_drop_check(entry["artifact"], entry["fp32"], split, target.max_accuracy_drop))
    if target.min_accuracy is not None:
        split, entry = _accuracy_split(facts, need_fp32=False)
        checks.append(min_accuracy_check(entry["artifact"], split, target.min_accuracy))
    if target.max_size_mb is not None:
        checks.append(size_check(size_bytes, target.max_size_mb))
    return checks


def _require_inputs(name: str, target: TargetBudget, request: GateRequest, reference, facts, size_bytes) -> None:
    if target.max_regression is not None and request.baseline is None and request.baseline_artifact is None:
        raise ConfigError(f"target {name!r} has max_regression: give --baseline previous-result.json "
                          "(or --baseline-artifact previous.onnx with --artifact)")
    if target.min_speedup is not None and reference is None:
        raise ConfigError(f"target {name!r} has min_speedup: it needs the fp32 latency (a run's latency.json, an "
                          "`edgeport bench A --vs FP32` result, or --reference fp32.onnx with --artifact)")
    for check, need_fp32 in (("max_accuracy_drop", True), ("min_accuracy", False)):
        if getattr(target, check) is not None and (facts is None or _accuracy_split(facts, need_fp32) is None):
            raise ConfigError(f"target {name!r} has {check}: it needs the artifact's manifest with "
                              f"{'int8 and fp32 accuracies' if need_fp32 else 'its accuracy'} (pass --manifest)")
    if target.max_size_mb is not None and size_bytes is None:
        raise ConfigError(f"target {name!r} has max_size_mb: give --artifact or the artifact's manifest")


def _needs_more(checks: list[Check], extra: int) -> bool:
    """Measure again while a latency check is inconclusive; confirm a failed one once (a burst of noise
    can cover a whole measurement, a real slowdown shows again)."""
    latency = [c.verdict for c in checks if c.name in LATENCY_CHECKS]
    return "inconclusive" in latency or ("fail" in latency and extra == 0)


def run_gate(request: GateRequest, progress: Progress = SILENT) -> dict:
    if request.mode not in MODES:
        raise ConfigError(f"--mode must be one of {', '.join(MODES)}, got {request.mode!r}")
    if request.result is None and request.artifact is None:
        raise ConfigError("edgeport gate needs --result RESULT.json or --artifact MODEL.onnx")
    if request.baseline_artifact is not None:
        if request.result is not None or request.baseline is not None:
            raise ConfigError("--baseline-artifact is measured here beside --artifact: use it without --result "
                              "and --baseline")
        if not Path(request.baseline_artifact).is_file():
            raise ConfigError(f"{request.baseline_artifact}: baseline artifact not found")
    name, target = select_target(load_budgets(request.budget), request.target, request.budget)
    artifact_sha = None
    if request.artifact is not None:
        if not Path(request.artifact).is_file():
            raise ConfigError(f"{request.artifact}: artifact not found")
        artifact_sha = sha256_file(request.artifact)
    if request.reference is not None and not Path(request.reference).is_file():
        raise ConfigError(f"{request.reference}: reference model not found")

    measurer = None
    if request.result is not None:
        current, reference = read_result(request.result, target.batch, target.threads)
    else:
        measurer = _Measurer(request.artifact, request.reference if target.min_speedup is not None else None,
                             target, request, progress)
        measured = measurer.measure()
        current, reference = measured["artifact"], measured.get("reference")
        baseline = measured.get("baseline")

    if reference is None and request.reference_result is not None:
        reference = read_result(request.reference_result, target.batch, target.threads)[0]
    if artifact_sha is not None and current.model_sha256 != artifact_sha:
        raise ArtifactError(f"{request.result}: measured a different file (sha256 {current.model_sha256[:12]}...) than "
                            f"{request.artifact} (sha256 {artifact_sha[:12]}...); refusing to gate it")
    manifest_path = request.manifest or find_manifest(request.result, str(request.artifact or current.model_path))
    facts = read_manifest(manifest_path) if manifest_path is not None else None
    if facts is not None and facts.sha256 != current.model_sha256:
        raise ArtifactError(f"{manifest_path}: describes an artifact with sha256 {facts.sha256[:12]}..., but the result "
                            f"measured sha256 {current.model_sha256[:12]}...; refusing to gate a different file")
    size_bytes = Path(request.artifact).stat().st_size if request.artifact else (facts.size_bytes if facts else None)
    _require_inputs(name, target, request, reference, facts, size_bytes)
    check_hardware(name, target.hardware, current.environment, str(request.result or "this machine"))
    for budget in PERCENTILE_BUDGETS:
        if getattr(target, budget) is not None and current.samples_ms.size < needed_samples(budget):
            raise ConfigError(f"{current.source}: {current.samples_ms.size} samples cannot support a {budget[:3]} "
                              f"budget (needs at least {needed_samples(budget)}); measure more iterations")
    paired = request.baseline_artifact is not None
    if not paired:
        baseline = None
    if request.baseline is not None:
        baseline = read_result(request.baseline, target.batch, target.threads)[0]
        _same_machine(current, baseline)

    checks = _evaluate(target, current, reference, baseline, facts, size_bytes, request.mode, request.seed, paired)
    extra = 0
    while measurer is not None and extra < request.max_extra_measurements and _needs_more(checks, extra):
        more = measurer.measure()
        current = current.extended(more["artifact"])
        if reference is not None:
            reference = reference.extended(more["reference"])
        if paired:
            baseline = baseline.extended(more["baseline"])
        extra += 1
        checks = _evaluate(target, current, reference, baseline, facts, size_bytes, request.mode, request.seed, paired)

    verdicts = {c.verdict for c in checks}
    verdict = "fail" if "fail" in verdicts else ("inconclusive" if "inconclusive" in verdicts else "pass")
    passed = verdict == "pass" or (verdict == "inconclusive" and request.allow_inconclusive)
    return {"target": name, "description": target.description, "verdict": verdict, "passed": passed,
            "mode": request.mode, "allow_inconclusive": request.allow_inconclusive,
            "checks": [c.describe() for c in checks],
            "artifact": {"sha256": current.model_sha256, "path": str(request.artifact or current.model_path),
                         "size_bytes": size_bytes, "manifest": str(manifest_path) if manifest_path else None},
            "samples": int(current.samples_ms.size), "extra_measurements": extra,
            "settings": {"batch": target.batch, "threads": target.threads},
            "sources": {"result": str(request.result) if request.result else "measured now",
                        "baseline": str(request.baseline or request.baseline_artifact or "") or None,
                        "baseline_interleaved": paired,
                        "budget": str(request.budget)},
            "environment": current.environment}


def target_for_settings(budget: Path, name: str | None, batch: int, threads: int, where: str) -> tuple[str, TargetBudget]:
    """The target a run or search will be gated against, refused up front when it measures other settings."""
    name, target = select_target(load_budgets(budget), name, budget)
    if (target.batch, target.threads) != (batch, threads):
        raise ConfigError(f"{budget}: target {name!r} is for batch {target.batch}, {target.threads} thread(s), but {where} "
                          f"measures batch {batch}, {threads} thread(s); set [run.bench] batch/threads to match")
    return name, target
