"""Small manifests and search records shaped as edgeport writes them, for the report tests.

The run manifest follows edgeport.run.manifest.build_manifest; the quantize manifest
edgeport.quantize.job._manifest; the search trials edgeport.search.store.trials() after
edgeport.search.finish._judge, and the search summary finish._summary (+ "run" and "best").
Figures are chosen so that each one printed can be found in the output by its formatted value.
"""

from __future__ import annotations

import copy

INT8, FP32, TEACHER, STUDENT, NO_KD = "1" * 64, "f" * 64, "3" * 64, "4" * 64, "5" * 64
CPU = {"model": "Some CPU @ 2.1GHz", "machine": "x86_64", "logical_cores": 2, "isa": ["avx2", "avx512_vnni"]}
VERDICT_OK = "within tolerance: top1_accuracy 95.19%, required >= 94.2% (the validation split)"
VERDICT_MISS = "OUTSIDE TOLERANCE: top1_accuracy 80.37%, required >= 94.2% (the validation split)"


def stats(p50: float, p90: float | None, p99: float | None, mean: float, count: int = 400) -> dict:
    """edgeport.benchmarks.stats.summarize's shape."""
    return {
        "count": count,
        "min_ms": p50 * 0.9,
        "mean_ms": mean,
        "std_ms": 0.01,
        "p50_ms": p50,
        "p90_ms": p90,
        "p95_ms": p90,  # None with p90: it needs more samples still
        "p99_ms": p99,
        "max_ms": p50 * 3,
        "throughput_per_s": 1000.0 / mean,
        "p50_ci_ms": [p50 * 0.98, p50 * 1.02],
        "p90_ci_ms": [p90 * 0.97, p90 * 1.03] if p90 is not None else None,
        "confidence": 0.95,
        "unsupported": [name for name, value in (("p90", p90), ("p99", p99)) if value is None],
    }


def ort_static(**changes) -> dict:
    """OrtStaticConfig.describe() plus what the run adds."""
    return {
        "backend": "ort-static",
        "reduce_range": False,
        "calibration_samples": 256,
        "exclude_nodes": [],
        "per_channel": True,
        "weight_type": "int8",
        "exclude_op_types": [],
        "format": "qdq",
        "activation_type": "uint8",
        "symmetric_activations": False,
        "symmetric_weights": True,
        "calibration_method": "minmax",
        "reduce_range_reason": "auto: this CPU multiplies int8 without saturation",
        "seconds": 0.412,
        "report": {"calibration_samples": 256},
        "auto": None,
        **changes,
    }


def _file(path: str, kind: str, sha: str, size: int, **meta) -> dict:
    return {"path": path, "kind": kind, "sha256": sha, "size_bytes": size, **meta}


def _runtime_row(label, model, runtime, precision_used, p50, p90, ratio, val, agreement, faithful) -> dict:
    return {
        "label": label,
        "model": model,
        "runtime": runtime,
        "precision": None,
        "precision_used": precision_used,
        "p50_ms": p50,
        "p90_ms": p90,
        "p50_over_ort_fp32": ratio,
        "val_accuracy": val,
        "top1_agreement_with_ort": agreement,
        "max_abs_diff_vs_ort": 0.0,
        "faithful": faithful,
    }


ORT_ROWS = [
    _runtime_row("fp32", "fp32", "ort", None, 0.2, 0.25, 1.0, 95.56, 100.0, True),
    _runtime_row("int8", "int8", "ort", None, 0.1, 0.125, 0.5, 95.19, 100.0, True),
]
OPENVINO_ROWS = [
    _runtime_row("fp32@openvino", "fp32", "openvino", "bf16", 0.08, 0.09, 0.4, 95.19, 99.63, True),
    _runtime_row("int8@openvino", "int8", "openvino", None, 0.04, 0.05, 0.2, 93.33, 97.78, False),
]


