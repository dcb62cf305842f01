"""One trial's benchmark and the record of a measured trial: the metrics the objective and the reports read."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from edgeport.benchmarks import BenchSettings
from edgeport.benchmarks.openvino_runtime import openvino_version
from edgeport.errors import BenchmarkError
from edgeport.search.cache import StageCache, stage_key
from edgeport.search.plan import TrialPlan
from edgeport.search.record import TrialRecord, trial_record
from edgeport.search.tasks import prepared_data
from edgeport.stages import batch_of, bench_settings

SEARCH_COLD_STARTS = 3  # fresh processes per trial when the search constrains memory or cold start
FOOTPRINT_CONSTRAINTS = ("max_peak_rss_mb", "max_cold_start_ms")
LATENCY_KEYS = (
    "count",
    "min_ms",
    "mean_ms",
    "std_ms",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "p50_ci_ms",
    "p90_ci_ms",
    "throughput_per_s",
)


_CACHE_FIELDS = ("stage", "key", "files", "paths", "folder", "val_outcomes")  # bookkeeping, not the verdict


def _key_settings(settings: BenchSettings) -> dict:
    """The settings a cached latency depends on; OpenVINO adds its version."""
    found = settings.to_dict()
    if settings.runtime.name == "openvino":
        found["openvino"] = openvino_version()
    return found


def footprint_cold_starts(selection: dict) -> int:
    """Cold starts per trial: SEARCH_COLD_STARTS when the selection constrains memory or cold start, else 0."""
    return SEARCH_COLD_STARTS if any(selection.get(k) is not None for k in FOOTPRINT_CONSTRAINTS) else 0


@dataclass(frozen=True)
class BenchJob:
    """A trial's benchmark: the artifact, the settings and inputs it is measured at, its cache key."""

    key: str
    model: str
    settings: BenchSettings
    inputs: dict
    cold_starts: int


def bench_job(plan: TrialPlan, entries: dict, device, cold_starts: int = 0) -> BenchJob:
    """What the trial's benchmark measures on ``device`` (a BenchDevice or a pool): the artifact at its batch
    and threads, cached by content; with ``cold_starts`` its footprint too."""
    config = plan.candidate.config
    artifact = entries[plan.artifact_stage.stage]
    settings = bench_settings(config.bench, config.seed)
    measured = {"footprint": cold_starts} if cold_starts else {}  # keys without a footprint stay as they were
    # "target" is part of the cache key's content: renaming it would miss every cached benchmark.
    key = stage_key(
        "benchmark",
        model=artifact["files"]["model.onnx"],
        settings=_key_settings(settings),
        target=device.identity(),
        **measured,
    )
    inputs = {"input": batch_of(prepared_data(config).splits.val.x, settings.batch)}
    return BenchJob(key, artifact["paths"]["model.onnx"], settings, inputs, cold_starts)


def commit_bench(
    cache: StageCache, job: BenchJob, result, window: list[float], footprint: dict | None, device: str | None = None
) -> dict:
    """The benchmark's cache entry, stored: the result, when it was measured, its footprint, its pool device."""
    build_dir = cache.new_build_dir("benchmark", job.key)
    entry = {
        **result.to_dict(),
        "measure_window": window,
        **({"footprint": [footprint]} if footprint else {}),
        **({"device": device} if device else {}),
    }
    try:
        return cache.commit("benchmark", job.key, build_dir, entry)
    except BaseException:
        shutil.rmtree(build_dir, ignore_errors=True)
        raise


def bench_trial(plan: TrialPlan, entries: dict, cache: StageCache, device, cold_starts: int = 0) -> tuple[dict, bool]:
    """Latency of the trial's artifact on ``device`` (a BenchDevice), measured now unless cached, and with
    ``cold_starts`` its footprint on its runtime (onnxruntime's default memory setting: arena on)."""
    job = bench_job(plan, entries, device, cold_starts)
    found = cache.lookup("benchmark", job.key)
    if found is not None:
        return found, True
    started = time.time()
    result = device.measure(job.model, job.settings, job.inputs)
    window = [started, time.time()]
    footprint = device.footprint(job.model, job.settings, job.inputs, cold_starts) if cold_starts else None
    return commit_bench(cache, job, result, window, footprint), False


