"""Performance check of `edgeport run` with its defaults (the `make run` job).

Goals (issue 2): the whole run finishes in under 5 minutes on the 2-core dev machine,
the int8 model scores within 1 point of the fp32 model on the test split, and its
batch-1 p50 is lower than the fp32 p50. Writes perf/RESULTS.md; exits 1 if a goal is missed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

WALL_BUDGET_S = 300.0
MAX_ACCURACY_DROP = 1.0


def main() -> int:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "edgeport.cli", "run", "--quiet", "--json", "--out", out],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        manifest = json.loads(proc.stdout)
    acc, lat = manifest["metrics"]["accuracy"], manifest["latency"]
    drop = acc["fp32_onnx"]["test"] - acc["int8_onnx"]["test"]
    checks = [
        ("wall time of `edgeport run`", f"{wall:.0f} s", f"< {WALL_BUDGET_S:.0f} s", wall < WALL_BUDGET_S),
        (
            "int8 test accuracy drop vs fp32 ONNX",
            f"{drop:+.2f} points",
            f"<= {MAX_ACCURACY_DROP} point",
            drop <= MAX_ACCURACY_DROP,
        ),
        (
            "int8 / fp32 p50 at batch 1",
            f"{lat['int8_over_fp32_p50']:.3f} "
            f"({lat['int8']['p50_ms'] * 1000:.1f} us / {lat['fp32']['p50_ms'] * 1000:.1f} us)",
            "< 1",
            lat["int8_over_fp32_p50"] < 1.0,
        ),
    ]
    cpu = manifest["environment"]["cpu"]
    lines = [
        "# Performance results",
        "",
        f"`python perf/run_default.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"CPU {cpu['model']} ({cpu['logical_cores']} logical cores, ISA {', '.join(cpu['isa'])}), "
        f"onnxruntime {manifest['versions']['onnxruntime']}, torch {manifest['versions']['torch']}.",
        "",
        "## `edgeport run` defaults (digits, teacher cnn w3 d4, student cnn w2 d4)",
        "",
        "| check | measured | goal | verdict |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {measured} | {goal} | {'pass' if ok else 'FAIL'} |" for name, measured, goal, ok in checks]
    lines += ["", "Stage seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in manifest["timings_s"].items()), ""]
    text = "\n".join(lines)
    (Path(__file__).parent / "RESULTS.md").write_text(text)
    print(text)
    return 0 if all(ok for *_, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
