"""How often `edgeport bench A --vs A-copy` says what is true (A/A), on real timing of this machine.

Builds a small ONNX model with onnx.helper (four 256x256 MatMuls, about 15 us per run, no torch),
copies it to A-copy.onnx, then runs the real command line RUNS times:

    edgeport bench A.onnx --vs A-copy.onnx --iterations 2000 --rounds 10 -o out.json --quiet

and counts how often the 95% p50-ratio interval contains 1.0 and how often the verdict is
anything but "no detectable difference" (a false alarm). For contrast, on the very same samples:
the sample-level interval that `bench --vs` used before (single runs resampled as if independent).
And, in this process, the same measurement with one session per model for the whole run (as
`bench --vs` measured before it took fresh sessions each round), judged by the round statistics.

Goal: the interval contains 1.0 in at least 85% of runs (a 95% interval; 17 of 20 keeps a chance
miss of a correct method under 2%), and at most 5% false alarms. Appends to perf/RESULTS.md;
exits 1 on a miss. `python perf/bench_aa.py [RUNS]` (default 40; about 2 minutes on 2 cores).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from edgeport.benchmarks.compare import compare

ITERATIONS, ROUNDS = 2000, 10
MIN_COVERAGE, MAX_ALARMS = 0.85, 0.05


def build_model(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array((rng.standard_normal((256, 256)) / 16).astype(np.float32), f"w{i}") for i in range(4)
    ]
    nodes = [helper.make_node("MatMul", ["x" if i == 0 else f"h{i - 1}", f"w{i}"], [f"h{i}"]) for i in range(4)]
    graph = helper.make_graph(
        nodes,
        "aa",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256])],
        [helper.make_tensor_value_info("h3", TensorProto.FLOAT, [1, 256])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def sample_level_interval(a: np.ndarray, b: np.ndarray, seed: int) -> tuple[float, float]:
    """The interval bench --vs reported before: single runs of A and B resampled independently."""
    rng = np.random.default_rng(seed)
    ratios = np.percentile(a[rng.integers(0, a.size, (1000, a.size))], 50, axis=1) / np.percentile(
        b[rng.integers(0, b.size, (1000, b.size))], 50, axis=1
    )
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


def one_session_each(a: Path, b: Path, seed: int) -> dict:
    """A and B interleaved round by round as before, but each with one session for the whole run."""
    from edgeport.benchmarks.latency import BenchSettings, create_session, synthesize_inputs
    from edgeport.benchmarks.remote_runner import timed_runs

    settings = BenchSettings(iterations=ITERATIONS, rounds=ROUNDS)
    sessions = {"a": create_session(a, settings), "b": create_session(b, settings)}
    feeds = synthesize_inputs(sessions["a"], 1, 0)
    samples = {"a": [], "b": []}
    for session in sessions.values():
        timed_runs(session, feeds, settings.warmup)
    for r in range(ROUNDS):
        for label in ("a", "b") if r % 2 == 0 else ("b", "a"):
            samples[label] += timed_runs(sessions[label], feeds, ITERATIONS // ROUNDS)
    return compare(samples["a"], samples["b"], {"round_sizes": [ITERATIONS // ROUNDS] * ROUNDS}, seed=seed)


def contains_one(interval) -> bool:
    return interval[0] <= 1.0 <= interval[1]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.lower().startswith("model name"):
            return line.partition(":")[2].strip()
    return "unknown CPU"


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    started = time.perf_counter()
    new_hits = old_hits = single_hits = alarms = single_alarms = 0
    ratios, verdicts = [], []
    with tempfile.TemporaryDirectory() as tmp:
        a, b, out = Path(tmp) / "A.onnx", Path(tmp) / "A-copy.onnx", Path(tmp) / "out.json"
        build_model(a)
        shutil.copyfile(a, b)
        for i in range(runs):
            command = [
                sys.executable,
                "-m",
                "edgeport.cli",
                "bench",
                str(a),
                "--vs",
                str(b),
                "--iterations",
                str(ITERATIONS),
                "--rounds",
                str(ROUNDS),
                "--seed",
                str(i),
                "-o",
                str(out),
                "--quiet",
            ]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 2
            report = json.loads(out.read_text())
            comparison = report["comparisons"][0]
            samples = {r["model"]: np.asarray(r["samples_ms"]) for r in report["results"]}
            new_hits += contains_one(comparison["p50_ratio_ci"])
            alarms += comparison["verdict"] != "no detectable difference"
            verdicts.append(comparison["verdict"])
            ratios.append(comparison["p50_ratio"])
            old_hits += contains_one(sample_level_interval(samples["a"], samples["b"], i))
            single = one_session_each(a, b, i)
            single_hits += contains_one(single["p50_ratio_ci"])
            single_alarms += single["verdict"] != "no detectable difference"
            print(
                f"run {i + 1}/{runs}: p50 ratio {comparison['p50_ratio']:.3f} "
                f"[{comparison['p50_ratio_ci'][0]:.3f}, {comparison['p50_ratio_ci'][1]:.3f}] "
                f"p={comparison['p_value']:.2g} {comparison['verdict']}",
                flush=True,
            )
        latency_us = float(np.median(samples["a"])) * 1e3
    ok = new_hits >= MIN_COVERAGE * runs and alarms <= MAX_ALARMS * runs
    counts = ", ".join(f"{v} {verdicts.count(v)}" for v in sorted(set(verdicts)))
    line = (
        f"\n## `bench A --vs A-copy`, real A/A timing (`python perf/bench_aa.py {runs}`, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n\n"
        f"CPU {cpu_model()}. Four 256x256 MatMuls (p50 {latency_us:.0f} us), batch 1, 1 thread, {runs} runs of "
        f"`edgeport bench A.onnx --vs A-copy.onnx --iterations {ITERATIONS} --rounds {ROUNDS}` "
        f"({time.perf_counter() - started:.0f} s in all): the 95% p50-ratio interval (paired rounds, fresh "
        f"sessions each round) contains 1.0 in {new_hits}/{runs}; verdicts {counts}; false alarms "
        f"{alarms}/{runs}; p50 ratios {min(ratios):.3f}-{max(ratios):.3f}. On the same samples the old "
        f"sample-level interval contains 1.0 in {old_hits}/{runs}. Measured with one session per model for "
        f"the whole run (as before), the round-level interval contains 1.0 in {single_hits}/{runs}, false "
        f"alarms {single_alarms}/{runs}. Goal: >= {MIN_COVERAGE:.0%} contain 1.0, <= {MAX_ALARMS:.0%} false "
        f"alarms: {'pass' if ok else 'FAIL'}\n"
    )
    with open(Path(__file__).parent / "RESULTS.md", "a") as handle:
        handle.write(line)
    print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
