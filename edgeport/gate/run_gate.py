"""``edgeport gate``: judge one artifact against one target's budget; exit 0 pass, 1 fail, 2 bad input.

With ``--result`` the gate judges a measurement already made; with ``--artifact`` alone it measures
first (at the target's batch and threads) and, while a latency check is inconclusive, measures
more rounds, up to ``max_extra_measurements`` times, before reporting "inconclusive".
"""

from __future__ import annotations

import fnmatch
import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np

from edgeport.artifacts import sha256_file
from edgeport.benchmarks.latency import BenchSettings, measure_interleaved
from edgeport.benchmarks.rounds import rounds_of
from edgeport.benchmarks.stats import CONFIDENCE
from edgeport.errors import ArtifactError, ConfigError
from edgeport.gate.budgets import PERCENTILE_BUDGETS, Hardware, TargetBudget, load_budgets, select_target
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
from edgeport.gate.evidence import ArtifactFacts, Measurement, find_manifest, read_manifest, read_result
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
    reference: Path | None = None  # fp32 ONNX to measure beside --artifact for min_speedup
    reference_result: Path | None = None  # or a result file whose measurement is the fp32 reference
    mode: str = "ci"
    allow_inconclusive: bool = False
    max_extra_measurements: int = 3
    warmup: int = 100
    iterations: int = 2000
    rounds: int = 10
    seed: int = 0
    # Files the caller writes after the verdict: refused before anything is read or measured when one is
    # an input of the gate (same file after resolving links) or cannot be written.
    junit: Path | None = None
    step_summary: Path | None = None  # $GITHUB_STEP_SUMMARY with --github (appended to)

    def inputs(self) -> list[tuple[str, Path]]:
        named = [
            ("--budget", self.budget),
            ("--result", self.result),
            ("--artifact", self.artifact),
            ("--manifest", self.manifest),
            ("--baseline", self.baseline),
            ("--baseline-artifact", self.baseline_artifact),
            ("--reference", self.reference),
            ("the reference result", self.reference_result),
        ]
        return [(what, Path(path)) for what, path in named if path is not None]


def check_hardware(name: str, expected: Hardware, environment: dict, source: str) -> None:
    """Refuse a result measured on hardware the target does not describe, naming what differs."""
    cpu = environment.get("cpu", {})
    have = {flag.lower() for flag in cpu.get("isa", [])}
    missing = [flag for flag in expected.isa if flag.lower() not in have]
    if missing:
        raise ConfigError(
            f"{source}: measured on a CPU without {', '.join(missing)} (it has {', '.join(sorted(have)) or 'none'}), "
            f"but target {name!r} expects hardware.isa {', '.join(expected.isa)}"
        )
    model = str(cpu.get("model", ""))
    if expected.cpu_model and not fnmatch.fnmatch(model.lower(), expected.cpu_model.lower()):
        raise ConfigError(
            f"{source}: measured on CPU {model!r}, but target {name!r} expects hardware.cpu_model "
            f"{expected.cpu_model!r}"
        )
    if expected.machine and cpu.get("machine") != expected.machine:
        raise ConfigError(
            f"{source}: measured on machine {cpu.get('machine')!r}, but target {name!r} expects "
            f"hardware.machine {expected.machine!r}"
        )
    cores = cpu.get("logical_cores")
    if expected.min_logical_cores and (cores is None or cores < expected.min_logical_cores):
        raise ConfigError(
            f"{source}: measured with {cores} logical cores, but target {name!r} expects "
            f"hardware.min_logical_cores {expected.min_logical_cores}"
        )


def _same_machine(
    environment: dict, other: Measurement, role: str = "baseline", check: str = "a regression check"
) -> None:
    """``environment``: where the current measurement was (or is about to be) taken."""
    a, b = environment.get("cpu", {}), other.environment.get("cpu", {})
    for key in ("model", "machine", "logical_cores"):
        if a.get(key) != b.get(key):
            raise ConfigError(
                f"{other.source}: the {role} was measured on another machine ({key} {b.get(key)!r} "
                f"vs {a.get(key)!r}); {check} needs both on the same hardware"
            )


