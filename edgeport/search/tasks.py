"""The build stages of a search, as plain functions a worker process or a Ray task can run.

``execute(task)`` takes a dict of plain values (settings, the cache root, the cache keys of its
inputs), builds one stage into the cache, and returns ``{"ok": True, "result": ...}`` or
``{"ok": False, "error": "..."}``: errors travel as text, so no exception has to cross a
process boundary. Inputs are read from the cache, outputs written to it.

Every import is at the top: a worker process or Ray task finds ``execute`` by importing
``edgeport.search``, whose runner loads the stages (and torch) anyway, and every stage here needs them.
"""

from __future__ import annotations

import functools
import json
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgeport.config import DataSection, RunConfig
from edgeport.core.paired import pack_outcomes
from edgeport.core.progress import SILENT, Progress
from edgeport.distill import teacher_logits
from edgeport.errors import ConfigError, EdgeportError
from edgeport.exporter import onnx_predict
from edgeport.models import ModelSpec
from edgeport.quantize import QuantConfig, validate_quant_config
from edgeport.search.cache import StageCache
from edgeport.stages import (
    PreparedData,
    TrainedModel,
    build_teacher,
    export_student,
    kd_config,
    load_trained,
    prepare_data,
    quantize_student,
    student_lineage,
    train_student,
)
from edgeport.stages.quantize import Fp32Student

BUILD_STAGES = ("teacher", "student", "export", "quantize")


@functools.lru_cache(maxsize=4)
def _prepared(data_json: str, seed: int) -> PreparedData:
    return prepare_data(DataSection.model_validate(json.loads(data_json)), seed)


def prepared_data(config: RunConfig) -> PreparedData:
    return _prepared(json.dumps(config.data.model_dump(), sort_keys=True), config.seed)


@dataclass(frozen=True)
class StageBuild:
    """What one stage's builder reads: the candidate's settings and data, its inputs' cache entries."""

    config: RunConfig
    prepared: PreparedData
    out: Path  # the build folder: the stage writes its files here
    inputs: dict  # stage name -> the cache entry of that input
    logits_cache: Path
    progress: Progress
    quant_config: dict | None = None  # the quantize stage's full config, resolved by the main process


def _checkpoint(entry: dict) -> Path:
    return Path(entry["paths"]["model.safetensors"])


def _teacher_logits(build: StageBuild) -> np.ndarray:
    entry, prepared = build.inputs["teacher"], build.prepared
    teacher = load_trained(_checkpoint(entry), build.config.teacher.model, prepared)
    logits, _ = teacher_logits(
        teacher, entry["files"]["model.safetensors"], prepared.splits.train.x, build.logits_cache
    )
    return logits


def _trained(build: StageBuild) -> TrainedModel:
    """The student stage's cached result as the record the export and quantize stages take."""
    entry, spec = build.inputs["student"], build.config.student.model
    return TrainedModel(
        load_trained(_checkpoint(entry), spec, build.prepared),
        ModelSpec.parse(spec),
        _checkpoint(entry),
        entry["files"]["model.safetensors"],
        entry["parameters"],
        entry["val_accuracy"],
        entry["history"],
    )


def _build_teacher(build: StageBuild) -> dict:
    config, prepared = build.config, build.prepared
    teacher = build_teacher(config, prepared, build.out / "model.safetensors", build.progress)
    # computed once, here
    teacher_logits(teacher.model, teacher.sha256, prepared.splits.train.x, build.logits_cache)
    return {
        "val_accuracy": teacher.val_accuracy,
        "history": teacher.history,
        "parameters": teacher.parameters,
        "model": config.teacher.model,
        "weights": config.teacher.weights,
    }


def _build_student(build: StageBuild) -> dict:
    config = build.config
    t_logits = _teacher_logits(build)
    description = f"student {config.student.model} ({config.student.epochs} epochs)"
    student = train_student(
        config, build.prepared, build.out / "model.safetensors", t_logits, build.progress, description
    )
    return {
        "val_accuracy": student.val_accuracy,
        "history": student.history,
        "epochs": config.student.epochs,
        "parameters": student.parameters,
        "model": config.student.model,
        "kd": kd_config(config).describe(),  # trained with the teacher's logits: distilled with these settings
    }


def _build_export(build: StageBuild) -> dict:
    config, prepared = build.config, build.prepared
    student = _trained(build)
    teacher_sha = build.inputs["teacher"]["files"]["model.safetensors"]
    export = export_student(config, prepared, student, teacher_sha, build.out / "model.onnx")
    return {**_val_outcomes(export.path, prepared), **export.describe()}


