"""Check that the gate's evidence belongs together: the result, manifest and fp32 reference describe the
artifact being gated (by sha256), and every measurement was taken on the hardware the target describes and
on one machine. A mismatch is refused with a one-line message naming both sides; nothing is judged.
"""

from __future__ import annotations

import fnmatch

import numpy as np

from edgeport.errors import ArtifactError, ConfigError
from edgeport.gate.budgets import GateTarget, Hardware
from edgeport.gate.evidence import Measurement
from edgeport.gate.load import GateEvidence, model_sha, required, sha256_of
from edgeport.gate.request import GateRequest


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


def same_machine(
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


def check_result_is_artifact(request: GateRequest, ev: GateEvidence) -> None:
    """--result must have measured --artifact, byte for byte."""
    current, artifact_sha = ev.current, ev.artifact_sha
    if current is not None and artifact_sha is not None and current.model_sha256 != artifact_sha:
        raise ArtifactError(
            f"{request.result}: measured a different file (sha256 {current.model_sha256[:12]}...) than "
            f"{request.artifact} (sha256 {artifact_sha[:12]}...); refusing to gate it"
        )


def _reference_sha(request: GateRequest, ev: GateEvidence) -> str | None:
    """The fp32 reference's sha256: the one its result measured, or --reference's (hashed before measuring)."""
    if ev.reference is not None:
        return ev.reference.model_sha256
    if ev.measure_reference:
        return sha256_of(required(request.reference, "--reference"), "reference model")
    return None


def check_manifest_matches(request: GateRequest, target: GateTarget, ev: GateEvidence) -> None:
    """The manifest must describe the artifact gated, and min_speedup's fp32 reference must be the fp32
    model that manifest records."""
    facts, sha = ev.facts, model_sha(ev)
    if facts is not None and facts.sha256 != sha:
        measured_by = "the result measured" if ev.current is not None else f"{request.artifact} has"
        raise ArtifactError(
            f"{ev.manifest_path}: describes an artifact with sha256 {facts.sha256[:12]}..., but "
            f"{measured_by} sha256 {sha[:12]}...; refusing to gate a different file"
        )
    reference_sha = _reference_sha(request, ev)
    recorded = facts.fp32_sha256 if facts is not None else None
    if target.min_speedup is not None and reference_sha is not None and recorded and reference_sha != recorded:
        raise ArtifactError(
            f"the fp32 reference {'measured' if ev.reference is not None else 'given'} (sha256 "
            f"{reference_sha[:12]}...) is not the fp32 model {ev.manifest_path} records (sha256 "
            f"{recorded[:12]}...); min_speedup must compare the artifact with its own fp32 model"
        )


def check_not_emulated(name: str, target: GateTarget, environment: dict, source: str) -> None:
    """Refuse timings taken under user-mode emulation (qemu-user) for a target that judges time or memory:
    they are the emulator's, never the board's. A target of accuracy and size alone may still pass."""
    cpu = environment.get("cpu", {})
    timed = [c for c in target.checks() if c not in ("max_accuracy_drop", "min_accuracy", "max_size_mb")]
    if cpu.get("emulated") is True and timed:
        raise ConfigError(
            f"{source}: measured under emulation (a {cpu.get('machine')} Python on another CPU's kernel, such as "
            f"qemu-user): its timings are the emulator's, not the board's, and target {name!r} judges "
            f"{', '.join(timed)}; measure on the board itself"
        )


def check_machines(name: str, target: GateTarget, request: GateRequest, ev: GateEvidence) -> None:
    """The current measurement on the target's hardware, not under emulation; the fp32 reference on the same
    machine."""
    check_hardware(name, target.hardware, ev.environment, str(request.result or "this machine"))
    check_not_emulated(name, target, ev.environment, str(request.result or "this machine"))
    if ev.reference is not None and target.min_speedup is not None:
        same_machine(ev.environment, ev.reference, "fp32 reference", "min_speedup")


def check_baseline(request: GateRequest, ev: GateEvidence) -> None:
    """--baseline: measured on this result's machine, and not this very measurement again."""
    if ev.baseline is None:
        return
    same_machine(ev.environment, ev.baseline)
    if ev.current is not None and np.array_equal(ev.current.samples_ms, ev.baseline.samples_ms):
        raise ConfigError(
            f"{request.baseline}: the baseline is the same measurement as {request.result}; "
            "max_regression needs the previous release's result"
        )


def check_unchanged(request: GateRequest, ev: GateEvidence, measured: Measurement) -> None:
    """The file measured must be the file hashed before measuring."""
    if measured.model_sha256 != ev.artifact_sha:
        raise ArtifactError(
            f"{request.artifact}: the file changed while it was measured (sha256 "
            f"{str(ev.artifact_sha)[:12]}... before, {measured.model_sha256[:12]}... after); gate it again"
        )
