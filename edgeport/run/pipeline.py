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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from edgeport.benchmarks import cpu_fingerprint, measure_interleaved
from edgeport.benchmarks.records import RuntimeChoice
from edgeport.config import RunConfig
from edgeport.core.artifacts import Artifact, atomic_write_json, atomic_write_text, sha256_json
from edgeport.core.manifest import check_manifest
from edgeport.core.progress import SILENT, Progress
from edgeport.core.staging import RunFolder
from edgeport.distill import accuracy, predict_logits, teacher_logits
from edgeport.exporter import ExportResult, onnx_predict
from edgeport.quantize.guard.judge import DEFAULT_MAX_DROP
from edgeport.quantize.strategy.fallback import fallback_miss
from edgeport.quantize.target import saturation_warning
from edgeport.report.run_report import render_run_report
from edgeport.run.kd_gain import KDGain, kd_gain
from edgeport.run.manifest import MANIFEST_SCHEMA, build_manifest
from edgeport.run.runtimes import runtime_table, runtime_variants
from edgeport.run.select import StudentChoice, choose_student
from edgeport.stages import (
    CheckedRun,
    PreparedData,
    QuantizedStudent,
    TrainedModel,
    batch_of,
    bench_settings,
    build_teacher,
    export_student,
    kd_config,
    prepare_data,
    quantize_student,
    student_lineage,
    train_student,
    validate,
)

__all__ = ["MANIFEST_SCHEMA", "RunBuild", "run_id_for", "run_pipeline"]


class _StageTimer:
    """Wall-clock seconds per stage, recorded in the manifest."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)


@dataclass
class RunBuild:
    """What the stages of one run returned: the inputs of its manifest and report."""

    config: RunConfig
    checked: CheckedRun
    prepared: PreparedData
    warnings: list[str]
    teacher: TrainedModel | None = None
    logits_cache_hit: bool = False
    student: TrainedModel | None = None
    baseline: TrainedModel | None = None
    shipped: TrainedModel | None = None  # the student exported: the KD one, or the baseline when better on val
    choice: StudentChoice | None = None
    kd_gain: KDGain | None = None  # with student.kd_seeds > 1: the KD gain over seeds
    runtimes: dict | None = None  # every installed runtime's latency and accuracy, the fastest faithful one
    export: ExportResult | None = None
    quantized: QuantizedStudent | None = None
    accuracies: dict | None = None
    latency: dict | None = None


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


def _train(build: RunBuild, root: Path, cache: Path, stages: _StageTimer, progress: Progress) -> None:
    """Teacher, its cached logits, the distilled student and (unless skipped) the no-KD baseline."""
    config, prepared = build.config, build.prepared
    with stages("teacher"):
        build.teacher = build_teacher(config, prepared, root / "teacher.safetensors", progress)
    with stages("teacher_logits"):
        t_logits, build.logits_cache_hit = teacher_logits(
            build.teacher.model, build.teacher.sha256, prepared.splits.train.x, cache
        )
    with stages("student"):
        build.student = train_student(
            config, prepared, root / "student.safetensors", t_logits, progress, "student (KD)"
        )
    if config.student.no_kd_baseline:
        with stages("student_no_kd"):
            build.baseline = train_student(
                config, prepared, root / "student-nokd.safetensors", None, progress, "student (no KD)"
            )
    if build.baseline is not None and config.student.kd_seeds > 1:
        with stages("kd_seeds"):
            build.kd_gain = kd_gain(config, prepared, t_logits, (build.student, build.baseline), progress)
        progress.log(build.kd_gain.line())
    build.shipped, build.choice = choose_student(build.student, build.baseline)
    progress.log(f"student: {build.choice.reason}")
    with stages("export"):
        build.export = export_student(config, prepared, build.shipped, build.teacher.sha256, root / "student.fp32.onnx")
    with stages("quantize"):
        quant_config = build.checked.quant_config
        assert quant_config is not None  # validate() refused backend "none" for a run
        lineage = student_lineage("onnx-int8", config, prepared, build.teacher.sha256, build.shipped.sha256)
        build.quantized = quantize_student(
            build.export.path,
            build.shipped,
            prepared,
            t_logits if build.shipped.kd else None,  # QAT fine-tunes the no-KD student without the teacher
            kd_config(config),
            quant_config,
            root / "student.int8.onnx",
            config.seed,
            lineage,
            progress,
            RuntimeChoice(config.bench.runtime, config.bench.precision),
        )
        fallback = build.quantized.fallback
        if fallback is not None and not fallback.within_tolerance:
            build.warnings.append(fallback_miss(fallback))


def _evaluate(build: RunBuild) -> dict:
    """Top-1 accuracy of every model on val and test."""
    assert build.teacher and build.student and build.export and build.quantized
    splits = build.prepared.splits
    fp32_path, int8_path = build.export.path, build.quantized.result.path
    teacher, student = build.teacher.model, build.student.model
    predictors = {
        "teacher": lambda x: predict_logits(teacher, x),
        "student": lambda x: predict_logits(student, x),
        "fp32_onnx": lambda x: onnx_predict(fp32_path, x),
        "int8_onnx": lambda x: onnx_predict(int8_path, x),
    }
    if build.baseline is not None:
        baseline = build.baseline.model
        predictors["student_no_kd"] = lambda x: predict_logits(baseline, x)
    return {
        name: {"val": accuracy(fn(splits.val.x), splits.val.y), "test": accuracy(fn(splits.test.x), splits.test.y)}
        for name, fn in predictors.items()
    }


def _benchmark(build: RunBuild, root: Path, progress: Progress) -> dict:
    """fp32 and int8 measured interleaved on real test images, on every installed runtime (stages/
    runtimes.py); raw samples to latency.json; each runtime's accuracy and agreement on val."""
    assert build.export and build.quantized
    bench = bench_settings(build.config.bench, build.config.seed)
    sample = {"input": batch_of(build.prepared.splits.test.x, bench.batch)}
    paths = {"fp32": build.export.path, "int8": build.quantized.result.path}
    variants = runtime_variants(bench.runtime_choice)
    models = {v.label: paths[v.model] for v in variants}
    with progress.task("benchmark fp32 vs int8 on every runtime", total=bench.rounds) as advance:
        results = measure_interleaved(models, bench, sample, advance, runtimes={v.label: v.runtime for v in variants})
    atomic_write_json(root / "latency.json", {k: r.to_dict() for k, r in results.items()})
    drop = build.config.quantize.max_accuracy_drop
    val = build.prepared.splits.val
    build.runtimes = runtime_table(variants, paths, results, val.x, val.y, DEFAULT_MAX_DROP if drop is None else drop)
    return results


