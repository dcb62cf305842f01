"""``edgeport quantize``: an existing fp32 ONNX file or torch model -> verified int8 ONNX + manifest.

Everything is built in a hidden staging folder beside the output and moved into place only when
the int8 model has been verified, judged by the guard, measured against fp32 and its manifest
written. Exit 0 means ship it: an int8 model outside its tolerance, or no faster than fp32 on the
runtime it ships with, is written as ``<name>.rejected.onnx`` (to be inspected, never mistaken for the
artifact), the manifest's first line says why and names the fastest faithful option measured, and the
command exits 1.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from edgeport.benchmarks.openvino_runtime import openvino_module
from edgeport.benchmarks.records import ONNXRUNTIME
from edgeport.core import schemas
from edgeport.core.artifacts import atomic_write_json, disk_full, sha256_file
from edgeport.core.manifest import check_manifest
from edgeport.core.progress import SILENT, Progress
from edgeport.core.staging import make_staging_dir, remove_stale_staging
from edgeport.core.versions import package_versions
from edgeport.errors import ArtifactError
from edgeport.exporter.metadata import OnnxLineage
from edgeport.quantize.guard.sensitivity import tensor_errors
from edgeport.quantize.job_inputs import (
    LoadedModel,
    QuantizeFileRequest,
    QuantizeJob,
    load_source,
    manifest_path_for,
    prepare_job,
    rejected_path_for,
)
from edgeport.quantize.noise import captured_warnings
from edgeport.quantize.request import QuantizeRequest, QuantOutcome
from edgeport.quantize.strategy.fallback import fallback_miss
from edgeport.quantize.target import saturation_warning
from edgeport.quantize.verified import quantize_verified

MANIFEST_SCHEMA = schemas.QUANTIZE_MANIFEST

__all__ = ["MANIFEST_SCHEMA", "QuantizeFileRequest", "manifest_path_for", "quantize_file"]


def _request(job: QuantizeJob, model: LoadedModel, staged: Path) -> QuantizeRequest:
    """What ``quantize_verified`` is asked: the job's inputs, the int8 model staged at ``staged``."""
    lineage = OnnxLineage(  # backend and settings hash: quantize_verified fills them in as applied
        kind="onnx-int8",
        source_sha256=model.lineage.get("onnx_sha256") or model.lineage["weights_sha256"],
        calibration_sha256=sha256_file(job.calib_path),
    )
    request = job.request
    return QuantizeRequest(
        model.source,
        job.calibration,
        job.validation,
        job.config,
        staged,
        lineage,
        fallback=request.tolerance.fallback,
        fallback_layers=request.fallback_layers,
        runtime=request.runtime,
        choose_runtime=request.choose_runtime,
        speed_check=request.speed_check,
    )


@dataclass(frozen=True)
class _Shipped:
    """What the manifest records beside the outcome: the int8 file, third-party warnings, --explain."""

    model: LoadedModel
    staged: Path
    third_party: list[str]
    sensitivity: list[dict] | None  # with --explain: every quantized tensor's SQNR, worst first


def _manifest(job: QuantizeJob, request: QuantizeRequest, outcome: QuantOutcome, shipped: _Shipped) -> dict:
    result, staged, val = outcome.result, shipped.staged, job.request.val
    warnings = [w for w in [saturation_warning(outcome.config, job.cpu)] if w] + outcome.notes() + shipped.third_party
    if outcome.fallback is not None and not outcome.fallback.within_tolerance:
        warnings.append(fallback_miss(outcome.fallback))
    validation = (
        {"file": str(val), "sha256": sha256_file(val)}
        if val
        else {"file": None, "note": f"verified on {request.judged_on()}"}
    )
    calibration = {
        "file": str(job.calib_path),
        "sha256": sha256_file(job.calib_path),
        "samples": result.report.get("calibration_samples"),
    }
    quantization = {
        **outcome.config.describe(),
        "reduce_range_reason": job.range_reason,
        "seconds": round(result.seconds, 3),
        "report": result.report,
    }
    lineage = {
        **shipped.model.lineage,
        "calibration": calibration,
        "validation": validation,
        "quantization": quantization,
    }
    return {
        "verdict": outcome.verdict(),  # first: a model that does not ship says so before anything else
        "ships": outcome.ships,
        "schema_version": MANIFEST_SCHEMA,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "artifact": {
            "path": (job.output if outcome.ships else rejected_path_for(job.output)).name,
            "kind": "onnx-int8",
            "sha256": sha256_file(staged),
            "size_bytes": staged.stat().st_size,
        },
        "lineage": lineage,
        "verification": outcome.verification,
        "guard": outcome.guard.describe(),
        "auto": outcome.auto.describe() if outcome.auto else None,
        "sensitivity": shipped.sensitivity,
        "fallback": outcome.fallback.describe() if outcome.fallback is not None else None,
        "speed": outcome.payoff.describe() if outcome.payoff is not None else None,
        "warnings": warnings,
        "environment": {"cpu": job.cpu},
        "versions": package_versions(),
    }


def quantize_file(request: QuantizeFileRequest, progress: Progress = SILENT) -> tuple[Path, dict]:
    """Quantize, verify and write the output plus ``<output>.manifest.json``; return the path and manifest.

    Everything a user can get wrong (the model, the data files, the output path) is checked before
    the staging folder exists, so a refused command leaves nothing behind.
    """
    job, _ = prepare_job(request)
    if request.runtime.name != ONNXRUNTIME.name:  # judged (and auto's recipes ranked) as it will run
        openvino_module()  # not installed: exit 2 with the install command, before any work
    for stale in remove_stale_staging(job.output.parent):
        progress.log(f"removed {stale}: a quantization that was killed left it unfinished")
    staging = make_staging_dir(job.output.parent, "edgeport-quantize")
    try:
        model = load_source(job, staging)
        staged = staging / "int8.onnx"
        quantize = _request(job, model, staged)
        with captured_warnings(request.debug) as noise:
            outcome = quantize_verified(quantize, progress)
        fp32 = model.source.onnx_path
        explained = tensor_errors(staged, fp32, job.validation.inputs) if request.explain and fp32 else None
        shipped = _Shipped(model, staged, noise.lines(), explained)
        manifest = check_manifest(_manifest(job, quantize, outcome, shipped), str(manifest_path_for(job.output)))
        atomic_write_json(staging / "manifest.json", manifest)
        # a model that does not ship is kept to be inspected, under a name that says so
        written = job.output if outcome.ships else rejected_path_for(job.output)
        os.replace(staged, written)
        os.replace(staging / "manifest.json", manifest_path_for(job.output))
    except Exception as exc:
        if disk_full(exc) and not isinstance(exc, ArtifactError):  # the backends' errors blame the input model
            raise ArtifactError(
                f"{job.output.parent}: the disk is full, the int8 model {job.output.name} and its work files "
                "could not be written (No space left on device)"
            ) from exc
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written, manifest