def _footprint(records: list | None) -> dict | None:
    """The trial's footprint as its constraints read it: the worst cold start, with the medians."""
    if not records:
        return None
    record = records[0]
    return {
        "runtime": record["runtime"],
        "cpu_mem_arena": record["cpu_mem_arena"],
        "cold_starts": record["cold_starts"],
        **{f"{k}_worst": record[k]["max"] for k in ("peak_rss_mb", "cold_start_ms")},
        **{f"{k}_median": record[k]["median"] for k in ("peak_rss_mb", "cold_start_ms")},
    }


def measured_record(
    plan: TrialPlan, entries: dict, bench: dict, latency_metric: str, judged: dict | None = None
) -> TrialRecord:
    """The ok record of a benchmarked trial, from its stages' cache entries and its benchmark entry.
    ``judged``: its accuracy as its runtime runs it (runtime_judgement.py; None: onnxruntime, the stages')."""
    artifact_stage = plan.artifact_stage.stage
    artifact = entries[artifact_stage]
    stats = bench["stats"]
    if stats.get(f"{latency_metric}_ms") is None:
        raise BenchmarkError(
            f"{stats['count']} latency samples cannot support {latency_metric}; raise bench.iterations"
        )
    val = artifact["val_accuracy"] if judged is None else judged["val_accuracy"]
    outcomes = artifact.get("val_outcomes") if judged is None else judged["val_outcomes"]
    fp32, teacher = entries["export"]["val_accuracy"], entries["teacher"]["val_accuracy"]
    quant = entries.get("quantize")
    faithful = quant.get("within_tolerance") if quant else None
    if judged is not None:  # both verdicts must hold: the guard's (int8) and top-1 as its runtime runs it
        faithful = judged["within_tolerance"] and faithful is not False
    metrics = {
        "val_accuracy": val,
        "val_outcomes": outcomes,  # per-sample, for paired tests (None: an older cache entry)
        "fp32_val_accuracy": fp32,
        "student_val_accuracy": entries["student"]["val_accuracy"],
        "teacher_val_accuracy": teacher,
        "accuracy_drop_vs_student": fp32 - val,
        "accuracy_drop_vs_teacher": teacher - val,
        "latency": {k: stats.get(k) for k in LATENCY_KEYS},
        "latency_batch": bench["settings"]["batch"],
        "latency_threads": bench["settings"]["threads"],
        "kind": "onnx-int8" if quant else "onnx-fp32",
        "size_bytes": os.path.getsize(artifact["paths"]["model.onnx"]),
        "student_parameters": entries["student"]["parameters"],
        "within_tolerance": faithful,
        "judged_on_runtime": {k: v for k, v in judged.items() if k not in _CACHE_FIELDS} if judged else None,
        "int8_coverage": quant["verification"]["coverage"] if quant else None,
        # backend "auto": the recipe it chose (the quantize entry keeps every attempt)
        "quant_recipe": quant["auto"]["chosen"] if quant and quant.get("auto") else None,
        "footprint": _footprint(bench.get("footprint")),
        "latency_device": bench.get("device"),  # the pool device that measured it (None: one device)
    }
    artifacts = {
        "model": artifact["paths"]["model.onnx"],
        "model_sha256": artifact["files"]["model.onnx"],
        "teacher": entries["teacher"]["paths"]["model.safetensors"],
        "student": entries["student"]["paths"]["model.safetensors"],
        "fp32_onnx": entries["export"]["paths"]["model.onnx"],
        "benchmark": str(Path(bench["folder"]) / "result.json"),
        "stage_keys": {task.stage: task.key for task in plan.chain} | {"benchmark": bench["key"]},
    }
    timings = {stage: entry.get("build_seconds") for stage, entry in entries.items()}
    timings["windows"] = {
        **{stage: entry.get("build_window") for stage, entry in entries.items()},
        "benchmark": bench.get("measure_window"),
    }
    return trial_record(plan.candidate, "ok", metrics=metrics, artifacts=artifacts, timings=timings)