def _val_outcomes(path: Path, prepared: PreparedData) -> dict:
    """The model's validation accuracy and its per-sample outcomes: choosing between two trials' accuracies
    takes a paired test on the same samples (objective.py), not the two percentages."""
    val = prepared.splits.val
    correct = onnx_predict(path, val.x).argmax(axis=1) == val.y
    return {"val_accuracy": float(correct.mean() * 100.0), "val_outcomes": pack_outcomes(correct)}


def _quant_config(build: StageBuild) -> QuantConfig:
    # resolved by the main process: reduce_range is a bool
    qc = validate_quant_config(build.quant_config) if build.quant_config is not None else None
    if not isinstance(qc, QuantConfig):  # the plan gives every quantize stage a quantizing backend's config
        raise ConfigError(f"the quantize stage needs a quantizing backend's config, got {build.quant_config!r}")
    return qc


def _build_quantize(build: StageBuild) -> dict:
    config, prepared, out, inputs, progress = build.config, build.prepared, build.out, build.inputs, build.progress
    qc = _quant_config(build)
    student = _trained(build)
    teacher_sha = inputs["teacher"]["files"]["model.safetensors"]
    t_logits = _teacher_logits(build)
    path = out / "model.onnx"
    lineage = student_lineage("onnx-int8", config, prepared, teacher_sha, student.sha256)
    started = time.perf_counter()
    fp32 = Fp32Student(Path(inputs["export"]["paths"]["model.onnx"]), student, lineage, t_logits)
    quantized = quantize_student(fp32, prepared, config, qc, path, progress)
    seconds = time.perf_counter() - started
    for leftover in out.iterdir():  # backends may leave helper files (e.g. augmented models) beside the output
        if leftover.name != "model.onnx":
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    fallback, verification = quantized.fallback, quantized.verification
    return {
        **_val_outcomes(path, prepared),
        "backend": quantized.result.backend,
        "quant_config": quantized.config.describe(),  # for backend "auto": the recipe it chose
        "auto": quantized.auto.describe() if quantized.auto is not None else None,
        "seconds": round(seconds, 3),
        "report": quantized.result.report,
        "fallback": fallback.describe() if fallback is not None else None,
        "within_tolerance": quantized.guard.within_tolerance,
        "guard": quantized.guard.describe(),
        "calibration": quantized.calibration(),
        "verification": {key: verification[key] for key in ("vs_fp32", "coverage", "reference_runtime")},
    }


_BUILDERS: dict[str, Callable[[StageBuild], dict]] = {
    "teacher": _build_teacher,
    "student": _build_student,
    "export": _build_export,
    "quantize": _build_quantize,
}


def execute(task: dict, progress: Progress = SILENT) -> dict:
    """Build one stage into the cache (or find it there); never raises. ``progress`` only in-process."""
    stage, key = task["stage"], task["key"]
    try:
        if task.get("threads"):
            torch.set_num_threads(task["threads"])
        cache = StageCache(task["cache"])
        found = cache.lookup(stage, key)
        if found is not None:
            return {"ok": True, "result": found, "reused": True}
        config = RunConfig.model_validate(task["config"])
        inputs = {}
        for name, input_key in task.get("inputs", {}).items():
            entry = cache.lookup(name, input_key)
            if entry is None:
                raise EdgeportError(
                    f"{name} stage {input_key} is missing from the cache at {cache.root} "
                    "(every worker must see the same cache folder)"
                )
            inputs[name] = entry
        prepared = prepared_data(config)
        build_dir = cache.new_build_dir(stage, key)
        try:
            started, wall = time.perf_counter(), time.time()
            build = StageBuild(
                config,
                prepared,
                build_dir,
                inputs,
                Path(task["logits_cache"]),
                progress,
                task["quant_config"] if stage == "quantize" else None,
            )
            result = _BUILDERS[stage](build)
            result["build_seconds"] = round(time.perf_counter() - started, 3)
            result["build_window"] = [wall, time.time()]  # wall clock, to show builds never overlap benchmarks
            return {"ok": True, "result": cache.commit(stage, key, build_dir, result), "reused": False}
        finally:
            shutil.rmtree(build_dir, ignore_errors=True)
    except EdgeportError as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:  # a bug or a third-party failure: keep the search going, record it
        last = traceback.extract_tb(exc.__traceback__)[-1]
        return {
            "ok": False,
            "error": f"{stage} stage failed: {type(exc).__name__}: {exc} ({Path(last.filename).name}:{last.lineno})",
        }
