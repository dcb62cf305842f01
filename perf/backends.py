"""int8 / fp32 p50 latency ratio of every quantization backend, batch 1, one thread.

Models: the digits student of `edgeport run` (cnn width 2, depth 4, 32x32, from a run folder given
as the first argument, or freshly initialised) and torchvision resnet18 at 224x224 (random weights:
latency does not depend on the weight values). fp32 and int8 are measured interleaved in one
process. Appends a table to perf/RESULTS.md.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from edgeport.benchmarks import BenchSettings, measure_interleaved
from edgeport.benchmarks.fingerprint import cpu_fingerprint
from edgeport.errors import QuantizationError
from edgeport.exporter import write_onnx
from edgeport.models import build_model
from edgeport.quantize import ModelSource, list_backends, quant_config, quantize
from edgeport.quantize.guard.verify import int8_coverage
from edgeport.quantize.target import needs_reduce_range


def measure(name: str, model, shape: tuple, iterations: int, folder: Path) -> list[str]:
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((32, *shape)).astype(np.float32)
    fp32 = write_onnx(model, calib, folder / f"{name}.fp32.onnx", "dynamo")
    source = ModelSource(fp32, model)
    rows = []
    for backend in list_backends():
        int8 = folder / f"{name}.{backend}.onnx"
        config = quant_config(
            backend=backend, reduce_range=needs_reduce_range(cpu_fingerprint()), calibration_samples=32
        )
        try:
            quantize(source, {"input": calib}, config, int8)
        except QuantizationError as exc:
            rows.append(f"| {name} | {backend} | | | failed: {exc} | |")
            print(rows[-1], flush=True)
            continue
        settings = BenchSettings(iterations=iterations, warmup=max(10, iterations // 20), rounds=10)
        results = measure_interleaved({"fp32": fp32, "int8": int8}, settings, {"input": calib[:1]})
        fp, q = results["fp32"].stats["p50_ms"], results["int8"].stats["p50_ms"]
        cov = int8_coverage(int8)
        rows.append(
            f"| {name} | {backend} | {fp:.3f} | {q:.3f} | {q / fp:.2f} | "
            f"{cov['integer_kernels']}/{cov['integer_kernels'] + cov['float_kernels']} |"
        )
        print(rows[-1], flush=True)
    return rows


def main() -> int:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = measure(
            "digits student", build_model("cnn:width=2,depth=4", 1, 10, 32).eval(), (1, 32, 32), 2000, folder
        )
        rows += measure("resnet18 224", build_model("resnet18", 3, 1000, 224).eval(), (3, 224, 224), 100, folder)
    text = [
        "",
        "## int8 / fp32 p50 by backend (batch 1, 1 thread, `python perf/backends.py`)",
        "",
        "| model | backend | fp32 p50 ms | int8 p50 ms | ratio | int8 coverage |",
        "|---|---|---:|---:|---:|---:|",
        *rows,
        "",
    ]
    with open(Path(__file__).parent / "RESULTS.md", "a") as handle:
        handle.write("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
