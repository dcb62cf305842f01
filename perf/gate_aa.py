"""False alarms of the gate's regression check on real timing of this machine (A/A).

Builds the digits student architecture as fp32 ONNX, then 20 times measures it twice, one
measurement after the other (2,000 runs in 10 rounds each, the gate's default), and asks the
regression check whether the second is more than 10% slower than the first. Every answer other
than "pass" is a false alarm. Goal: at most 1 of 20. Appends to perf/RESULTS.md; exits 1 on a miss.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from edgeport.benchmarks import BenchSettings, measure_latency
from edgeport.exporter import write_onnx
from edgeport.gate.decide import regression_check
from edgeport.models import build_model

PAIRS = 20
MAX_REGRESSION = 0.10
GOAL = 1


def main() -> int:
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype(np.float32)
    settings = BenchSettings(warmup=100, iterations=2000, rounds=10)
    verdicts, ratios = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = write_onnx(build_model("cnn:width=2,depth=4", 1, 10, 32).eval(), x, Path(tmp) / "m.onnx")
        feeds = {"input": x[:1]}
        for i in range(PAIRS):
            baseline = np.asarray(measure_latency(path, settings, feeds).samples_ms)
            current = np.asarray(measure_latency(path, settings, feeds).samples_ms)
            check = regression_check(current, baseline, MAX_REGRESSION, "ci", seed=i)
            verdicts.append(check.verdict)
            ratios.append(check.measured)
    alarms = sum(v != "pass" for v in verdicts)
    line = (f"\n## gate regression check, real A/A timing (`python perf/gate_aa.py`, "
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)\n\n"
            f"digits student fp32, batch 1, 1 thread, {PAIRS} back-to-back pairs of 2,000-run measurements, "
            f"max_regression {MAX_REGRESSION:.0%}: p50 ratios {min(ratios):.3f}-{max(ratios):.3f} "
            f"(median {np.median(ratios):.3f}); verdicts {', '.join(f'{v} {verdicts.count(v)}' for v in sorted(set(verdicts)))}; "
            f"false alarms {alarms}/{PAIRS} (goal <= {GOAL}): {'pass' if alarms <= GOAL else 'FAIL'}\n")
    with open(Path(__file__).parent / "RESULTS.md", "a") as handle:
        handle.write(line)
    print(line)
    return 0 if alarms <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
