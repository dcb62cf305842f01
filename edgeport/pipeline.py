"""``edgeport run``: one candidate through every stage, into one run folder.

teacher (train or load) -> teacher logits (cached) -> student by KD (+ a no-KD
baseline) -> fp32 ONNX (checked against PyTorch) -> int8 ONNX (ORT static) ->
accuracy of everything on val and test -> interleaved latency of fp32 vs int8
-> manifest.json + report.md. The folder appears under its final name only when
complete.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from edgeport.artifacts import Artifact, RunFolder, atomic_write_json, atomic_write_text, sha256_json
from edgeport.benchmarks import cpu_fingerprint, measure_interleaved
from edgeport.config import RunConfig
from edgeport.distill import KDConfig, accuracy, predict_logits, teacher_logits
from edgeport.errors import ConfigError
from edgeport.exporter import export_onnx, onnx_predict, write_metadata
from edgeport.models import ModelSpec
from edgeport.models.checkpoint import count_parameters, load_weights, save_checkpoint
from edgeport.progress import SILENT, Progress
from edgeport.quant_backends import QuantConfig, build_quant_config
from edgeport.quant_backends.fallback import fallback_miss
from edgeport.quant_backends.target import saturation_warning
from edgeport.quant_backends.verify import verify_int8
from edgeport.report.run_report import render_run_report
from edgeport.stages import batch_of, bench_settings, prepare_data, quantize_student, seeded_model
from edgeport.stages import fit as fit_section
from edgeport.versions import package_versions

MANIFEST_SCHEMA = 1


class _Stages:
    """Wall-clock seconds per stage, recorded in the manifest."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)


def validate(config: RunConfig, cpu: dict) -> tuple[ModelSpec, ModelSpec, QuantConfig, str]:
    """Cheap checks before any folder is made or any data is read."""
    teacher, student = ModelSpec.parse(config.teacher.model), ModelSpec.parse(config.student.model)
    teacher.validate()
    student.validate()
    if config.data.val_fraction + config.data.test_fraction >= 1:
        raise ConfigError("data.val_fraction + data.test_fraction must be < 1")
    if config.teacher.weights is not None and not Path(config.teacher.weights).is_file():
        raise ConfigError(f"{config.teacher.weights}: teacher checkpoint not found")
    quant_config, range_reason = build_quant_config(config.quantize.model_dump(exclude={"max_accuracy_drop"}), cpu)
    return teacher, student, quant_config, range_reason


def run_id_for(config: RunConfig) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{sha256_json(config.model_dump())[:8]}"


