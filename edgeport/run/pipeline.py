"""``edgeport run``: one candidate through every stage, into one run folder.

teacher (train or load) -> teacher logits (cached) -> student by KD (+ a no-KD
baseline) -> fp32 ONNX (checked against PyTorch) -> int8 ONNX -> accuracy of
everything on val and test -> interleaved latency of fp32 vs int8 -> manifest.json
+ report.md. The stages are the functions of ``edgeport.stages``; this module
chains them and records what they return. The folder appears under its final name
only when complete.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from edgeport.benchmarks import cpu_fingerprint, measure_interleaved
from edgeport.benchmarks.footprint import footprints_of
from edgeport.config import RunConfig
from edgeport.core.artifacts import Artifact, atomic_write_json, atomic_write_text, sha256_json
from edgeport.core.manifest import check_manifest
from edgeport.core.progress import SILENT, Progress
from edgeport.core.staging import RunFolder
from edgeport.distill import accuracy, predict_logits, teacher_logits
from edgeport.errors import ConfigError
from edgeport.exporter import onnx_predict
from edgeport.quantize import QuantConfig
from edgeport.quantize.guard.judge import DEFAULT_MAX_DROP
from edgeport.quantize.strategy.fallback import fallback_miss
from edgeport.quantize.target import saturation_warning
from edgeport.report.run_report import render_run_report
from edgeport.run.build import BuiltModels, Measurements, RunInputs, RunResult, TrainedStudents
from edgeport.run.kd_gain import kd_gain
from edgeport.run.manifest import MANIFEST_SCHEMA, build_manifest
from edgeport.run.runtimes import runtime_table, runtime_variants
from edgeport.run.select import choose_student
from edgeport.stages import (
    CheckedRun,
    PreparedData,
    batch_of,
    bench_settings,
    build_teacher,
    export_student,
    prepare_data,
    quantize_student,
    student_lineage,
    train_student,
    validate,
)
from edgeport.stages.quantize import Fp32Student

__all__ = ["MANIFEST_SCHEMA", "RunResult", "run_id_for", "run_pipeline"]


class _StageTimer:
    """Wall-clock seconds per stage, recorded in the manifest."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)


