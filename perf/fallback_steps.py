"""Accuracy-aware fallback on a 50-layer model: how many re-quantizations, and what the one-pass
sensitivity ranking costs against one quantization.

torchvision resnet50 (53 convolutions + 1 linear layer; random weights, 64x64 inputs to keep each
quantization short), per-tensor ranges, a cosine tolerance the plain int8 model misses. Goals (issue
"accuracy-guarded default quantization"): at most 8 re-quantizations after the first one, and the
sensitivity pass at most 2 quantizations' time. Appends a table to perf/RESULTS.md.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from perf_common import append_results, export_torchvision, verdict

from edgeport.benchmarks.fingerprint import cpu_fingerprint
from edgeport.quantize import ModelSource, quant_config
from edgeport.quantize.guard.judge import Validation
from edgeport.quantize.strategy.fallback import Tolerance, layer_candidates, quantize_with_fallback


def main() -> int:
    x = np.random.default_rng(0).standard_normal((48, 3, 64, 64)).astype(np.float32)
    cpu = cpu_fingerprint()
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_torchvision("resnet50", 100, x, Path(tmp) / "resnet50.onnx")
        layers = len(layer_candidates(ModelSource(fp32), "onnx"))
        config = quant_config(backend="ort-static", per_channel=False, reduce_range=False, calibration_samples=32)
        _, report = quantize_with_fallback(
            ModelSource(fp32),
            {"input": x[:32]},
            config,
            Path(tmp) / "int8.onnx",
            Validation({"input": x[32:]}, None, Tolerance(min_cosine=0.9998)),
        )
    again = report.quantizations - 1
    cost = report.seconds.get("sensitivity", 0.0) / report.seconds["first_quantization"]
    first, last = report.steps[0]["mean_cosine"], report.steps[-1]["mean_cosine"]
    append_results(
        "Fallback on a 50-layer model",
        "fallback_steps.py",
        f"CPU {cpu.get('model')} (ISA {', '.join(cpu.get('isa', []))}); resnet50 ({layers} Conv/Gemm layers), "
        f"64x64, ort-static per-tensor, tolerance mean cosine >= 0.9998 (plain int8: {first:.5f}).",
        [
            "| check | measured | goal | verdict |",
            "|---|---|---|---|",
            f"| re-quantizations after the first | {again} (kept {len(report.excluded)} layer(s) in float; cosine "
            f"{last:.5f}, within tolerance: {report.within_tolerance}) | <= 8 | {verdict(again <= 8)} |",
            f"| sensitivity pass / one quantization | {cost:.2f} ({report.seconds.get('sensitivity', 0):.1f} s / "
            f"{report.seconds['first_quantization']:.1f} s) | <= 2 | {verdict(cost <= 2)} |",
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
