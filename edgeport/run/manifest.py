"""manifest.json of a run folder: what every stage of ``edgeport run`` returned, in one record."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from edgeport.benchmarks.speedup import speedup_of
from edgeport.core import schemas
from edgeport.core.artifacts import Artifact
from edgeport.core.versions import package_versions
from edgeport.run.build import RunResult

MANIFEST_SCHEMA = schemas.RUN_MANIFEST


def _dataset(run: RunResult) -> dict:
    prepared = run.inputs.prepared
    return {
        **prepared.data.describe(),
        "splits": prepared.splits.describe(),
        "normalization": prepared.norm.describe(),
        "input_name": "input",
    }


def _lineage(run: RunResult) -> dict:
    config, checked, trained, quantized = run.inputs.config, run.inputs.checked, run.trained, run.built.quantized
    return {
        "teacher": {
            "model": checked.teacher.describe(),
            "weights": config.teacher.weights,
            "trained_here": trained.teacher.history is not None,
            "history": trained.teacher.history,
        },
        "student": {
            "model": checked.student.describe(),
            "kd": trained.student.kd.describe() if trained.student.kd else None,
            "history": trained.student.history,
        },
        "student_no_kd": {"history": trained.baseline.history} if trained.baseline is not None else None,
        "student_choice": trained.choice.describe(),
        "teacher_logits_cache_hit": trained.logits_cache_hit,
        "calibration": quantized.calibration(),
        "quantization": {
            **quantized.config.describe(),  # for backend "auto": the recipe it chose
            "reduce_range_reason": checked.reduce_range_reason,
            "seconds": round(quantized.result.seconds, 3),
            "report": quantized.result.report,
            "auto": quantized.auto.describe() if quantized.auto is not None else None,
        },
    }


def _metrics(run: RunResult) -> dict:
    accuracies, trained = run.measured.accuracies, run.trained
    return {
        "accuracy": accuracies,
        "kd_gain_points": (
            accuracies["student"]["test"] - accuracies["student_no_kd"]["test"]
            if trained.baseline is not None
            else None
        ),
        "kd_gain_over_seeds": trained.kd_gain.describe() if trained.kd_gain is not None else None,
        "parity": {
            "fp32_onnx_vs_torch": run.built.export.describe()["parity"],
            "int8_vs_fp32": run.built.quantized.verification["vs_fp32"],
        },
    }


def _latency(run: RunResult) -> dict:
    fp32, int8 = run.measured.latency["fp32"], run.measured.latency["int8"]
    speedup = speedup_of(int8, fp32)  # measured interleaved: the interval pairs their rounds
    return {
        "settings": fp32.settings,
        "fp32": fp32.stats,
        "int8": int8.stats,
        "int8_over_fp32_p50": speedup.ratio,
        "int8_over_fp32_p50_ci": list(speedup.ratio_ci) if speedup.ratio_ci else None,
        "int8_faster": speedup.pays,  # what `edgeport quantize` asks too: by a margin, and beyond noise
        "samples_file": "latency.json",
    }


def _footprint(found: dict | None) -> dict | None:
    if not found:
        return None
    drop = ("starts", "environment")  # the raw cold starts stay in latency.json
    return {label: [{k: v for k, v in f.items() if k not in drop} for f in records] for label, records in found.items()}


def build_manifest(
    run: RunResult, run_id: str, artifacts: dict[str, Artifact], root: Path, timings: dict[str, float]
) -> dict:
    """The run's manifest; artifact paths are relative to the run folder ``root``."""
    config, quantized = run.inputs.config, run.built.quantized
    fallback = quantized.fallback
    return {
        "verdict": quantized.guard.line(),  # first: a model outside tolerance says so before anything
        "schema_version": MANIFEST_SCHEMA,
        "run_id": run_id,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": config.seed,
        "config": config.model_dump(),
        "dataset": _dataset(run),
        "artifacts": {name: art.describe(relative_to=root) for name, art in artifacts.items()},
        "lineage": _lineage(run),
        "metrics": _metrics(run),
        "verification": quantized.verification,
        "guard": quantized.guard.describe(),
        "fallback": fallback.describe() if fallback is not None else None,
        "warnings": run.warnings,
        "latency": _latency(run),
        "runtimes": run.measured.runtimes,  # fp32 and int8 on every installed runtime; the fastest faithful one
        # memory and cold start of fp32 and int8 on the run's runtime (raw starts in latency.json); None: off
        "footprint": _footprint(run.measured.footprint),
        "environment": run.measured.latency["fp32"].environment,
        "versions": package_versions(),
        "timings_s": timings,
    }
