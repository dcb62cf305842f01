"""The runtime a target is measured on when its budget names none: the one the artifact's manifest says it
ships on, else onnxruntime.

`edgeport quantize` (choosing the runtime, its default) records how the artifact is deployed under
``speed.deploy`` (runtime and precision hint): an int8 file that ships on OpenVINO is gated on OpenVINO,
where its latency means something, not on onnxruntime, where it may run slower than fp32. A budget
that names ``runtime`` (and ``precision``) always wins: the team said where it ships.
"""

from __future__ import annotations

from pathlib import Path

from edgeport.core.json_files import read_json
from edgeport.core.manifest import read_manifest
from edgeport.gate.budgets import GateTarget
from edgeport.gate.evidence import find_manifest
from edgeport.gate.request import GateRequest


def _result_model(path: Path) -> str | None:
    """The model a result file measured (its artifact's path), read only to find the manifest beside it."""
    data = read_json(path, "result file")
    entries = [data] if "samples_ms" in data else [data.get("int8")] + list(data.get("results") or [])
    paths = [e.get("model_path") for e in entries if isinstance(e, dict)]
    return next((p for p in paths if isinstance(p, str) and p), None)


def _manifest_of(request: GateRequest) -> Path | None:
    if request.manifest is not None:
        return Path(request.manifest)
    model = str(request.artifact) if request.artifact else (_result_model(request.result) if request.result else None)
    return find_manifest(request.result, model)


def with_deployed_runtime(request: GateRequest, target: GateTarget) -> tuple[GateTarget, str]:
    """``target`` with its runtime settled, and where it came from ("budget", the manifest's path, or
    "default")."""
    if target.runtime is not None:
        return target, "budget"
    manifest = _manifest_of(request)
    deploy = read_manifest(manifest).deploy() if manifest is not None and manifest.is_file() else None
    if deploy is None:
        return target.model_copy(update={"runtime": "ort"}), "default"
    return target.model_copy(update={"runtime": deploy.runtime, "precision": deploy.precision}), str(manifest)


__all__ = ["with_deployed_runtime"]