def run_manifest() -> dict:
    """A run folder's manifest.json: onnxruntime only, no fallback, no no-KD baseline, no seeds."""
    settings = {"batch": 1, "threads": 1, "warmup": 100, "iterations": 400, "rounds": 10, "runtime": "ort"}
    return copy.deepcopy(
        {
            "verdict": VERDICT_OK,
            "schema_version": 1,
            "run_id": "20261129-090223-fe1fd909",
            "created_utc": "2026-11-29T09:02:25+00:00",
            "seed": 7,
            "config": {"seed": 7},
            "dataset": {
                "name": "digits",
                "source": "sklearn",
                "samples": 1797,
                "shape": [1, 16, 16],
                "num_classes": 10,
                "sha256": "9" * 64,
                "splits": {"train": 1257, "val": 270, "test": 270},
                "normalization": {"mean": [0.1], "std": [0.3]},
                "input_name": "input",
            },
            "artifacts": {
                "teacher": _file("teacher.safetensors", "torch-state", TEACHER, 70248),
                "student": _file("student.safetensors", "torch-state", STUDENT, 7248),
                "fp32_onnx": _file("student.fp32.onnx", "onnx-fp32", FP32, 17663),
                "int8_onnx": _file("student.int8.onnx", "onnx-int8", INT8, 15120),
            },
            "lineage": {
                "teacher": {"model": {"name": "cnn"}, "weights": None, "trained_here": True, "history": []},
                "student": {"model": {"name": "cnn"}, "kd": {"temperature": 4.0, "alpha": 0.5}, "history": []},
                "student_no_kd": None,
                "student_choice": None,
                "teacher_logits_cache_hit": False,
                "calibration": {"samples": 256, "sha256": "8" * 64},
                "quantization": ort_static(),
            },
            "metrics": {
                "accuracy": {
                    "teacher": {"val": 97.04, "test": 96.3},
                    "student": {"val": 95.56, "test": 95.93},
                    "fp32_onnx": {"val": 95.56, "test": 95.93},
                    "int8_onnx": {"val": 95.19, "test": 95.56},
                },
                "kd_gain_points": None,
                "kd_gain_over_seeds": None,
                "parity": {
                    "fp32_onnx_vs_torch": {"max_abs_diff": 1.25e-6},
                    "int8_vs_fp32": {
                        "max_abs_diff": 0.31,
                        "mean_cosine": 0.9987,
                        "sqnr_db": 27.34,
                        "top1_agreement": 98.52,
                    },
                },
            },
            "verification": {
                "checker": "passed",
                "onnxruntime": "loads",
                "samples": 270,
                "vs_fp32": {"max_abs_diff": 0.31, "mean_cosine": 0.9987, "sqnr_db": 27.34, "top1_agreement": 98.52},
                "reference_runtime": {
                    "samples": 64,
                    "max_abs_diff": 0.00123,
                    "mean_cosine": 0.99999,
                    "sqnr_db": 80.0,
                    "top1_agreement": 100.0,
                },
                "other_runtimes": {},
                "coverage": {
                    "integer_kernels": 4,
                    "float_kernels": 1,
                    "share": 0.8,
                    "in_subgraphs": 0,
                    "quantized_nodes": 12,
                    "integer_ops": {"ConvInteger": 3, "MatMulInteger": 1},
                    "unfused": ["/head/Gemm (Gemm)"],
                },
                "accuracy": {"fp32": 95.56, "int8": 95.19},
            },
            "guard": {"metric": "top1_accuracy", "value": 95.19, "required": 94.2, "within_tolerance": True},
            "fallback": None,
            "warnings": [],
            "latency": {
                "settings": settings,
                "fp32": stats(0.2, 0.25, 0.4, 0.21),
                "int8": stats(0.1, 0.125, 0.2, 0.11),
                "int8_over_fp32_p50": 0.5,
                "int8_faster": True,
                "samples_file": "latency.json",
            },
            "runtimes": {"tolerance_points": 1.0, "rows": ORT_ROWS, "fastest_faithful": "int8"},
            "environment": {"cpu": CPU},
            "versions": {"edgeport": "0.1.0", "python": "3.11.7"},
            "timings_s": {"data": 0.1},
        }
    )


def fallback_report(within: bool = True) -> dict:
    """edgeport.quantize.strategy.fallback.FallbackReport.describe() after a bisection."""
    return {
        "metric": "top1_accuracy",
        "fp32": 95.56,
        "tolerance": 94.56,
        "steps": [
            {"excluded": [], "top1_accuracy": 90.37, "within_tolerance": False, "failed": ["top1_accuracy"]},
            {"excluded": ["/conv1/Conv"], "top1_accuracy": 93.7, "within_tolerance": False, "failed": []},
            {
                "excluded": ["/conv1/Conv", "/head/Gemm"],
                "top1_accuracy": 94.81,
                "within_tolerance": within,
                "failed": [],
            },
        ],
        "sensitivity": [],
        "excluded": ["/conv1/Conv", "/head/Gemm"],
        "within_tolerance": within,
        "quantizations": 3,
        "seconds": {"first_quantization": 0.4},
        "tensors": [],
    }


def quantize_manifest() -> dict:
    """<output>.manifest.json of ``edgeport quantize`` with labels (a --val file), no auto, no fallback."""
    run = run_manifest()
    return copy.deepcopy(
        {
            "verdict": VERDICT_OK,
            "schema_version": 1,
            "created_utc": "2026-11-29T09:02:26+00:00",
            "artifact": {"path": "model.int8.onnx", "kind": "onnx-int8", "sha256": INT8, "size_bytes": 36498},
            "lineage": {
                "onnx_sha256": FP32,
                "calibration": {"file": "calib.npz", "sha256": TEACHER, "samples": 256},
                "validation": {"file": "val.npz", "sha256": STUDENT},
                "quantization": ort_static(),
            },
            "verification": run["verification"],
            "guard": run["guard"],
            "auto": None,
            "sensitivity": None,
            "fallback": None,
            "warnings": [],
            "environment": {"cpu": CPU},
            "versions": run["versions"],
        }
    )


