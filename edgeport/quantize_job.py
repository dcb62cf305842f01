"""``edgeport quantize``: an existing fp32 ONNX file or torch model -> verified int8 ONNX + manifest.

Everything is built in a hidden staging folder beside the output and moved into place
only when the int8 model has been verified and its manifest written.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from edgeport.artifacts import (
    atomic_write_json,
    check_output_file,
    make_staging_dir,
    remove_stale_staging,
    sha256_file,
    sha256_json,
)
from edgeport.benchmarks import cpu_fingerprint
from edgeport.data.model_inputs import check_labels_fit, load_model_inputs
from edgeport.errors import ConfigError, QuantizationError
from edgeport.exporter import OnnxLineage, write_metadata
from edgeport.manifest import check_manifest
from edgeport.progress import SILENT, Progress
from edgeport.quant_backends import ModelSource, QuantConfig, TrainingData, build_quant_config, get_backend, quantize
from edgeport.quant_backends.fallback import FallbackReport, Tolerance, fallback_miss, quantize_with_fallback
from edgeport.quant_backends.model_check import ModelFacts, check_fp32_model, check_inputs_fit
from edgeport.quant_backends.registry import QuantResult
from edgeport.quant_backends.target import saturation_warning
from edgeport.quant_backends.verify import verify_int8
from edgeport.versions import package_versions

MANIFEST_SCHEMA = 1


def manifest_path_for(output: Path) -> Path:
    name = output.name[:-5] if output.name.endswith(".onnx") else output.name
    return output.with_name(f"{name}.manifest.json")


def _torch_source(
    spec: str, weights: str, x, labels, num_classes: int | None, staging: Path, exporter: str
) -> tuple[ModelSource, dict]:
    """Build the torch model (input shape from the calibration images ``x``) and export its fp32 ONNX."""
    from edgeport.exporter import write_onnx
    from edgeport.models import ModelSpec, build_model
    from edgeport.models.checkpoint import load_weights

    if num_classes is None and labels is not None:
        num_classes = int(labels.max()) + 1
    model_spec = ModelSpec.parse(spec)
    model = build_model(
        model_spec, x.shape[1] if x.ndim == 4 else None, num_classes, x.shape[2] if x.ndim == 4 else None
    )
    load_weights(model, weights)
    model.eval()
    fp32 = write_onnx(model, x, staging / "fp32.onnx", exporter)
    lineage = {
        "torch_model": model_spec.describe(),
        "weights": str(weights),
        "weights_sha256": sha256_file(weights),
        "exported_fp32_sha256": sha256_file(fp32),
        "exporter": exporter,
    }
    return ModelSource(fp32, model), lineage


def _first_output_shape(onnx_path: Path, inputs: dict) -> tuple:
    from edgeport.quant_backends.verify import ort_session, run_outputs

    one = {k: v[:1] for k, v in inputs.items()}
    try:
        return run_outputs(ort_session(onnx_path), one).shape
    except Exception as exc:  # ORT's own types: the inputs do not fit the model
        text = " ".join(str(exc).split())[:300]
        raise QuantizationError(f"{onnx_path}: the fp32 model does not run on the given inputs ({text})") from exc


@dataclass
class _Job:
    """One `edgeport quantize`: its checked inputs, then what each step produced."""

    calib_path: Path
    val: str | None
    output: Path
    quant_config: QuantConfig
    range_reason: str
    cpu: dict
    names: list[str]
    calibration: dict
    calib_labels: object
    val_inputs: dict
    val_labels: object
    source: ModelSource | None = None
    lineage: dict | None = None
    result: QuantResult | None = None
    fallback: FallbackReport | None = None
    verification: dict | None = None


def _check_arguments(onnx_path: str | None, torch_spec: str | None, weights: str | None) -> None:
    if (onnx_path is None) == (torch_spec is None):
        raise ConfigError("give either MODEL.onnx or --torch package.module:factory (not both)")
    if torch_spec is not None and weights is None:
        raise ConfigError("--torch needs --weights W.safetensors")
    if weights is not None and not Path(weights).is_file():
        raise ConfigError(f"{weights}: weights file not found")


def _output_for(onnx_path: str | None, torch_spec: str | None, output: str | None) -> Path:
    if onnx_path is not None:
        stem = Path(onnx_path).name.removesuffix(".onnx").removesuffix(".fp32")
        default_output = Path(onnx_path).with_name(stem + ".int8.onnx")
    else:
        assert torch_spec is not None
        default_output = Path(torch_spec.split(":")[-1].split("=")[0] + ".int8.onnx")
    path = Path(output) if output else default_output
    if path.suffix != ".onnx":
        raise ConfigError(f"{path}: the output must be an .onnx file")
    return path


def _prepare(onnx_path, torch_spec, weights, calib, val, config, output) -> tuple[_Job, ModelFacts | None]:
    """Every check of the user's inputs, before anything is written."""
    _check_arguments(onnx_path, torch_spec, weights)
    cpu = cpu_fingerprint()
    quant_config, range_reason = build_quant_config(config, cpu)
    backend = get_backend(quant_config.backend)
    facts = None
    if onnx_path is not None:
        if backend.needs == "torch":
            raise ConfigError(
                f"backend {backend.name!r} quantizes torch models: use --torch package.module:factory "
                "--weights W.safetensors"
            )
        facts = check_fp32_model(onnx_path)
    out = _output_for(onnx_path, torch_spec, output)
    inputs = (onnx_path, calib, val, weights)
    check_output_file(out, inputs, "output model")
    check_output_file(manifest_path_for(out), inputs, "output manifest")

    calib_path = Path(calib)
    names = facts.input_names if facts is not None else ["input"]
    calibration, calib_labels = load_model_inputs(calib_path, names, "calibration")
    val_inputs, val_labels = load_model_inputs(Path(val), names, "validation") if val else (calibration, calib_labels)
    if facts is not None:
        check_inputs_fit(facts, calibration, calib_path, "calibration")
        if val:
            check_inputs_fit(facts, val_inputs, val, "validation")
    job = _Job(
        calib_path, val, out, quant_config, range_reason, cpu, names, calibration, calib_labels, val_inputs, val_labels
    )
    return job, facts


