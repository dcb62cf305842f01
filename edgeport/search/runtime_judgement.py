"""A trial's accuracy as its runtime runs it.

The export and quantize stages measure validation accuracy on onnxruntime: they are shared by every
trial of a model, whatever runtime the trial ships on. A trial on OpenVINO runs other kernels, and at
its CPU default precision (bf16 on CPUs with AMX or AVX-512 BF16) other numbers: an fp32 trial there is
a reduced-precision model that nothing judged. So every trial whose runtime is not onnxruntime gets
its validation predictions from that runtime and precision (cached by file, runtime, precision and
OpenVINO version), and is judged by the guard's rule for the run: top-1 at most the tolerance below the
fp32 model on onnxruntime, as ``edgeport run``'s runtime table and ``edgeport quantize``'s options are.
The trial's ``val_accuracy`` and per-sample outcomes are then those of its runtime; an fp32 trial
outside the tolerance is not feasible (objective.violations), like an int8 one.
"""

from __future__ import annotations

import shutil

import numpy as np

from edgeport.benchmarks.openvino_runtime import openvino_version
from edgeport.benchmarks.records import ONNXRUNTIME, RuntimeChoice
from edgeport.core.paired import pack_outcomes
from edgeport.errors import BenchmarkError
from edgeport.exporter import predict_on
from edgeport.quantize.tolerance import DEFAULT_MAX_DROP
from edgeport.search.cache import StageCache, stage_key
from edgeport.search.plan import TrialPlan
from edgeport.search.tasks import prepared_data

STAGE = "runtime-accuracy"


def trial_runtime(plan: TrialPlan) -> RuntimeChoice:
    bench = plan.candidate.config.bench
    return RuntimeChoice(bench.runtime, bench.precision)


def judge_on_runtime(plan: TrialPlan, entries: dict, cache: StageCache) -> dict | None:
    """The trial's validation accuracy, per-sample outcomes and verdict as its runtime runs its artifact
    (cached); None for onnxruntime, whose accuracy the stages measured already."""
    runtime = trial_runtime(plan)
    if runtime.name == ONNXRUNTIME.name:
        return None
    config = plan.candidate.config
    artifact = entries[plan.artifact_stage.stage]
    drop = DEFAULT_MAX_DROP if config.max_accuracy_drop is None else config.max_accuracy_drop
    key = stage_key(
        STAGE,
        model=artifact["files"]["model.onnx"],
        runtime=runtime.label(),
        openvino=openvino_version(),
        data=plan.data_key,
        drop=drop,
    )
    found = cache.lookup(STAGE, key)
    if found is not None:
        return found
    val = prepared_data(config).splits.val
    path = artifact["paths"]["model.onnx"]
    try:
        outputs, on_ort = predict_on(path, val.x, runtime), predict_on(path, val.x)
    except Exception as exc:  # OpenVINO's and onnxruntime's own types: the trial fails, the search goes on
        raise BenchmarkError(
            f"{path}: validation on {runtime.label()} failed ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
        ) from exc
    correct = outputs.argmax(axis=1) == val.y
    accuracy = float(correct.mean() * 100.0)
    reference = float(entries["export"]["val_accuracy"])  # the fp32 model on onnxruntime: the guard's reference
    result = {
        "runtime": runtime.label(),
        "val_accuracy": accuracy,
        "val_outcomes": pack_outcomes(correct),
        "top1_agreement_with_ort": float((outputs.argmax(axis=1) == on_ort.argmax(axis=1)).mean() * 100.0),
        "max_abs_diff_vs_ort": float(np.abs(outputs - on_ort).max()),
        "accuracy_drop_vs_fp32_ort": reference - accuracy,
        "tolerance_points": drop,
        "within_tolerance": accuracy >= reference - drop,
    }
    build_dir = cache.new_build_dir(STAGE, key)
    try:
        return cache.commit(STAGE, key, build_dir, result)
    except BaseException:
        shutil.rmtree(build_dir, ignore_errors=True)
        raise


__all__ = ["STAGE", "judge_on_runtime", "trial_runtime"]