def _artifacts(build: RunBuild) -> dict[str, Artifact]:
    assert build.teacher and build.student and build.export and build.quantized
    teacher, student = build.teacher, build.student
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
        "fp32_onnx": Artifact.from_file(build.export.path, "onnx-fp32", **build.export.describe()),
        "int8_onnx": Artifact.from_file(
            build.quantized.result.path, "onnx-int8", backend=build.quantized.result.backend
        ),
    }
    if build.baseline is not None:
        artifacts["student_no_kd"] = Artifact.from_file(
            build.baseline.checkpoint, "torch-state", model=str(build.baseline.spec), kd=None
        )
    return artifacts


def run_pipeline(
    config: RunConfig, out: str | Path = "runs", progress: Progress = SILENT, run_id: str | None = None
) -> tuple[Path, dict]:
    """Run every stage; return the committed run folder and its manifest."""
    cpu = cpu_fingerprint()
    checked = validate(config, cpu)
    assert checked.quant_config is not None
    risk = saturation_warning(checked.quant_config, cpu)
    warnings = [risk] if risk else []
    for warning in warnings:
        progress.log(f"warning: {warning}")
    stages = _StageTimer()
    # Two identical runs started in the same second get the same id: the second builds in <id>-2. An id
    # the caller chose is never changed (refused when taken), before any work.
    with RunFolder(out, run_id or run_id_for(config), unique=run_id is None) as folder:
        for stale in folder.stale_removed:
            progress.log(f"removed {stale}: a run that was killed left it unfinished")
        with stages("data"):
            prepared = prepare_data(config.data, config.seed)
        build = RunBuild(config, checked, prepared, warnings + _data_warnings(prepared, progress))
        _train(build, folder.path, Path(out) / ".cache" / "teacher-logits", stages, progress)
        with stages("evaluate"):
            build.accuracies = _evaluate(build)
        artifacts = _artifacts(build)
        with stages("benchmark"):
            build.latency = _benchmark(build, folder.path, progress)
        manifest = build_manifest(build, folder.run_id, artifacts, folder.path, stages.seconds)
        check_manifest(manifest, str(folder.path / "manifest.json"))  # the schema the gate reads
        atomic_write_text(folder.path / "report.md", render_run_report(manifest))
        atomic_write_json(folder.path / "manifest.json", manifest)  # last: its presence marks the run complete
        final = folder.commit()
    return final, manifest
