"""False alarms of the gate's regression check on real timing of this machine (A/A).

Builds the digits student architecture as fp32 ONNX, then 20 times: measures it (the baseline
result, 2,000 runs in 10 rounds), and runs `edgeport gate --artifact` on the same file against that
baseline with max_regression 10%, as CI would (the gate measures, re-measures while inconclusive
and confirms a failure once). Every verdict other than "pass" is a false alarm. Also reports what
a single back-to-back comparison says without the gate's re-measuring. Goal: at most 1 false
alarm in 20 for the interleaved comparison (--baseline-artifact, the file measured beside itself);
the stored-baseline figures are reported as measured. Appends to perf/RESULTS.md; exits 1 on a miss.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from edgeport.benchmarks import BenchSettings, measure_latency
from edgeport.benchmarks.rounds import rounds_of
from edgeport.core.artifacts import atomic_write_json
from edgeport.core.bench_defaults import GATE
from edgeport.exporter import write_onnx
from edgeport.gate import GateRequest, run_gate
from edgeport.gate.decide import regression_check
from edgeport.models import build_model

PAIRS = 20
MAX_REGRESSION = 0.10
GOAL = 1


def main() -> int:
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype(np.float32)
    # the baseline is measured as the gate measures the artifact
    settings = BenchSettings(warmup=GATE.warmup, iterations=GATE.iterations, rounds=GATE.rounds)
    verdicts, single, ratios, extra = [], [], [], 0
    with tempfile.TemporaryDirectory() as tmp:
        path = write_onnx(build_model("cnn:width=2,depth=4", 1, 10, 32).eval(), x, Path(tmp) / "m.onnx")
        budget = Path(tmp) / "budgets.toml"
        budget.write_text(f"[targets.aa]\nmax_regression = {MAX_REGRESSION}\n")
        feeds = {"input": x[:1]}
        for i in range(PAIRS):
            baseline = measure_latency(path, settings, feeds)
            atomic_write_json(Path(tmp) / "baseline.json", baseline.to_dict())
            current = measure_latency(path, settings, feeds)
            check = regression_check(
                rounds_of(np.asarray(current.samples_ms), current.settings),
                rounds_of(np.asarray(baseline.samples_ms), baseline.settings),
                MAX_REGRESSION,
                "ci",
                seed=i,
            )
            single.append(check.verdict)
            ratios.append(check.measured)
            report = run_gate(GateRequest(budget=budget, artifact=path, baseline=Path(tmp) / "baseline.json", seed=i))
            verdicts.append(report["verdict"])
            extra += report["extra_measurements"]
        interleaved = [
            run_gate(GateRequest(budget=budget, artifact=path, baseline_artifact=path, seed=i))["verdict"]
            for i in range(PAIRS)
        ]
    alarms = sum(v != "pass" for v in interleaved)
    line = (
        f"\n## gate regression check, real A/A timing (`python perf/gate_aa.py`, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n\n"
        f"digits student fp32, batch 1, 1 thread, {PAIRS} back-to-back pairs of 2,000-run measurements, "
        f"max_regression {MAX_REGRESSION:.0%}. One back-to-back comparison: p50 ratios {min(ratios):.3f}-"
        f"{max(ratios):.3f} (median {np.median(ratios):.3f}), verdicts "
        f"{', '.join(f'{v} {single.count(v)}' for v in sorted(set(single)))}. `edgeport gate --artifact` against "
        f"the same baselines ({extra} extra measurements in all): verdicts "
        f"{', '.join(f'{v} {verdicts.count(v)}' for v in sorted(set(verdicts)))}. "
        f"`edgeport gate --artifact M --baseline-artifact M` (interleaved, paired rounds): verdicts "
        f"{', '.join(f'{v} {interleaved.count(v)}' for v in sorted(set(interleaved)))}; "
        f"false alarms {alarms}/{PAIRS} (goal <= {GOAL}): {'pass' if alarms <= GOAL else 'FAIL'}\n"
    )
    with open(Path(__file__).parent / "RESULTS.md", "a") as handle:
        handle.write(line)
    print(line)
    return 0 if alarms <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
