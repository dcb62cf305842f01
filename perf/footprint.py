"""Memory and cold start of resnet18 (fp32 and int8) on every installed runtime, checked against the tools a
user would trust instead (`edgeport bench --footprint`, benchmarks/footprint.py).

    python perf/footprint.py [--cold-starts N] [--no-append]

Checks (the issue "edge targets for real"):
- the peak memory edgeport reports for a cold-start process is within 5% of the maximum resident set
  size `/usr/bin/time -v` reports for that same process;
- edgeport's cold start (session creation + first run, median over fresh processes) is within 10% of a
  bare `InferenceSession(...)` + first `run` timed by hand in fresh processes, with the same session
  options (one intra-op and one inter-op thread, sequential) and inputs, the two alternating;
- the table shows onnxruntime's arena cost (with against without) and the cold/warm ratio on both runtimes.
Appends a section to perf/RESULTS.md; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from perf_common import append_results, cpu_line, export_torchvision, verdict

from edgeport.benchmarks import BenchSettings, measure_interleaved, remote_runner
from edgeport.benchmarks.fingerprint import cpu_fingerprint
from edgeport.benchmarks.footprint import arena_settings, footprint_settings, measure_footprint
from edgeport.benchmarks.openvino_runtime import openvino_version
from edgeport.benchmarks.records import RuntimeChoice
from edgeport.quantize import quant_config, quantize

WARM = BenchSettings(batch=1, threads=1, warmup=20, iterations=200, rounds=4)
BARE = """
import json, sys, time
import numpy as np, onnxruntime as ort
feeds = {"input": np.load(sys.argv[2])}
options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
start = time.perf_counter()
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
created = time.perf_counter()
session.run(None, feeds)
print(json.dumps({"cold_start_ms": (time.perf_counter() - start) * 1e3, "create_ms": (created - start) * 1e3}))
"""


def _models(folder: Path) -> dict[str, Path]:
    x = np.random.default_rng(0).standard_normal((16, 3, 224, 224)).astype(np.float32)
    fp32 = export_torchvision("resnet18", 1000, x, folder / "resnet18.onnx")
    int8 = folder / "resnet18.int8.onnx"
    quantize(fp32, {"input": x}, quant_config(reduce_range=True), int8)
    np.save(folder / "x.npy", x[:1])
    return {"fp32": fp32, "int8": int8}


def _time_v(model: Path, folder: Path) -> tuple[float, float]:
    """One cold start under /usr/bin/time -v: the runner's own peak and time's maximum resident set size."""
    settings = folder / "settings.json"
    settings.write_text(json.dumps(footprint_settings(WARM, RuntimeChoice("ort"), True, 1)))
    np.savez(folder / "inputs.npz", input=np.load(folder / "x.npy"))
    command = [sys.executable, remote_runner.__file__, remote_runner.COLD_START, str(model), str(settings)]
    done = subprocess.run(["/usr/bin/time", "-v", *command, str(folder / "inputs.npz")], capture_output=True, text=True)
    kbytes = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    if done.returncode != 0 or kbytes is None:
        raise SystemExit(f"/usr/bin/time -v failed: {done.stderr[-300:]}")
    return json.loads(done.stdout)["peak_rss_mb"], int(kbytes.group(1)) / 1024


def _cold_starts_side_by_side(model: Path, folder: Path, feeds: dict, count: int) -> tuple[float, float]:
    """Medians of edgeport's cold start and a bare session + first run, alternating one of each ``count``
    times, so that the machine's drift (page cache, frequency) falls on both alike."""
    ours, bare = [], []
    for _ in range(count):
        f = measure_footprint(model, WARM, feeds, RuntimeChoice("ort"), True, 1)
        ours.append(f["cold_start_ms"]["median"])
        done = subprocess.run([sys.executable, "-c", BARE, str(model), str(folder / "x.npy")], capture_output=True)
        bare.append(json.loads(done.stdout)["cold_start_ms"])
    return statistics.median(ours), statistics.median(bare)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold-starts", type=int, default=5)
    parser.add_argument("--no-append", action="store_true", help="print the table, leave RESULTS.md alone")
    args = parser.parse_args()
    runtimes = [RuntimeChoice("ort")] + ([RuntimeChoice("openvino")] if openvino_version() else [])
    rows, checks = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = _models(folder)
        feeds = {"input": np.load(folder / "x.npy")}
        labels = {f"{m}@{r.name}": (path, r) for m, path in models.items() for r in runtimes}
        warm = measure_interleaved(
            {k: str(p) for k, (p, _) in labels.items()}, WARM, feeds, runtimes={k: r for k, (_, r) in labels.items()}
        )
        for label, (path, runtime) in labels.items():
            p50 = warm[label].stats["p50_ms"]
            for arena in arena_settings(runtime):
                f = measure_footprint(path, WARM, feeds, runtime, arena, args.cold_starts)
                memory = "-" if arena is None else ("arena on" if arena else "arena off")
                rows.append(
                    f"| {label.split('@')[0]} | {runtime.name} | {memory} | {f['peak_rss_mb']['median']:.0f} | "
                    f"{f['model_rss_mb']['median']:.0f} | {f['session_create_ms']['median']:.0f} | "
                    f"{f['first_inference_ms']['median']:.1f} | {p50:.2f} | "
                    f"{f['first_inference_ms']['median'] / p50:.1f}x |"
                )
                if runtime.name == "ort" and arena:
                    ours, bare = _cold_starts_side_by_side(path, folder, feeds, args.cold_starts)
                    checks.append((f"{label} cold start vs bare session + first run", ours, bare, 0.10))
        for name, path in models.items():
            ours, kernel = _time_v(path, folder)
            checks.append((f"{name}@ort peak RSS vs /usr/bin/time -v", ours, kernel, 0.05))
    table = [
        "| model | runtime | memory | peak RSS MB | model MB | session ms | first run ms | warm p50 ms | first/warm |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "| check | edgeport | reference | difference | goal | verdict |",
        "|---|---:|---:|---:|---|---|",
    ]
    ok = True
    for name, ours, reference, tolerance in checks:
        diff = abs(ours - reference) / reference
        ok &= diff <= tolerance
        table.append(
            f"| {name} | {ours:.1f} | {reference:.1f} | {diff * 100:.1f}% | <= {tolerance * 100:.0f}% | "
            f"{verdict(diff <= tolerance)} |"
        )
    intro = (
        f"{cpu_line(cpu_fingerprint())}. torchvision resnet18 (random weights, 224x224, batch 1, one thread), fp32 and "
        f"ort-static int8; medians over {args.cold_starts} cold starts, each a fresh process (the model file in the "
        "page cache). Peak RSS: the process's maximum resident memory; model MB: peak minus the memory before the "
        "session; first/warm: first run over the warm p50 measured interleaved beside it."
    )
    if args.no_append:
        print("\n".join([intro, "", *table]))
    else:
        append_results("Footprint: memory and cold start per runtime", "footprint.py", intro, table)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
