"""A sustained 60 s run of resnet18 int8 on this machine (`edgeport bench --sustained 60`): its drift with
an interval, and what the platform exposes about heat.

    python perf/sustained.py [--seconds 60] [--no-append]

Checks (the issue "edge targets for real"): the drift is reported with a 95% interval, and every heat
figure the platform does not expose is said so (the run's `not_exposed`), none filled in.
Appends a section to perf/RESULTS.md; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from perf_common import append_results, cpu_line, export_torchvision, run_cli, verdict

from edgeport.benchmarks.fingerprint import cpu_fingerprint
from edgeport.quantize import quant_config, quantize


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--no-append", action="store_true", help="print the table, leave RESULTS.md alone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        x = np.random.default_rng(0).standard_normal((16, 3, 224, 224)).astype(np.float32)
        fp32 = export_torchvision("resnet18", 1000, x, folder / "resnet18.onnx")
        int8 = folder / "resnet18.int8.onnx"
        quantize(fp32, {"input": x}, quant_config(reduce_range=True), int8)
        out = folder / "result.json"
        done = run_cli(["bench", str(int8), "--sustained", str(args.seconds), "-o", str(out), "--quiet"], folder)
        if done["code"] != 0:
            raise SystemExit(done["stderr"][-500:])
        record = json.loads(out.read_text())["results"][0]["sustained"]
    drift = record["drift"]
    ci = drift["last_over_first_ci"]
    exposed = {
        "temperature": record["temperature_c"]["before"] is not None,
        "CPU frequency": record["cpu_mhz"]["before"] is not None,
    }
    said = all(exposed[name] or any(m.startswith(name) for m in record["not_exposed"]) for name in exposed)
    checks = [
        (
            "drift has a 95% interval",
            f"{drift['last_over_first']:.3f}x [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "none",
            ci is not None,
        ),  # fmt: skip
        ("unexposed heat figures are said", "; ".join(record["not_exposed"]) or "all exposed", said),
    ]
    table = ["| check | measured | verdict |", "|---|---|---|"]
    table += [f"| {name} | {measured} | {verdict(ok)} |" for name, measured, ok in checks]
    intro = (
        f"{cpu_line(cpu_fingerprint())}. torchvision resnet18 (random weights) ort-static int8, batch 1, one thread, "
        f"measured for {args.seconds:g} s: {drift['rounds']} rounds, {drift['rounds_each_side']} a side; first p50 "
        f"{drift['first_p50_ms']:.2f} ms, last {drift['last_p50_ms']:.2f} ms; throttled: {record['throttled']} "
        f"({record['throttled_why']})."
    )
    if args.no_append:
        print("\n".join([intro, "", *table]))
    else:
        append_results("Sustained run: drift and heat", "sustained.py", intro, table)
    return 0 if all(ok for *_, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