def _source(job: _Job, onnx_path, torch_spec, weights, num_classes, staging: Path, exporter: str) -> None:
    """The fp32 model to quantize (exported first for --torch), its labels checked against its output."""
    if onnx_path is not None:
        source = ModelSource(Path(onnx_path))
        job.lineage = {"onnx_model": str(onnx_path), "onnx_sha256": sha256_file(onnx_path)}
    else:
        source, job.lineage = _torch_source(
            torch_spec, weights, job.calibration["input"], job.calib_labels, num_classes, staging, exporter
        )
    output_shape = _first_output_shape(source.onnx_path, job.val_inputs)
    for labels, where in ((job.val_labels, job.val or job.calib_path), (job.calib_labels, job.calib_path)):
        if labels is not None:
            check_labels_fit(where, labels, output_shape)
    if source.torch_model is not None and job.calib_labels is not None and len(job.names) == 1:
        # Labelled calibration images double as fine-tuning data for quantization-aware training.
        name = job.names[0]
        labelled_val = job.val_labels is not None
        fit_x = job.val_inputs[name] if labelled_val else job.calibration[name]
        fit_y = job.val_labels if labelled_val else job.calib_labels
        training = TrainingData(job.calibration[name], job.calib_labels, fit_x, fit_y)
        source = ModelSource(source.onnx_path, source.torch_model, training)
    job.source = source


def _quantize(job: _Job, staged: Path, tolerance, fallback_layers, progress: Progress) -> None:
    assert job.source is not None and job.lineage is not None
    if tolerance is None:
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
    job.verification = verify_int8(staged, job.source.onnx_path, job.val_inputs, job.val_labels)
    lineage = OnnxLineage(
        kind="onnx-int8",
        backend=job.quant_config.backend,
        source_sha256=job.lineage.get("onnx_sha256") or job.lineage["weights_sha256"],
        calibration_sha256=sha256_file(job.calib_path),
        quant=sha256_json(job.quant_config.describe())[:16],
    )
    write_metadata(staged, lineage)


def _manifest(job: _Job, staged: Path) -> dict:
    assert job.result is not None and job.lineage is not None
    warnings = [w for w in [saturation_warning(job.quant_config, job.cpu)] if w]
    if job.fallback is not None and not job.fallback.within_tolerance:
        warnings.append(fallback_miss(job.fallback))
    validation = (
        {"file": str(job.val), "sha256": sha256_file(job.val)}
        if job.val
        else {"file": None, "note": "verified on the calibration inputs"}
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
) -> tuple[Path, dict]:
    """Quantize, verify and write ``output`` plus ``<output>.manifest.json``; return the path and manifest.

    Everything a user can get wrong (the model, the data files, the output path) is checked before
    the staging folder exists, so a refused command leaves nothing behind.
    """
    job, _ = _prepare(onnx_path, torch_spec, weights, calib, val, config, output)
    for stale in remove_stale_staging(job.output.parent):
        progress.log(f"removed {stale}: a quantization that was killed left it unfinished")
    staging = make_staging_dir(job.output.parent, "edgeport-quantize")
    try:
        _source(job, onnx_path, torch_spec, weights, num_classes, staging, exporter)
        staged = staging / "int8.onnx"
        _quantize(job, staged, tolerance, fallback_layers, progress)
        manifest = check_manifest(_manifest(job, staged), str(manifest_path_for(job.output)))
        atomic_write_json(staging / "manifest.json", manifest)
        os.replace(staged, job.output)
        os.replace(staging / "manifest.json", manifest_path_for(job.output))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return job.output, manifest
