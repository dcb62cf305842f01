"""``edgeport quantize``: an existing fp32 ONNX file or torch model -> verified int8 ONNX + manifest.

Everything is built in a hidden staging folder beside the output and moved into place only when
the int8 model has been verified, judged by the guard and its manifest written. An int8 model
outside its tolerance is still written (to be inspected) but the manifest's first line says so
and the command exits 1.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from edgeport.benchmarks.records import RuntimeChoice
from edgeport.core import schemas
from edgeport.core.artifacts import atomic_write_json, disk_full, sha256_file
from edgeport.core.manifest import check_manifest
from edgeport.core.progress import SILENT, Progress
from edgeport.core.staging import make_staging_dir, remove_stale_staging
from edgeport.core.versions import package_versions
from edgeport.errors import ArtifactError, QuantizationError
from edgeport.exporter import OnnxLineage, write_metadata
from edgeport.quantize import quantize
from edgeport.quantize.guard.judge import Tolerance, verify_and_judge
from edgeport.quantize.guard.sensitivity import tensor_errors
from edgeport.quantize.guard.verify import verify_int8
from edgeport.quantize.job_inputs import QuantizeJob, load_source, manifest_path_for, prepare_job
from edgeport.quantize.noise import captured_warnings
from edgeport.quantize.strategy.auto import run_recipes
from edgeport.quantize.strategy.fallback import fallback_miss, quantize_with_fallback
from edgeport.quantize.strategy.recipes import AutoConfig
from edgeport.quantize.target import saturation_warning

MANIFEST_SCHEMA = schemas.QUANTIZE_MANIFEST

__all__ = ["MANIFEST_SCHEMA", "manifest_path_for", "quantize_file"]


def _auto(job: QuantizeJob, staged: Path, staging: Path, progress: Progress) -> None:
    assert job.source is not None and job.tolerance is not None and isinstance(job.quant_config, AutoConfig)
    outcome = run_recipes(
        job.source,
        job.calibration,
        job.val_inputs,
        job.val_labels,
        job.quant_config,
        job.tolerance,
        job.judged_on,
        staging,
        job.cpu,
        progress,
        job.runtime,
    )
    job.auto = outcome
    if outcome.chosen is None or outcome.chosen.result is None:
        errors = "; ".join(f"{a.recipe.name}: {a.error}" for a in outcome.attempts)
        raise QuantizationError(f"{job.source.onnx_path}: no quantization recipe worked ({errors})")
    os.replace(outcome.chosen.result.path, staged)
    job.result = dataclasses.replace(outcome.chosen.result, path=staged)
    assert outcome.chosen.config is not None
    job.quant_config = outcome.chosen.config
    job.guard = outcome.chosen.guard
    ratio = outcome.chosen.p50_ms / outcome.fp32_p50_ms if outcome.chosen.p50_ms and outcome.fp32_p50_ms else None
    if ratio is not None and ratio >= 1.0:
        job.notes.append(
            f"the fastest faithful int8 recipe ({outcome.chosen.recipe.name}) ran at {ratio:.2f}x the fp32 p50 "
            "on this CPU (batch 1, one thread): int8 does not pay here; keep the fp32 model or measure on the target"
        )


def _quantize(job: QuantizeJob, staged: Path, staging: Path, tolerance, fallback_layers, progress: Progress) -> None:
    assert job.source is not None and job.lineage is not None
    if isinstance(job.quant_config, AutoConfig):
        _auto(job, staged, staging, progress)
    elif tolerance is None:
        job.result = quantize(job.source, job.calibration, job.quant_config, staged, progress)
    else:
        job.result, job.fallback = quantize_with_fallback(
            job.source,
            job.calibration,
            job.quant_config,
            staged,
            job.val_inputs,
            job.val_labels,
            tolerance,
            progress,
            fallback_layers,
        )
    if job.guard is None:  # auto judged its chosen recipe already
        assert job.tolerance is not None
        job.verification, job.guard = verify_and_judge(
            staged, job.source.onnx_path, job.val_inputs, job.val_labels, job.tolerance, job.judged_on, job.runtime
        )
    else:
        job.verification = verify_int8(staged, job.source.onnx_path, job.val_inputs, job.val_labels)
    lineage = OnnxLineage(
        kind="onnx-int8",
        backend=job.quant_config.backend,
        source_sha256=job.lineage.get("onnx_sha256") or job.lineage["weights_sha256"],
        calibration_sha256=sha256_file(job.calib_path),
        quant=job.quant_config.short_hash(),
    )
    write_metadata(staged, lineage)


def _manifest(job: QuantizeJob, staged: Path) -> dict:
    assert job.result is not None and job.lineage is not None
    assert job.guard is not None
    warnings = [w for w in [saturation_warning(job.quant_config, job.cpu)] if w] + job.notes + job.third_party
    if job.fallback is not None and not job.fallback.within_tolerance:
        warnings.append(fallback_miss(job.fallback))
    validation = (
        {"file": str(job.val), "sha256": sha256_file(job.val)}
        if job.val
        else {"file": None, "note": f"verified on {job.judged_on}"}
    )
    calibration = {
        "file": str(job.calib_path),
        "sha256": sha256_file(job.calib_path),
        "samples": job.result.report.get("calibration_samples"),
    }
    quantization = {
        **job.quant_config.describe(),
        "reduce_range_reason": job.range_reason,
        "seconds": round(job.result.seconds, 3),
        "report": job.result.report,
    }
    return {
        "verdict": job.guard.line(),  # first: a model outside tolerance says so before anything else
        "schema_version": MANIFEST_SCHEMA,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "artifact": {
            "path": job.output.name,
            "kind": "onnx-int8",
            "sha256": sha256_file(staged),
            "size_bytes": staged.stat().st_size,
        },
        "lineage": {**job.lineage, "calibration": calibration, "validation": validation, "quantization": quantization},
        "verification": job.verification,
        "guard": job.guard.describe(),
        "auto": job.auto.describe() if job.auto else None,
        "sensitivity": job.sensitivity,
        "fallback": job.fallback.describe() if job.fallback is not None else None,
        "warnings": warnings,
        "environment": {"cpu": job.cpu},
        "versions": package_versions(),
    }


def quantize_file(
    onnx_path: str | None,
    torch_spec: str | None,
    weights: str | None,
    calib: str,
    val: str | None,
    config: dict,
    output: str | None,
    num_classes: int | None = None,
    exporter: str = "dynamo",
    tolerance: Tolerance | None = None,
    fallback_layers: list[str] | None = None,
    progress: Progress = SILENT,
    debug: bool = False,
    explain: bool = False,
    min_sequence_agreement: float | None = None,
    runtime: RuntimeChoice | None = None,
) -> tuple[Path, dict]:
    """Quantize, verify and write ``output`` plus ``<output>.manifest.json``; return the path and manifest.

    Everything a user can get wrong (the model, the data files, the output path) is checked before
    the staging folder exists, so a refused command leaves nothing behind.
    """
    if tolerance is not None and min_sequence_agreement is not None:
        tolerance = dataclasses.replace(tolerance, min_sequence_agreement=min_sequence_agreement)
    job, _ = prepare_job(onnx_path, torch_spec, weights, calib, val, config, output, tolerance, min_sequence_agreement)
    if runtime is not None and runtime.name != "ort":  # judged (and auto's recipes ranked) as it will run
        from edgeport.benchmarks.openvino_runtime import openvino_module

        openvino_module()  # not installed: exit 2 with the install command, before any work
        job.runtime = runtime
        job.judged_on += f"; int8 run on {runtime.label()}"
    for stale in remove_stale_staging(job.output.parent):
        progress.log(f"removed {stale}: a quantization that was killed left it unfinished")
    staging = make_staging_dir(job.output.parent, "edgeport-quantize")
    try:
        load_source(job, onnx_path, torch_spec, weights, num_classes, staging, exporter, min_sequence_agreement)
        staged = staging / "int8.onnx"
        with captured_warnings(debug) as noise:
            _quantize(job, staged, staging, tolerance, fallback_layers, progress)
        job.third_party = noise.lines()
        if explain:  # the shipped model's per-tensor error, worst first
            assert job.source is not None and job.source.onnx_path is not None
            job.sensitivity = tensor_errors(staged, job.source.onnx_path, job.val_inputs)
        manifest = check_manifest(_manifest(job, staged), str(manifest_path_for(job.output)))
        atomic_write_json(staging / "manifest.json", manifest)
        os.replace(staged, job.output)
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
    return job.output, manifest
