"""`edgeport quantize` with its defaults on opset-12 models in another converter's style.

The stand-ins of tests/models/foreign_onnx.py (a DBNet-like text detector and a CRNN-like CTC
recognizer, built node by node as paddle2onnx writes them: opset 12, dynamic H/W, BatchNormalization
unfolded, HardSwish as HardSigmoid x Mul). Goal (issue "accuracy-guarded default quantization"): each
ends faster than fp32 and within tolerance, or exits 1 with the reason stated (never 2). p50 at batch
1, one thread, interleaved with fp32. Appends a table to perf/RESULTS.md.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from perf_common import append_results, cpu_line, verdict

from edgeport.benchmarks import BenchSettings, measure_interleaved
from edgeport.benchmarks.fingerprint import cpu_fingerprint
from edgeport.cli import main as cli
from tests.models.foreign_onnx import build_detector, build_recognizer, text_images, text_lines

SETTINGS = BenchSettings(batch=1, threads=1, warmup=20, iterations=300, rounds=10)


def _row(folder: Path, name: str, calib: dict) -> str:
    np.savez(folder / f"{name}_calib.npz", **calib)
    out = folder / f"{name}.int8.onnx"
    code = cli(
        [
            "quantize",
            str(folder / f"{name}.onnx"),
            "--calib",
            str(folder / f"{name}_calib.npz"),
            "-o",
            str(out),
            "--quiet",
        ]
    )
    manifest = json.loads((folder / f"{name}.int8.manifest.json").read_text())
    sample = {"x": calib["x"][:1]}
    p50 = {
        k: r.stats["p50_ms"]
        for k, r in measure_interleaved({"fp32": folder / f"{name}.onnx", "int8": out}, SETTINGS, sample).items()
    }
    ratio = p50["int8"] / p50["fp32"]
    tried = ", ".join(
        f"{a['recipe']}" + (f" ({a['error']})" if a["error"] else "") for a in manifest["auto"]["attempts"]
    )
    within = manifest["guard"]["within_tolerance"]
    goal = (within and ratio < 1) or (code == 1 and not within)
    shape = "x".join(map(str, calib["x"].shape[1:]))
    return (
        f"| {name} 1x{shape} | exit {code}: {manifest['verdict']} | "
        f"{ratio:.2f} ({p50['int8']:.2f} / {p50['fp32']:.2f} ms) "
        f"| {manifest['auto']['chosen']} (tried: {tried}) | {verdict(goal)} |"
    )


def main() -> int:
    cpu = cpu_fingerprint()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build_detector(folder / "det.onnx")
        build_recognizer(folder / "rec.onnx")
        rows = [
            _row(folder, "det", {"x": text_images(24, 320, 320, seed=1)[0]}),
            _row(folder, "rec", {"x": text_lines(64, 320, seed=1)[0]}),
        ]
    append_results(
        "Opset-12 detector and CTC recognizer, default quantize",
        "foreign_exporters.py",
        f"{cpu_line(cpu)}; p50 at batch 1, one thread, interleaved with fp32. Goal: faster than fp32 and within "
        "tolerance, or exit 1 with the reason stated.",
        ["| model | verdict | int8 / fp32 p50 | auto | goal |", "|---|---|---|---|---|", *rows],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