def run_id_for(config: RunConfig) -> str:
    """The time to the second and a digest of the configuration; RunFolder makes it unique in its folder."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{sha256_json(config.model_dump())[:8]}"


def _data_warnings(prepared: PreparedData, progress: Progress) -> list[str]:
    data, splits = prepared.data, prepared.splits
    classes = prepared.shape[1]
    progress.log(
        f"data: {data.name} {len(data.y)} images {data.x.shape[1:]} {classes} classes "
        f"(train {len(splits.train.y)} / val {len(splits.val.y)} / test {len(splits.test.y)})"
    )
    if not data.label_values:
        return []
    shown = ", ".join(map(str, data.label_values[:6])) + (", ..." if len(data.label_values) > 6 else "")
    warning = (
        f"{data.source}: labels {shown} are not 0..{classes - 1}; they were mapped to class "
        f"indices 0..{classes - 1} in sorted order (manifest dataset.label_values)"
    )
    progress.log(f"warning: {warning}")
    return [warning]


def _train(inputs: RunInputs, root: Path, cache: Path, stages: _StageTimer, progress: Progress) -> TrainedStudents:
    """Teacher, its cached logits, the distilled student and (unless skipped) the no-KD baseline."""
    config, prepared = inputs.config, inputs.prepared
    with stages("teacher"):
        teacher = build_teacher(config, prepared, root / "teacher.safetensors", progress)
    with stages("teacher_logits"):
        t_logits, logits_cache_hit = teacher_logits(teacher.model, teacher.sha256, prepared.splits.train.x, cache)
    with stages("student"):
        student = train_student(config, prepared, root / "student.safetensors", t_logits, progress, "student (KD)")
    baseline = gain = None
    if config.student.no_kd_baseline:
        with stages("student_no_kd"):
            baseline = train_student(
                config, prepared, root / "student-nokd.safetensors", None, progress, "student (no KD)"
            )
    if baseline is not None and config.student.kd_seeds > 1:
        with stages("kd_seeds"):
            gain = kd_gain(config, prepared, t_logits, (student, baseline), progress)
        progress.log(gain.line())
    val = prepared.splits.val
    shipped, choice = choose_student(student, baseline, val.x, val.y)
    progress.log(f"student: {choice.reason}")
    return TrainedStudents(teacher, t_logits, logits_cache_hit, student, baseline, shipped, choice, gain)


def _build(
    inputs: RunInputs, trained: TrainedStudents, root: Path, stages: _StageTimer, progress: Progress
) -> BuiltModels:
    """The shipped student exported to fp32 ONNX, then quantized to int8."""
    config, prepared, shipped = inputs.config, inputs.prepared, trained.shipped
    with stages("export"):
        export = export_student(config, prepared, shipped, trained.teacher.sha256, root / "student.fp32.onnx")
    with stages("quantize"):
        lineage = student_lineage("onnx-int8", config, prepared, trained.teacher.sha256, shipped.sha256)
        # QAT fine-tunes the no-KD student without the teacher
        fp32 = Fp32Student(export.path, shipped, lineage, trained.teacher_logits if shipped.kd else None)
        quantized = quantize_student(fp32, prepared, config, inputs.quant_config, root / "student.int8.onnx", progress)
        fallback = quantized.fallback
        missed = (fallback_miss(fallback),) if fallback is not None and not fallback.within_tolerance else ()
    return BuiltModels(export, quantized, missed)


def _evaluate(inputs: RunInputs, trained: TrainedStudents, built: BuiltModels) -> dict:
    """Top-1 accuracy of every model on val and test."""
    splits = inputs.prepared.splits
    fp32_path, int8_path = built.export.path, built.quantized.result.path
    teacher, student = trained.teacher.model, trained.student.model
    predictors = {
        "teacher": lambda x: predict_logits(teacher, x),
        "student": lambda x: predict_logits(student, x),
        "fp32_onnx": lambda x: onnx_predict(fp32_path, x),
        "int8_onnx": lambda x: onnx_predict(int8_path, x),
    }
    if trained.baseline is not None:
        baseline = trained.baseline.model
        predictors["student_no_kd"] = lambda x: predict_logits(baseline, x)
    return {
        name: {"val": accuracy(fn(splits.val.x), splits.val.y), "test": accuracy(fn(splits.test.x), splits.test.y)}
        for name, fn in predictors.items()
    }


def _benchmark(inputs: RunInputs, built: BuiltModels, root: Path, progress: Progress) -> tuple[dict, dict, dict | None]:
    """fp32 and int8 measured interleaved on real test images, on every installed runtime (run/
    runtimes.py), then each one's footprint on the run's own runtime (``bench.cold_starts`` fresh processes);
    raw samples and footprints to latency.json. The results, each runtime's accuracy and agreement on val,
    and the footprints."""
    config, prepared = inputs.config, inputs.prepared
    bench = bench_settings(config.bench, config.seed)
    sample = {"input": batch_of(prepared.splits.test.x, bench.batch)}
    paths = {"fp32": built.export.path, "int8": built.quantized.result.path}
    variants = runtime_variants(bench.runtime)
    models = {v.label: paths[v.model] for v in variants}
    with progress.task("benchmark fp32 vs int8 on every runtime", total=bench.rounds) as advance:
        results = measure_interleaved(models, bench, sample, advance, runtimes={v.label: v.runtime for v in variants})
    found = None
    if config.bench.cold_starts:
        on = dict.fromkeys(paths, bench.runtime)
        found = footprints_of(paths, on, bench, sample, {}, config.bench.cold_starts, progress=progress)
    entries = {k: r.to_dict() | ({"footprint": found[k]} if found and k in found else {}) for k, r in results.items()}
    atomic_write_json(root / "latency.json", entries)
    drop = config.max_accuracy_drop
    val = prepared.splits.val
    runtimes = runtime_table(variants, paths, results, val.x, val.y, DEFAULT_MAX_DROP if drop is None else drop)
    return results, runtimes, found


def _artifacts(trained: TrainedStudents, built: BuiltModels) -> dict[str, Artifact]:
    teacher, student, baseline = trained.teacher, trained.student, trained.baseline
    artifacts = {
        "teacher": Artifact.from_file(
            teacher.checkpoint, "torch-state", model=str(teacher.spec), parameters=teacher.parameters
        ),
        "student": Artifact.from_file(
            student.checkpoint,
            "torch-state",
            model=str(student.spec),
            parameters=student.parameters,
            kd=student.kd.describe() if student.kd else None,
        ),
        "fp32_onnx": Artifact.from_file(built.export.path, "onnx-fp32", **built.export.describe()),
        "int8_onnx": Artifact.from_file(
            built.quantized.result.path, "onnx-int8", backend=built.quantized.result.backend
        ),
    }
    if baseline is not None:
        artifacts["student_no_kd"] = Artifact.from_file(
            baseline.checkpoint, "torch-state", model=str(baseline.spec), kd=None
        )
    return artifacts


def _checked(config: RunConfig, cpu: dict, progress: Progress) -> tuple[CheckedRun, QuantConfig, list[str]]:
    """The run's checked settings, its quantization config and the CPU's saturation warning (logged)."""
    checked = validate(config, cpu)
    if checked.quant_config is None:  # validate() builds one unless asked for a search's fp32 candidate
        raise ConfigError("edgeport run quantizes its student: quantize.backend cannot be 'none'")
    risk = saturation_warning(checked.quant_config, cpu)
    warnings = [risk] if risk else []
    for warning in warnings:
        progress.log(f"warning: {warning}")
    return checked, checked.quant_config, warnings


def run_pipeline(
    config: RunConfig, out: str | Path = "runs", progress: Progress = SILENT, run_id: str | None = None
) -> tuple[Path, dict]:
    """Run every stage; return the committed run folder and its manifest."""
    checked, quant_config, warnings = _checked(config, cpu_fingerprint(), progress)
    stages = _StageTimer()
    # Two identical runs started in the same second get the same id: the second builds in <id>-2. An id
    # the caller chose is never changed (refused when taken), before any work.
    with RunFolder(out, run_id or run_id_for(config), unique=run_id is None) as folder:
        for stale in folder.stale_removed:
            progress.log(f"removed {stale}: a run that was killed left it unfinished")
        with stages("data"):
            prepared = prepare_data(config.data, config.seed)
        inputs = RunInputs(config, checked, quant_config, prepared, (*warnings, *_data_warnings(prepared, progress)))
        trained = _train(inputs, folder.path, Path(out) / ".cache" / "teacher-logits", stages, progress)
        built = _build(inputs, trained, folder.path, stages, progress)
        with stages("evaluate"):
            accuracies = _evaluate(inputs, trained, built)
        artifacts = _artifacts(trained, built)
        with stages("benchmark"):
            latency, runtimes, footprint = _benchmark(inputs, built, folder.path, progress)
        result = RunResult(inputs, trained, built, Measurements(accuracies, latency, runtimes, footprint))
        manifest = build_manifest(result, folder.run_id, artifacts, folder.path, stages.seconds)
        check_manifest(manifest, str(folder.path / "manifest.json"))  # the schema the gate reads
        atomic_write_text(folder.path / "report.md", render_run_report(manifest))
        atomic_write_json(folder.path / "manifest.json", manifest)  # last: its presence marks the run complete
        final = folder.commit()
    return final, manifest
