"""Load a gate's evidence: the request's own consistency, the artifact's hash, the result, reference and
baseline measurements, and the artifact's manifest.

Only reading and refusing happen here; whether the pieces belong together is edgeport.gate.integrity's job,
and the orchestration (edgeport.gate.run_gate) interleaves the two so the first problem is the one named.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from edgeport.benchmarks.fingerprint import environment_fingerprint
from edgeport.core.artifacts import sha256_file
from edgeport.errors import ArtifactError, ConfigError
from edgeport.gate.budgets import GateTarget
from edgeport.gate.decide import Check
from edgeport.gate.evidence import ArtifactFacts, Measurement, find_manifest, read_artifact_facts, read_result
from edgeport.gate.reporters import check_outputs
from edgeport.gate.request import MODES, GateRequest

T = TypeVar("T")


def required(value: T | None, what: str) -> T:
    """Evidence that the up-front checks proved present before any measurement: None here is a bug."""
    if value is None:
        raise RuntimeError(f"internal error: {what} is missing after the up-front checks")
    return value


@dataclass
class GateEvidence:
    """Everything the gate judges, filled in as it is read (and, with --artifact alone, measured)."""

    artifact_sha: str | None = None  # --artifact's sha256, taken before anything is measured
    current: Measurement | None = None
    reference: Measurement | None = None  # the fp32 model's, for min_speedup
    reference_paired: bool = False  # measured interleaved with the artifact
    measure_reference: bool = False  # --reference is measured here, beside --artifact
    baseline: Measurement | None = None
    baseline_paired: bool = False
    manifest_path: Path | None = None
    facts: ArtifactFacts | None = None
    size_bytes: int | None = None
    environment: dict = field(default_factory=dict)  # where the current measurement was (or is about to be) taken
    cool_down: Check | None = None  # the wait for the device to cool before the gate measured (gate/heat.py)


def require_file(path: Path, what: str) -> None:
    """A regular file this user can see, or a one-line ConfigError (never a PermissionError traceback)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: {what} not found") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from exc
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{path}: the {what} is not a regular file")


def sha256_of(path: Path, what: str) -> str:
    try:
        return sha256_file(path)
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from exc


def check_request(request: GateRequest) -> None:
    """Refuse a request that cannot be gated, or whose reports would overwrite an input, before reading."""
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
        require_file(request.baseline_artifact, "baseline artifact")


def read_measurements(request: GateRequest, target: GateTarget) -> GateEvidence:
    """The artifact's hash and the measurements already made: the result's, and the fp32 reference's."""
    # --baseline-artifact is measured beside --artifact: interleaved here, in turn on a pool's device
    ev = GateEvidence(baseline_paired=request.baseline_artifact is not None and request.pool is None)
    if request.artifact is not None:
        require_file(request.artifact, "artifact")
        ev.artifact_sha = sha256_of(request.artifact, "artifact")
    if request.reference is not None:
        require_file(request.reference, "reference model")
    if request.reference is not None and request.result is not None:
        raise ConfigError(
            "--reference is measured here beside --artifact; with --result the fp32 reference comes "
            "from the result file (a run's latency.json or `edgeport bench A --vs FP32`)"
        )
    measuring = request.result is None
    ev.measure_reference = measuring and request.reference is not None and target.min_speedup is not None
    if request.result is not None:
        ev.current, ev.reference = read_result(request.result, target.batch, target.threads, target.runtime_choice)
        ev.reference_paired = ev.reference is not None  # the same file measured both, interleaved
    if ev.reference is None and request.reference_result is not None and not ev.measure_reference:
        ev.reference = read_result(request.reference_result, target.batch, target.threads, target.runtime_choice)[0]
        ev.reference_paired = False
    return ev


def model_sha(ev: GateEvidence) -> str:
    """The sha256 of the model being gated: the one the result measured, or --artifact's."""
    return ev.current.model_sha256 if ev.current is not None else required(ev.artifact_sha, "the artifact's sha256")


def read_artifact_manifest(request: GateRequest, ev: GateEvidence) -> None:
    """The artifact's manifest (--manifest, or the one found beside the result or the artifact, if any) and
    its size (--artifact's, else the one the manifest records)."""
    model_path = str(request.artifact) if request.artifact else required(ev.current, "the result").model_path
    ev.manifest_path = request.manifest or find_manifest(request.result, model_path)
    if request.manifest is None and ev.manifest_path is not None:  # found beside the result: an input too
        check_outputs(request.junit, request.step_summary, [("the manifest", ev.manifest_path)])
    ev.facts = read_artifact_facts(ev.manifest_path) if ev.manifest_path is not None else None
    if request.artifact:
        ev.size_bytes = Path(request.artifact).stat().st_size
    else:
        ev.size_bytes = ev.facts.size_bytes if ev.facts else None


def read_baseline(request: GateRequest, target: GateTarget) -> Measurement | None:
    """--baseline's measurement at the target's settings (a --baseline-artifact is measured instead)."""
    if request.baseline is None:
        return None
    return read_result(request.baseline, target.batch, target.threads, target.runtime_choice)[0]


def measuring_environment(ev: GateEvidence) -> dict:
    """Where the artifact was measured: the result's machine, or this one, about to measure."""
    if ev.current is not None:
        return ev.current.environment
    return environment_fingerprint()