def auto_report() -> dict:
    """edgeport.quantize.strategy.auto.AutoOutcome.describe(): two recipes tried, one failed."""

    def attempt(recipe, metric, value, within, ratio, error=None):
        return {
            "recipe": recipe,
            "backend": "ort-static",
            "why": "",
            "settings": {},
            "metric": metric,
            "value": value,
            "within_tolerance": within,
            "p50_ms": None,
            "p50_over_fp32": ratio,
            "seconds": 1.0,
            "error": error,
            "fallback": None,
        }

    return {
        "graph": {"kind": "conv-dominant", "conv": 3},
        "activation_outlier_ratio": 1.5,
        "chosen": "static-qdq-u8s8",
        "fp32_p50_ms": 0.2,
        "ranking_settings": {},
        "runtime": "onnxruntime",
        "attempts": [
            attempt("static-qdq-u8s8", "top1_accuracy", 95.19, True, 0.48),
            attempt("static-qdq-s8s8", "top1_accuracy", 91.5, False, None),
            attempt("dynamic", None, None, False, None, error="QuantizationError: " + "the graph has no layer " * 8),
        ],
    }


# --- a search ------------------------------------------------------------------------------------


def trial(
    position: int,
    val: float | None,
    p90: float | None,
    *,
    status: str = "ok",
    kind: str = "onnx-int8",
    params: dict | None = None,
    test: float | None = None,
    error: str | None = None,
    metrics: dict | None = None,
) -> dict:
    """One row of TrialStore.trials(); ``id`` is 12 hex digits whose first 8 are 'trial00N'-like."""
    if metrics is None:
        metrics = {}
        if status == "ok":
            metrics = {
                "val_accuracy": val,
                "fp32_val_accuracy": 96.0,
                "teacher_val_accuracy": 97.0,
                "latency": {
                    "count": 400,
                    "p50_ms": p90 * 0.8,
                    "p90_ms": p90,
                    "p95_ms": p90 * 1.1,
                    "mean_ms": p90 * 0.85,
                    "p50_ci_ms": [p90 * 0.78, p90 * 0.82],
                    "p90_ci_ms": [p90 * 0.95, p90 * 1.05],
                },
                "kind": kind,
                "size_bytes": 15000 + position,
                "within_tolerance": True if kind == "onnx-int8" else None,
            }
            if test is not None:
                metrics["test_accuracy"] = test
    return {
        "id": f"{position:04d}abcd{position:04d}",
        "position": position,
        "params": params
        if params is not None
        else {"student.lr": 0.001 * (position + 1), "quantize.backend": "ort-static"},
        "status": status,
        "metrics": metrics,
        "artifacts": {},
        "error": error,
        "timings": {},
        "finished_utc": "2026-11-29T11:00:00+00:00",
    }


def selection(**changes) -> dict:
    """SearchSettings.selection() with its defaults."""
    return {
        "policy": "max-accuracy",
        "latency_metric": "p90",
        "latency_budget_ms": None,
        "max_accuracy_drop": None,
        "accuracy_reference": "student",
        "accuracy_floor": None,
        "latency_weight": 1.0,
        **changes,
    }


def search_summary(trials: list[dict], chosen: str | None, reason: str, sel: dict | None = None, **run) -> dict:
    """manifest.json of a search folder as finish_search hands it to the reports."""
    best = next((t for t in trials if t["id"] == chosen), None)
    summary = {
        "schema_version": 1,
        "folder": "searches/s1",
        "candidates": len(trials),
        "trials_recorded": len(trials),
        "status_counts": {s: sum(t["status"] == s for t in trials) for s in ("ok", "failed", "pruned")},
        "selection": sel or selection(),
        "chosen": chosen,
        "chosen_because": reason,
        "pareto": [t["id"] for t in trials if t.get("pareto")],
        "stage_summary": f"{len(trials)} trials; stages run: 1 teacher training(s); stage results from the cache: 0",
        "run": {
            "finished": len(trials),
            "skipped_by_time_budget": 0,
            "halving": None,
            "executor": "process",
            "workers": 2,
            "bench_target": "this machine",
            **run,
        },
    }
    if best is not None:
        summary["best"] = {"path": "best/model.onnx", "sha256": INT8, "metrics": best["metrics"]}
    return summary
