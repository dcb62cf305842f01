"""The build stages of a search, as plain functions a worker process or a Ray task can run.

``execute(task)`` takes a dict of plain values (settings, the cache root, the cache keys of its
inputs), builds one stage into the cache, and returns ``{"ok": True, "result": ...}`` or
``{"ok": False, "error": "..."}``: errors travel as text, so no exception has to cross a
process boundary. Inputs are read from the cache, outputs written to it.
"""

from __future__ import annotations

import functools
import json
import shutil
import time
import traceback
from pathlib import Path

from edgeport.config import DataSection, RunConfig
from edgeport.core.progress import SILENT, Progress
from edgeport.errors import EdgeportError
from edgeport.search.cache import StageCache

BUILD_STAGES = ("teacher", "student", "export", "quantize")


@functools.lru_cache(maxsize=4)
def _prepared(data_json: str, seed: int):
    from edgeport.stages import prepare_data

    return prepare_data(DataSection.model_validate(json.loads(data_json)), seed)


def prepared_data(config: RunConfig):
    return _prepared(json.dumps(config.data.model_dump(), sort_keys=True), config.seed)


def _checkpoint(entry: dict) -> Path:
    return Path(entry["paths"]["model.safetensors"])


def _teacher_logits(teacher_entry: dict, config: RunConfig, prepared, logits_cache: Path):
    from edgeport.distill import teacher_logits
    from edgeport.stages import load_trained

    teacher = load_trained(_checkpoint(teacher_entry), config.teacher.model, prepared)
    logits, _ = teacher_logits(
        teacher, teacher_entry["files"]["model.safetensors"], prepared.splits.train.x, logits_cache
    )
    return logits


def _trained(entry: dict, config: RunConfig, prepared):
    """The student stage's cached result as the record the export and quantize stages take."""
    from edgeport.models import ModelSpec
    from edgeport.stages import TrainedModel, load_trained

    spec = config.student.model
    return TrainedModel(
        load_trained(_checkpoint(entry), spec, prepared),
        ModelSpec.parse(spec),
        _checkpoint(entry),
        entry["files"]["model.safetensors"],
        entry["parameters"],
        entry["val_accuracy"],
        entry["history"],
    )


def _build_teacher(config: RunConfig, prepared, out: Path, inputs: dict, logits_cache: Path, progress) -> dict:
    from edgeport.distill import teacher_logits
    from edgeport.stages import build_teacher

    teacher = build_teacher(config, prepared, out / "model.safetensors", progress)
    teacher_logits(teacher.model, teacher.sha256, prepared.splits.train.x, logits_cache)  # computed once, here
    return {
        "val_accuracy": teacher.val_accuracy,
        "history": teacher.history,
        "parameters": teacher.parameters,
        "model": config.teacher.model,
        "weights": config.teacher.weights,
    }


def _build_student(config: RunConfig, prepared, out: Path, inputs: dict, logits_cache: Path, progress) -> dict:
    from edgeport.stages import train_student

    t_logits = _teacher_logits(inputs["teacher"], config, prepared, logits_cache)
    description = f"student {config.student.model} ({config.student.epochs} epochs)"
    student = train_student(config, prepared, out / "model.safetensors", t_logits, progress, description)
    assert student.kd is not None
    return {
        "val_accuracy": student.val_accuracy,
        "history": student.history,
        "epochs": config.student.epochs,
        "parameters": student.parameters,
        "model": config.student.model,
        "kd": student.kd.describe(),
    }


def _build_export(config: RunConfig, prepared, out: Path, inputs: dict, logits_cache: Path, progress) -> dict:
    from edgeport.distill import accuracy
    from edgeport.exporter import onnx_predict
    from edgeport.stages import export_student

    student = _trained(inputs["student"], config, prepared)
    teacher_sha = inputs["teacher"]["files"]["model.safetensors"]
    export = export_student(config, prepared, student, teacher_sha, out / "model.onnx")
    val = prepared.splits.val
    return {"val_accuracy": accuracy(onnx_predict(export.path, val.x), val.y), **export.describe()}


def _build_quantize(
    config: RunConfig, prepared, out: Path, inputs: dict, logits_cache: Path, progress, quant_config: dict
) -> dict:
    from edgeport.benchmarks.records import RuntimeChoice
    from edgeport.distill import accuracy
    from edgeport.exporter import onnx_predict
    from edgeport.quantize import QuantConfig, validate_quant_config
    from edgeport.stages import kd_config, quantize_student, student_lineage

    qc = validate_quant_config(quant_config)  # resolved by the main process: reduce_range is a bool
    assert isinstance(qc, QuantConfig)
    student = _trained(inputs["student"], config, prepared)
    teacher_sha = inputs["teacher"]["files"]["model.safetensors"]
    t_logits = _teacher_logits(inputs["teacher"], config, prepared, logits_cache)
    path = out / "model.onnx"
    lineage = student_lineage("onnx-int8", config, prepared, teacher_sha, student.sha256)
    started = time.perf_counter()
    quantized = quantize_student(
        Path(inputs["export"]["paths"]["model.onnx"]),
        student,
        prepared,
        t_logits,
        kd_config(config),
        qc,
        path,
        config.seed,
        lineage,
        progress,
        RuntimeChoice(config.bench.runtime, config.bench.precision),
    )
    seconds = time.perf_counter() - started
    for leftover in out.iterdir():  # backends may leave helper files (e.g. augmented models) beside the output
        if leftover.name != "model.onnx":
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    val, fallback, verification = prepared.splits.val, quantized.fallback, quantized.verification
    return {
        "val_accuracy": accuracy(onnx_predict(path, val.x), val.y),
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


_BUILDERS = {"teacher": _build_teacher, "student": _build_student, "export": _build_export, "quantize": _build_quantize}


def execute(task: dict, progress: Progress = SILENT) -> dict:
    """Build one stage into the cache (or find it there); never raises. ``progress`` only in-process."""
    stage, key = task["stage"], task["key"]
    try:
        if task.get("threads"):
            import torch

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
            extra = {"quant_config": task["quant_config"]} if stage == "quantize" else {}
            result = _BUILDERS[stage](
                config, prepared, build_dir, inputs, Path(task["logits_cache"]), progress, **extra
            )
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
