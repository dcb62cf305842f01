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

from edgeport.artifacts import sha256_file, sha256_json
from edgeport.config import DataSection, RunConfig
from edgeport.errors import EdgeportError
from edgeport.progress import SILENT, Progress
from edgeport.search.cache import StageCache

BUILD_STAGES = ("teacher", "student", "export", "quantize")


@functools.lru_cache(maxsize=4)
def _prepared(data_json: str, seed: int):
    from edgeport.stages import prepare_data

    return prepare_data(DataSection.model_validate(json.loads(data_json)), seed)


def prepared_data(config: RunConfig):
    return _prepared(json.dumps(config.data.model_dump(), sort_keys=True), config.seed)


def _load(entry: dict, spec: str, prepared):
    from edgeport.models import ModelSpec
    from edgeport.models.checkpoint import load_checkpoint_model

    channels, classes, size = prepared.shape
    return load_checkpoint_model(entry["paths"]["model.safetensors"], ModelSpec.parse(spec), channels, classes, size)


def _teacher_logits(teacher_entry: dict, config: RunConfig, prepared, logits_cache: Path):
    from edgeport.distill import teacher_logits

    teacher = _load(teacher_entry, config.teacher.model, prepared)
    logits, _ = teacher_logits(
        teacher, teacher_entry["files"]["model.safetensors"], prepared.splits.train.x, logits_cache
    )
    return logits


def _build_teacher(
    config: RunConfig, prepared, out: Path, inputs: dict, logits_cache: Path, progress: Progress
) -> dict:
    from edgeport.distill import accuracy, predict_logits, teacher_logits
    from edgeport.models import ModelSpec
    from edgeport.models.checkpoint import count_parameters, load_weights, save_checkpoint
    from edgeport.stages import fit, seeded_model

    spec = ModelSpec.parse(config.teacher.model)
    model = seeded_model(spec, config.seed, prepared)
    history = None
    if config.teacher.weights:
        load_weights(model, config.teacher.weights)
    else:
        history = fit(model, config.teacher, prepared, config.seed, progress, description="teacher").history
    model.eval()
    path = save_checkpoint(model, out / "model.safetensors", spec, *prepared.shape)
    teacher_logits(model, sha256_file(path), prepared.splits.train.x, logits_cache)  # computed once, here
    val = prepared.splits.val
    return {
        "val_accuracy": accuracy(predict_logits(model, val.x), val.y),
        "history": history,
        "parameters": count_parameters(model),
        "model": config.teacher.model,
        "weights": config.teacher.weights,
    }


def _build_student(
    config: RunConfig, prepared, out: Path, inputs: dict, logits_cache: Path, progress: Progress
) -> dict:
    from edgeport.distill import KDConfig
    from edgeport.models import ModelSpec
    from edgeport.models.checkpoint import count_parameters, save_checkpoint
    from edgeport.stages import fit, seeded_model

    t_logits = _teacher_logits(inputs["teacher"], config, prepared, logits_cache)
    spec = ModelSpec.parse(config.student.model)
    model = seeded_model(spec, config.seed, prepared)
    kd = KDConfig(temperature=config.student.temperature, alpha=config.student.alpha)
    result = fit(
        model,
        config.student,
        prepared,
        config.seed,
        progress,
        description=f"student {config.student.model} ({config.student.epochs} epochs)",
        kd=kd,
        t_logits=t_logits,
    )
    save_checkpoint(model, out / "model.safetensors", spec, *prepared.shape)
    return {
        "val_accuracy": result.final_val_accuracy,
        "history": result.history,
        "epochs": config.student.epochs,
        "parameters": count_parameters(model),
        "model": config.student.model,
        "kd": kd.describe(),
    }


def _build_export(config: RunConfig, prepared, out: Path, inputs: dict, logits_cache: Path, progress: Progress) -> dict:
    from edgeport.distill import accuracy
    from edgeport.exporter import export_onnx, onnx_predict, write_metadata

    student = _load(inputs["student"], config.student.model, prepared)
    path = out / "model.onnx"
    export = export_onnx(
        student, prepared.splits.train.x[:2], path, config.export.exporter, parity_inputs=prepared.splits.val.x
    )
    write_metadata(
        path,
        {
            "kind": "onnx-fp32",
            "seed": str(config.seed),
            "student": config.student.model,
            "student_sha256": inputs["student"]["files"]["model.safetensors"],
            "dataset_sha256": prepared.data.fingerprint(),
        },
    )
    val = prepared.splits.val
    return {"val_accuracy": accuracy(onnx_predict(path, val.x), val.y), **export.describe()}


def _build_quantize(
    config: RunConfig, prepared, out: Path, inputs: dict, logits_cache: Path, progress: Progress, quant_config: dict
) -> dict:
    from edgeport.distill import KDConfig, accuracy
    from edgeport.exporter import onnx_predict, write_metadata
    from edgeport.quant_backends import QuantConfig
    from edgeport.quant_backends.verify import verify_int8
    from edgeport.stages import quantize_student

    qc = QuantConfig(
        **{
            **quant_config,
            "exclude_nodes": tuple(quant_config["exclude_nodes"]),
            "exclude_op_types": tuple(quant_config["exclude_op_types"]),
        }
    )
    student = _load(inputs["student"], config.student.model, prepared)
    t_logits = _teacher_logits(inputs["teacher"], config, prepared, logits_cache)
    kd = KDConfig(temperature=config.student.temperature, alpha=config.student.alpha)
    fp32 = Path(inputs["export"]["paths"]["model.onnx"])
    path = out / "model.onnx"
    started = time.perf_counter()
    quantized = quantize_student(
        fp32, student, prepared, t_logits, kd, config.quantize, qc, path, config.seed, progress
    )
    seconds = time.perf_counter() - started
    for leftover in out.iterdir():  # backends may leave helper files (e.g. augmented models) beside the output
        if leftover.name != "model.onnx":
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    write_metadata(
        path,
        {
            "kind": "onnx-int8",
            "seed": str(config.seed),
            "student": config.student.model,
            "fp32_sha256": inputs["export"]["files"]["model.onnx"],
            "quant": sha256_json(qc.describe())[:16],
        },
    )
    val = prepared.splits.val
    verification = verify_int8(path, fp32, {"input": val.x}, val.y)
    fallback = quantized.fallback
    return {
        "val_accuracy": accuracy(onnx_predict(path, val.x), val.y),
        "backend": quantized.result.backend,
        "quant_config": qc.describe(),
        "seconds": round(seconds, 3),
        "report": quantized.result.report,
        "fallback": fallback.describe() if fallback is not None else None,
        "within_tolerance": fallback.within_tolerance if fallback is not None else None,
        "calibration": {
            "samples": len(quantized.calibration_indices),
            "split": "train",
            "indices_sha256": sha256_json(quantized.calibration_indices.tolist()),
        },
        "verification": {
            "vs_fp32": verification["vs_fp32"],
            "coverage": verification["coverage"],
            "reference_runtime": verification["reference_runtime"],
        },
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