def _require_file(path: Path, what: str) -> None:
    """A regular file this user can see, or a one-line ConfigError (never a PermissionError traceback)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: {what} not found") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from exc
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{path}: the {what} is not a regular file")


def _sha256(path: Path, what: str) -> str:
    try:
        return sha256_file(path)
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from exc


class _Measurer:
    """Measures the artifact (and the fp32 reference) interleaved; later calls add more samples."""

    def __init__(
        self, artifact: Path, reference: Path | None, target: TargetBudget, request: GateRequest, progress: Progress
    ) -> None:
        self.models = (
            {"artifact": str(artifact)}
            | ({"reference": str(reference)} if reference else {})
            | ({"baseline": str(request.baseline_artifact)} if request.baseline_artifact else {})
        )
        self.settings = BenchSettings(
            batch=target.batch,
            threads=target.threads,
            warmup=request.warmup,
            iterations=request.iterations,
            rounds=request.rounds,
            seed=request.seed,
        )
        self.progress = progress
        self.count = 0

    def measure(self) -> dict[str, Measurement]:
        self.count += 1
        settings = replace(self.settings, seed=self.settings.seed + self.count - 1)
        with self.progress.task(f"gate measurement {self.count}", total=settings.rounds) as advance:
            results = measure_interleaved(self.models, settings, None, advance)
        return {
            label: Measurement(
                rounds_of(np.asarray(r.samples_ms, dtype=np.float64), r.settings),
                r.settings,
                r.environment,
                r.model_sha256,
                r.model_path,
                "measured now",
            )
            for label, r in results.items()
        }


T = TypeVar("T")


def _required(value: T | None, what: str) -> T:
    """Evidence that _require_inputs proved present before any measurement: None here is a bug."""
    if value is None:
        raise RuntimeError(f"internal error: {what} is missing after the up-front checks")
    return value


def _accuracy_split(facts: ArtifactFacts | None, need_fp32: bool) -> tuple[str, dict] | None:
    if facts is None:
        return None
    for split in ("test", "validation file", "val"):
        entry = facts.accuracy.get(split)
        if entry and entry.get("artifact") is not None and (not need_fp32 or entry.get("fp32") is not None):
            return split, entry
    return None


@dataclass
class _Evidence:
    current: Measurement
    reference: Measurement | None
    reference_paired: bool  # measured interleaved with the artifact
    baseline: Measurement | None
    baseline_paired: bool
    facts: ArtifactFacts | None
    size_bytes: int | None


def _evaluate(target: TargetBudget, ev: _Evidence, mode: str, seed: int, confidence: float) -> list[Check]:
    checks: list[Check] = []
    for name in PERCENTILE_BUDGETS:
        if getattr(target, name) is not None:
            checks.append(percentile_check(name, getattr(target, name), ev.current.rounds, mode, seed, confidence))
    if target.min_speedup is not None:
        checks.append(
            speedup_check(
                ev.current.rounds,
                _required(ev.reference, "the fp32 reference").rounds,
                target.min_speedup,
                mode,
                seed,
                ev.reference_paired,
                confidence,
            )
        )
    if target.max_regression is not None:
        checks.append(
            regression_check(
                ev.current.rounds,
                _required(ev.baseline, "the baseline").rounds,
                target.max_regression,
                mode,
                seed,
                ev.baseline_paired,
                confidence,
            )
        )
    facts, size_bytes = ev.facts, ev.size_bytes
    if target.max_accuracy_drop is not None:
        split, entry = _required(_accuracy_split(facts, need_fp32=True), "the accuracies")
        checks.append(accuracy_drop_check(entry["artifact"], entry["fp32"], split, target.max_accuracy_drop))
    if target.min_accuracy is not None:
        split, entry = _required(_accuracy_split(facts, need_fp32=False), "the accuracy")
        checks.append(min_accuracy_check(entry["artifact"], split, target.min_accuracy))
    if target.max_size_mb is not None:
        checks.append(size_check(_required(size_bytes, "the artifact size"), target.max_size_mb))
    return checks


def _require_inputs(
    name: str, target: TargetBudget, request: GateRequest, has_reference: bool, facts, size_bytes
) -> None:
    """Refuse, before any measurement, a check whose evidence will not be there."""
    if target.max_regression is not None and request.baseline is None and request.baseline_artifact is None:
        raise ConfigError(
            f"target {name!r} has max_regression: give --baseline previous-result.json "
            "(or --baseline-artifact previous.onnx with --artifact)"
        )
    if target.min_speedup is not None and not has_reference:
        raise ConfigError(
            f"target {name!r} has min_speedup: it needs the fp32 latency (a run's latency.json, an "
            "`edgeport bench A --vs FP32` result, or --reference fp32.onnx with --artifact)"
        )
    for check, need_fp32 in (("max_accuracy_drop", True), ("min_accuracy", False)):
        if getattr(target, check) is not None and (facts is None or _accuracy_split(facts, need_fp32) is None):
            raise ConfigError(
                f"target {name!r} has {check}: it needs the artifact's manifest with "
                f"{'int8 and fp32 accuracies' if need_fp32 else 'its accuracy'} (pass --manifest)"
            )
    if target.max_size_mb is not None and size_bytes is None:
        raise ConfigError(f"target {name!r} has max_size_mb: give --artifact or the artifact's manifest")


def _require_samples(target: TargetBudget, count: int, source: str, remedy: str) -> None:
    for budget in PERCENTILE_BUDGETS:
        if getattr(target, budget) is not None and count < needed_samples(budget):
            raise ConfigError(
                f"{source}: {count} samples cannot support a {budget[:3]} budget (needs at least "
                f"{needed_samples(budget)}); {remedy}"
            )


def _needs_more(checks: list[Check], extra: int) -> bool:
    """Measure again while a latency check is inconclusive; confirm a failed one once (a burst of noise
    can cover a whole measurement, a real slowdown shows again)."""
    latency = [c.verdict for c in checks if c.name in LATENCY_CHECKS]
    return "inconclusive" in latency or ("fail" in latency and extra == 0)


def run_gate(request: GateRequest, progress: Progress = SILENT) -> dict:
    """Everything that can be refused is refused before the measurement (seconds to minutes) starts."""
    from edgeport.gate.reporters import check_outputs

    if request.mode not in MODES:
        raise ConfigError(f"--mode must be one of {', '.join(MODES)}, got {request.mode!r}")
    if request.result is None and request.artifact is None:
        raise ConfigError("edgeport gate needs --result RESULT.json or --artifact MODEL.onnx")
    check_outputs(request.junit, request.step_summary, request.inputs())
    if request.baseline_artifact is not None:
        if request.result is not None or request.baseline is not None:
            raise ConfigError(
                "--baseline-artifact is measured here beside --artifact: use it without --result and --baseline"
            )
        _require_file(request.baseline_artifact, "baseline artifact")
    name, target = select_target(load_budgets(request.budget), request.target, request.budget)
    artifact_sha = None
    if request.artifact is not None:
        _require_file(request.artifact, "artifact")
        artifact_sha = _sha256(request.artifact, "artifact")
    if request.reference is not None:
        _require_file(request.reference, "reference model")

    if request.reference is not None and request.result is not None:
        raise ConfigError(
            "--reference is measured here beside --artifact; with --result the fp32 reference comes "
            "from the result file (a run's latency.json or `edgeport bench A --vs FP32`)"
        )

    measuring = request.result is None
    measure_reference = measuring and request.reference is not None and target.min_speedup is not None
    current = reference = baseline = None
    reference_paired = False
    if request.result is not None:
        current, reference = read_result(request.result, target.batch, target.threads)
        reference_paired = reference is not None  # the same file measured both, interleaved
    if reference is None and request.reference_result is not None and not measure_reference:
        reference = read_result(request.reference_result, target.batch, target.threads)[0]
        reference_paired = False

    if current is not None and artifact_sha is not None and current.model_sha256 != artifact_sha:
        raise ArtifactError(
            f"{request.result}: measured a different file (sha256 {current.model_sha256[:12]}...) than "
            f"{request.artifact} (sha256 {artifact_sha[:12]}...); refusing to gate it"
        )
    model_sha = current.model_sha256 if current is not None else _required(artifact_sha, "the artifact's sha256")
    model_path = str(request.artifact) if request.artifact else _required(current, "the result").model_path
    manifest_path = request.manifest or find_manifest(request.result, model_path)
    if request.manifest is None and manifest_path is not None:  # found beside the result: an input too
        check_outputs(request.junit, request.step_summary, [("the manifest", manifest_path)])
    facts = read_manifest(manifest_path) if manifest_path is not None else None
    if facts is not None and facts.sha256 != model_sha:
        measured_by = "the result measured" if current is not None else f"{request.artifact} has"
        raise ArtifactError(
            f"{manifest_path}: describes an artifact with sha256 {(facts.sha256 or '')[:12]}..., but "
            f"{measured_by} sha256 {model_sha[:12]}...; refusing to gate a different file"
        )
    reference_sha = (
        reference.model_sha256
        if reference is not None
        else (_sha256(_required(request.reference, "--reference"), "reference model") if measure_reference else None)
    )
    if (
        target.min_speedup is not None
        and reference_sha is not None
        and facts is not None
        and facts.fp32_sha256
        and reference_sha != facts.fp32_sha256
    ):
        raise ArtifactError(
            f"the fp32 reference {'measured' if reference is not None else 'given'} (sha256 "
            f"{reference_sha[:12]}...) is not the fp32 model {manifest_path} records (sha256 "
            f"{facts.fp32_sha256[:12]}...); min_speedup must compare the artifact with its own fp32 "
            "model"
        )
    size_bytes = Path(request.artifact).stat().st_size if request.artifact else (facts.size_bytes if facts else None)
    _require_inputs(name, target, request, reference is not None or measure_reference, facts, size_bytes)
    if current is not None:
        environment = current.environment
    else:
        from edgeport.benchmarks.fingerprint import environment_fingerprint

        environment = environment_fingerprint()  # the machine about to measure
    check_hardware(name, target.hardware, environment, str(request.result or "this machine"))
    if reference is not None and target.min_speedup is not None:
        _same_machine(environment, reference, "fp32 reference", "min_speedup")
    measurer = None
    if current is not None:
        _require_samples(target, current.samples_ms.size, current.source, "measure more iterations")
    else:
        measurer = _Measurer(
            _required(request.artifact, "--artifact"),
            request.reference if measure_reference else None,
            target,
            request,
            progress,
        )  # validates the benchmark settings
        # a measurement records exactly --iterations samples
        _require_samples(
            target, measurer.settings.iterations, f"--iterations {request.iterations}", "raise --iterations"
        )
    if request.baseline is not None:
        baseline = read_result(request.baseline, target.batch, target.threads)[0]
        _same_machine(environment, baseline)
        if current is not None and np.array_equal(current.samples_ms, baseline.samples_ms):
            raise ConfigError(
                f"{request.baseline}: the baseline is the same measurement as {request.result}; "
                "max_regression needs the previous release's result"
            )

    if measurer is not None:
        measured = measurer.measure()
        current = measured["artifact"]
        if "reference" in measured:
            reference, reference_paired = measured["reference"], True
        baseline = measured.get("baseline", baseline)
        if current.model_sha256 != artifact_sha:
            raise ArtifactError(
                f"{request.artifact}: the file changed while it was measured (sha256 "
                f"{str(artifact_sha)[:12]}... before, {current.model_sha256[:12]}... after); gate it again"
            )
        _require_samples(target, current.samples_ms.size, current.source, "measure more iterations")

    ev = _Evidence(
        _required(current, "the measurement"),
        reference,
        reference_paired,
        baseline,
        request.baseline_artifact is not None,
        facts,
        size_bytes,
    )
    # The gate may look up to 1 + max_extra_measurements times when it measures itself; splitting the
    # 5% error over those looks (Bonferroni) keeps re-measuring from passing a borderline budget by chance.
    looks = 1 + request.max_extra_measurements if measurer is not None else 1
    confidence = 1 - (1 - CONFIDENCE) / looks
    checks = _evaluate(target, ev, request.mode, request.seed, confidence)
    extra = 0
    while measurer is not None and extra < request.max_extra_measurements and _needs_more(checks, extra):
        more = measurer.measure()
        ev.current = ev.current.extended(more["artifact"])
        if "reference" in more:
            ev.reference = _required(ev.reference, "the fp32 reference").extended(more["reference"])
        if "baseline" in more:
            ev.baseline = _required(ev.baseline, "the baseline").extended(more["baseline"])
        extra += 1
        checks = _evaluate(target, ev, request.mode, request.seed, confidence)
    current = ev.current

    verdicts = {c.verdict for c in checks}
    verdict = "fail" if "fail" in verdicts else ("inconclusive" if "inconclusive" in verdicts else "pass")
    passed = verdict == "pass" or (verdict == "inconclusive" and request.allow_inconclusive)
    return {
        "target": name,
        "description": target.description,
        "verdict": verdict,
        "passed": passed,
        "mode": request.mode,
        "allow_inconclusive": request.allow_inconclusive,
        "confidence": confidence,
        "checks": [c.describe() for c in checks],
        "artifact": {
            "sha256": current.model_sha256,
            "path": str(request.artifact or current.model_path),
            "size_bytes": size_bytes,
            "manifest": str(manifest_path) if manifest_path else None,
        },
        "samples": int(current.samples_ms.size),
        "extra_measurements": extra,
        "settings": {"batch": target.batch, "threads": target.threads},
        "sources": {
            "result": str(request.result) if request.result else "measured now",
            "baseline": str(request.baseline or request.baseline_artifact or "") or None,
            "baseline_interleaved": ev.baseline_paired,
            "budget": str(request.budget),
        },
        "environment": current.environment,
    }


def target_for_settings(
    budget: Path, name: str | None, batch: int, threads: int, where: str, remote: str | None = None
) -> tuple[str, TargetBudget]:
    """The target a run or search will be gated against, refused up front when it measures other settings."""
    name, target = select_target(load_budgets(budget), name, budget)
    if (target.batch, target.threads) != (batch, threads):
        raise ConfigError(
            f"{budget}: target {name!r} is for batch {target.batch}, {target.threads} thread(s), but {where} "
            f"measures batch {batch}, {threads} thread(s); set [run.bench] batch/threads to match"
        )
    if target.max_regression is not None:
        raise ConfigError(
            f"{budget}: target {name!r} has max_regression, which needs a baseline; gate it afterwards "
            "with `edgeport gate --baseline ...` or `--baseline-artifact ...`"
        )
    if remote is None:
        from edgeport.benchmarks.fingerprint import environment_fingerprint

        check_hardware(name, target.hardware, environment_fingerprint(), "this machine")
    return name, target