def run_pipeline(
    config: RunConfig, out: str | Path = "runs", progress: Progress = SILENT, run_id: str | None = None
) -> tuple[Path, dict]:
    """Run every stage; return the committed run folder and its manifest."""
    cpu = cpu_fingerprint()
    teacher_spec, student_spec, quant_config, range_reason = validate(config, cpu)
    warnings = [
        w
        for w in [
            saturation_warning(quant_config.activation_type, quant_config.weight_type, quant_config.reduce_range, cpu)
        ]
        if w
    ]
    for warning in warnings:
        progress.log(f"warning: {warning}")
    stages = _Stages()
    seed = config.seed
    with RunFolder(out, run_id or run_id_for(config)) as folder:
        for stale in folder.stale_removed:
            progress.log(f"removed {stale}: a run that was killed left it unfinished")
        root = folder.path
        with stages("data"):
            prepared = prepare_data(config.data, seed)
        data, splits, norm = prepared.data, prepared.splits, prepared.norm
        channels, classes, size = prepared.shape
        progress.log(
            f"data: {data.name} {len(data.y)} images {data.x.shape[1:]} {classes} classes "
            f"(train {len(splits.train.y)} / val {len(splits.val.y)} / test {len(splits.test.y)})"
        )
        if data.label_values:
            shown = ", ".join(map(str, data.label_values[:6])) + (", ..." if len(data.label_values) > 6 else "")
            warnings.append(
                f"{data.source}: labels {shown} are not 0..{classes - 1}; they were mapped to class "
                f"indices 0..{classes - 1} in sorted order (manifest dataset.label_values)"
            )
            progress.log(f"warning: {warnings[-1]}")

        def new_model(spec):
            return seeded_model(spec, seed, prepared)

        def fit(model, section, description, kd=None, t_logits=None):
            return fit_section(model, section, prepared, seed, progress, description, kd, t_logits)

        # Teacher: load the user's checkpoint or train one.
        with stages("teacher"):
            teacher = new_model(teacher_spec)
            if config.teacher.weights:
                load_weights(teacher, config.teacher.weights)
                teacher_history = None
            else:
                teacher_history = fit(teacher, config.teacher, "teacher").history
            teacher.eval()
            teacher_ckpt = Artifact.from_file(
                save_checkpoint(teacher, root / "teacher.safetensors", teacher_spec, channels, classes, size),
                "torch-state",
                model=str(teacher_spec),
                parameters=count_parameters(teacher),
            )

        with stages("teacher_logits"):
            t_logits, cache_hit = teacher_logits(
                teacher, teacher_ckpt.sha256, splits.train.x, Path(out) / ".cache" / "teacher-logits"
            )

        kd = KDConfig(temperature=config.student.temperature, alpha=config.student.alpha)
        with stages("student"):
            student = new_model(student_spec)
            student_history = fit(student, config.student, "student (KD)", kd=kd, t_logits=t_logits).history
            student_ckpt = Artifact.from_file(
                save_checkpoint(student, root / "student.safetensors", student_spec, channels, classes, size),
                "torch-state",
                model=str(student_spec),
                parameters=count_parameters(student),
                kd=kd.describe(),
            )

        baseline_ckpt = baseline = None
        if config.student.no_kd_baseline:
            with stages("student_no_kd"):
                baseline = new_model(student_spec)
                baseline_history = fit(baseline, config.student, "student (no KD)").history
                baseline_ckpt = Artifact.from_file(
                    save_checkpoint(baseline, root / "student-nokd.safetensors", student_spec, channels, classes, size),
                    "torch-state",
                    model=str(student_spec),
                    kd=None,
                )

        with stages("export"):
            fp32_path = root / "student.fp32.onnx"
            export = export_onnx(
                student, splits.train.x[:2], fp32_path, config.export.exporter, parity_inputs=splits.val.x
            )

        with stages("quantize"):
            int8_path = root / "student.int8.onnx"
            quantized = quantize_student(
                fp32_path, student, prepared, t_logits, kd, config.quantize, quant_config, int8_path, seed, progress
            )
            quant, fallback, calib_idx = quantized.result, quantized.fallback, quantized.calibration_indices
            if fallback is not None and not fallback.within_tolerance:
                warnings.append(fallback_miss(fallback))
            verification = verify_int8(int8_path, fp32_path, {"input": splits.val.x}, splits.val.y)

        with stages("evaluate"):
            predictors = {
                "teacher": lambda x: predict_logits(teacher, x),
                "student": lambda x: predict_logits(student, x),
                "fp32_onnx": lambda x: onnx_predict(fp32_path, x),
                "int8_onnx": lambda x: onnx_predict(int8_path, x),
            }
            if baseline is not None:
                predictors["student_no_kd"] = lambda x: predict_logits(baseline, x)
            logits = {name: {"val": fn(splits.val.x), "test": fn(splits.test.x)} for name, fn in predictors.items()}
            accuracies = {
                name: {"val": accuracy(pred["val"], splits.val.y), "test": accuracy(pred["test"], splits.test.y)}
                for name, pred in logits.items()
            }

        short = {
            "seed": str(seed),
            "dataset_sha256": data.fingerprint(),
            "student": str(student_spec),
            "teacher_sha256": teacher_ckpt.sha256,
            "student_sha256": student_ckpt.sha256,
            "normalization": sha256_json(norm.describe())[:16],
        }
        write_metadata(fp32_path, {**short, "kind": "onnx-fp32"})
        write_metadata(int8_path, {**short, "kind": "onnx-int8", "quant": sha256_json(quant_config.describe())[:16]})
        fp32_art = Artifact.from_file(fp32_path, "onnx-fp32", **export.describe())
        int8_art = Artifact.from_file(int8_path, "onnx-int8", backend=quant.backend)

        with stages("benchmark"):
            bench = bench_settings(config.bench, seed)
            sample = {"input": batch_of(splits.test.x, bench.batch)}
            with progress.task("benchmark fp32 vs int8", total=bench.rounds) as advance:
                results = measure_interleaved({"fp32": fp32_path, "int8": int8_path}, bench, sample, advance)
            atomic_write_json(root / "latency.json", {k: r.to_dict() for k, r in results.items()})

        fp32_stats, int8_stats = results["fp32"].stats, results["int8"].stats
        ratio = int8_stats["p50_ms"] / fp32_stats["p50_ms"]
        artifacts = {"teacher": teacher_ckpt, "student": student_ckpt, "fp32_onnx": fp32_art, "int8_onnx": int8_art}
        if baseline_ckpt is not None:
            artifacts["student_no_kd"] = baseline_ckpt
        manifest = {
            "schema_version": MANIFEST_SCHEMA,
            "run_id": folder.run_id,
            "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "seed": seed,
            "config": config.model_dump(),
            "dataset": {
                **data.describe(),
                "splits": splits.describe(),
                "normalization": norm.describe(),
                "input_name": "input",
            },
            "artifacts": {name: art.describe(relative_to=root) for name, art in artifacts.items()},
            "lineage": {
                "teacher": {
                    "model": teacher_spec.describe(),
                    "weights": config.teacher.weights,
                    "trained_here": teacher_history is not None,
                    "history": teacher_history,
                },
                "student": {"model": student_spec.describe(), "kd": kd.describe(), "history": student_history},
                "student_no_kd": {"history": baseline_history} if baseline is not None else None,
                "teacher_logits_cache_hit": cache_hit,
                "calibration": {
                    "samples": len(calib_idx),
                    "split": "train",
                    "indices_sha256": sha256_json(calib_idx.tolist()),
                },
                "quantization": {
                    **quant_config.describe(),
                    "reduce_range_reason": range_reason,
                    "seconds": round(quant.seconds, 3),
                    "report": quant.report,
                },
            },
            "metrics": {
                "accuracy": accuracies,
                "kd_gain_points": (
                    accuracies["student"]["test"] - accuracies["student_no_kd"]["test"]
                    if baseline is not None
                    else None
                ),
                "parity": {"fp32_onnx_vs_torch": export.describe()["parity"], "int8_vs_fp32": verification["vs_fp32"]},
            },
            "verification": verification,
            "fallback": fallback.describe() if fallback is not None else None,
            "warnings": warnings,
            "latency": {
                "settings": results["fp32"].settings,
                "fp32": fp32_stats,
                "int8": int8_stats,
                "int8_over_fp32_p50": ratio,
                "int8_faster": ratio < 1.0,
                "samples_file": "latency.json",
            },
            "environment": results["fp32"].environment,
            "versions": package_versions(),
            "timings_s": stages.seconds,
        }
        atomic_write_text(root / "report.md", render_run_report(manifest))
        atomic_write_json(root / "manifest.json", manifest)  # last: its presence marks the run complete
        final = folder.commit()
    return final, manifest
