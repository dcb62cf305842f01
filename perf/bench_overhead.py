"""Does `edgeport bench` report what a bare `session.run` loop sees? Goal: p50 within 2%.

Builds the digits student architecture (fp32 ONNX), then alternates, in one process, blocks of a
bare timing loop and of `measure_latency` on the same session settings and inputs, and compares
their p50s. Appends the result to perf/RESULTS.md; exits 1 when the gap exceeds 2%.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edgeport.benchmarks import BenchSettings, measure_latency
from edgeport.benchmarks.latency import create_session
from edgeport.exporter import write_onnx
from edgeport.models import build_model

GOAL = 0.02


def main() -> int:
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_onnx(build_model("cnn:width=2,depth=4", 1, 10, 32).eval(), x, Path(tmp) / "m.onnx")
        settings = BenchSettings(warmup=200, iterations=2000, rounds=10)
        feeds = {"input": x[:1]}
        session = create_session(path, settings)
        bare, harness = [], []
        for _ in range(5):
            for _ in range(200):
                session.run(None, feeds)
            samples = []
            for _ in range(2000):
                start = time.perf_counter_ns()
                session.run(None, feeds)
                samples.append((time.perf_counter_ns() - start) / 1e6)
            bare.append(float(np.percentile(samples, 50)))
            harness.append(measure_latency(path, settings, feeds).stats["p50_ms"])
    gap = abs(np.median(harness) / np.median(bare) - 1)
    line = (
        f"\n## bench harness vs bare session.run loop (`python perf/bench_overhead.py`)\n\n"
        f"digits student fp32, batch 1, 1 thread, 5 alternating blocks of 2,000 runs: bare p50 "
        f"{np.median(bare) * 1000:.1f} us, edgeport p50 {np.median(harness) * 1000:.1f} us, gap {gap * 100:.2f}% "
        f"(goal <= {GOAL * 100:.0f}%): {'pass' if gap <= GOAL else 'FAIL'}\n"
    )
    with open(Path(__file__).parent / "RESULTS.md", "a") as handle:
        handle.write(line)
    print(line)
    return 0 if gap <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
