"""The gate's verdict as a typed record: ``GateReport``, built once from the decided checks, and its JSON
form (``as_dict``), which gate.json files, ``edgeport gate --json`` and the reporters read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeport.gate.budgets import GateTarget
from edgeport.gate.decide import Check
from edgeport.gate.load import GateEvidence, required
from edgeport.gate.measure import Judgement
from edgeport.gate.request import GateRequest


@dataclass(frozen=True)
class GatedArtifact:
    sha256: str
    path: str
    size_bytes: int | None
    manifest: str | None  # the manifest the accuracies and size came from


@dataclass(frozen=True)
class GateSources:
    result: str  # the result file, or "measured now" (here), or "measured on device NAME" (a pool's)
    baseline: str | None  # --baseline or --baseline-artifact
    baseline_interleaved: bool
    budget: str


@dataclass(frozen=True)
class GateReport:
    target: str
    description: str | None
    verdict: str  # pass, fail or inconclusive
    passed: bool  # pass, or inconclusive with --allow-inconclusive
    mode: str
    allow_inconclusive: bool
    confidence: float
    checks: tuple[Check, ...]
    artifact: GatedArtifact
    samples: int
    extra_measurements: int
    batch: int
    threads: int
    runtime: str  # the runtime the latency was measured on ("openvino/bf16" with a precision hint)
    runtime_from: str  # "budget", "default" (onnxruntime), or the manifest whose speed.deploy named it
    sources: GateSources
    environment: dict[str, Any]  # where the artifact was measured

    def as_dict(self) -> dict:
        """The JSON form: keys, order and values as gate.json has always held them."""
        return {
            "target": self.target,
            "description": self.description,
            "verdict": self.verdict,
            "passed": self.passed,
            "mode": self.mode,
            "allow_inconclusive": self.allow_inconclusive,
            "confidence": self.confidence,
            "checks": [c.describe() for c in self.checks],
            "artifact": {
                "sha256": self.artifact.sha256,
                "path": self.artifact.path,
                "size_bytes": self.artifact.size_bytes,
                "manifest": self.artifact.manifest,
            },
            "samples": self.samples,
            "extra_measurements": self.extra_measurements,
            "settings": {
                "batch": self.batch,
                "threads": self.threads,
                "runtime": self.runtime,
                "runtime_from": self.runtime_from,
            },
            "sources": {
                "result": self.sources.result,
                "baseline": self.sources.baseline,
                "baseline_interleaved": self.sources.baseline_interleaved,
                "budget": self.sources.budget,
            },
            "environment": self.environment,
        }


def overall_verdict(checks: list[Check]) -> str:
    """fail when any check fails, else inconclusive when any is, else pass."""
    verdicts = {c.verdict for c in checks}
    return "fail" if "fail" in verdicts else ("inconclusive" if "inconclusive" in verdicts else "pass")


def build_report(
    name: str,
    target: GateTarget,
    request: GateRequest,
    ev: GateEvidence,
    judgement: Judgement,
    runtime_from: str = "budget",
) -> GateReport:
    current = required(ev.current, "the measurement")
    verdict = overall_verdict(judgement.checks)
    return GateReport(
        target=name,
        description=target.description,
        verdict=verdict,
        passed=verdict == "pass" or (verdict == "inconclusive" and request.allow_inconclusive),
        mode=request.mode,
        allow_inconclusive=request.allow_inconclusive,
        confidence=judgement.confidence,
        checks=tuple(judgement.checks),
        artifact=GatedArtifact(
            sha256=current.model_sha256,
            path=str(request.artifact or current.model_path),
            size_bytes=ev.size_bytes,
            manifest=str(ev.manifest_path) if ev.manifest_path else None,
        ),
        samples=int(current.samples_ms.size),
        extra_measurements=judgement.extra_measurements,
        batch=target.batch,
        threads=target.threads,
        runtime=target.runtime_choice.label(),
        runtime_from=runtime_from,
        sources=GateSources(
            result=str(request.result) if request.result else current.source,  # "measured now", or on a device
            baseline=str(request.baseline or request.baseline_artifact or "") or None,
            baseline_interleaved=ev.baseline_paired,
            budget=str(request.budget),
        ),
        environment=current.environment,
    )
