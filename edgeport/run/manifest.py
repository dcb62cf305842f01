"""manifest.json of a run folder: what every stage of ``edgeport run`` returned, in one record."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from edgeport.core import schemas
from edgeport.core.artifacts import Artifact
from edgeport.core.versions import package_versions

if TYPE_CHECKING:
    from edgeport.run.pipeline import RunBuild

MANIFEST_SCHEMA = schemas.RUN_MANIFEST


def _dataset(build: RunBuild) -> dict:
    prepared = build.prepared
    return {
        **prepared.data.describe(),
        "splits": prepared.splits.describe(),
        "normalization": prepared.norm.describe(),
        "input_name": "input",
    }


def _lineage(build: RunBuild) -> dict:
    assert build.teacher and build.student and build.quantized and build.checked.quant_config
    config, quantized = build.config, build.quantized
    return {
        "teacher": {
            "model": build.checked.teacher.describe(),
            "weights": config.teacher.weights,
            "trained_here": build.teacher.history is not None,
            "history": build.teacher.history,
        },
        "student": {
            "model": build.checked.student.describe(),
            "kd": build.student.kd.describe() if build.student.kd else None,
            "history": build.student.history,
        },
        "student_no_kd": {"history": build.baseline.history} if build.baseline is not None else None,
        "student_choice": build.choice.describe() if build.choice is not None else None,
        "teacher_logits_cache_hit": build.logits_cache_hit,
        "calibration": quantized.calibration(),
        "quantization": {
            **quantized.config.describe(),  # for backend "auto": the recipe it chose
            "reduce_range_reason": build.checked.reduce_range_reason,
            "seconds": round(quantized.result.seconds, 3),
            "report": quantized.result.report,
            "auto": quantized.auto.describe() if quantized.auto is not None else None,
        },
    }


def _metrics(build: RunBuild) -> dict:
    assert build.accuracies is not None and build.export and build.quantized
    accuracies = build.accuracies
    return {
        "accuracy": accuracies,
        "kd_gain_points": (
            accuracies["student"]["test"] - accuracies["student_no_kd"]["test"] if build.baseline is not None else None
        ),
        "kd_gain_over_seeds": build.kd_gain.describe() if build.kd_gain is not None else None,
        "parity": {
            "fp32_onnx_vs_torch": build.export.describe()["parity"],
            "int8_vs_fp32": build.quantized.verification["vs_fp32"],
        },
    }


def _latency(build: RunBuild) -> dict:
    assert build.latency is not None
    fp32, int8 = build.latency["fp32"], build.latency["int8"]
    ratio = int8.stats["p50_ms"] / fp32.stats["p50_ms"]
    return {
        "settings": fp32.settings,
        "fp32": fp32.stats,
        "int8": int8.stats,
        "int8_over_fp32_p50": ratio,
        "int8_faster": ratio < 1.0,
        "samples_file": "latency.json",
    }


def build_manifest(
    build: RunBuild, run_id: str, artifacts: dict[str, Artifact], root: Path, timings: dict[str, float]
) -> dict:
    """The run's manifest; artifact paths are relative to the run folder ``root``."""
    assert build.quantized and build.latency
    fallback = build.quantized.fallback
    return {
        "verdict": build.quantized.guard.line(),  # first: a model outside tolerance says so before anything
        "schema_version": MANIFEST_SCHEMA,
        "run_id": run_id,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": build.config.seed,
        "config": build.config.model_dump(),
        "dataset": _dataset(build),
        "artifacts": {name: art.describe(relative_to=root) for name, art in artifacts.items()},
        "lineage": _lineage(build),
        "metrics": _metrics(build),
        "verification": build.quantized.verification,
        "guard": build.quantized.guard.describe(),
        "fallback": fallback.describe() if fallback is not None else None,
        "warnings": build.warnings,
        "latency": _latency(build),
        "runtimes": build.runtimes,  # fp32 and int8 on every installed runtime; the fastest faithful one
        "environment": build.latency["fp32"].environment,
        "versions": package_versions(),
        "timings_s": timings,
    }
