"""Every candidate auto weighed, and NNCF's int8 on OpenVINO beside what it chose, per model.

For each model of the real corpus (`make zoo`: PP-OCRv4 detector, recogniser and direction classifier,
Silero VAD, MiniLM) and torchvision's resnet18 and mobilenet_v2 (seeded random weights: no download;
their fidelity is logits against fp32, not a task):

1. `edgeport quantize MODEL --calib --val` with its defaults (the runtime chosen among every installed
   one, NNCF's int8 one more recipe, every faithful file weighed on every runtime): exit code, wall
   time, the verdict, and every option the manifest records under
   `speed.alternatives` (fidelity as its runtime ran it, p50 over fp32 on onnxruntime);
2. the peer: NNCF's default int8 of the same model and calibration (`--backend nncf`, NNCF's own
   API), judged by edgeport's guard as OpenVINO runs it;
3. one interleaved measurement (batch 1, one thread) of fp32 on onnxruntime, what auto ships (its int8
   on the deploy runtime, else the fastest faithful fp32 it named) and NNCF int8 on OpenVINO.

    python perf/zoo.py [--only NAME ...] [--no-append]

Needs the openvino and nncf packages (`pip install -e '.[perf]'`). Appends a table to perf/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from corpus import _manifest
from perf_common import append_results, cpu_line, export_torchvision, run_cli

from edgeport.benchmarks import BenchSettings, measure_interleaved
from edgeport.benchmarks.fingerprint import cpu_fingerprint
from edgeport.benchmarks.records import ONNXRUNTIME, RuntimeChoice
from edgeport.benchmarks.speedup import speedup_of
from tests.corpus.inputs import ZOO, all_cases, corpus_case, first_feed, write_npz, zoo_model

TORCHVISION = ("resnet18", "mobilenet_v2")
TIMING = BenchSettings(batch=1, threads=1, warmup=10, iterations=200, rounds=10)


def _smooth_images(rng: np.random.Generator, count: int) -> np.ndarray:
    """Images with natural-looking structure (low-frequency noise, normalised), not white noise."""
    coarse = rng.normal(size=(count, 3, 14, 14)).astype(np.float32)
    return np.repeat(np.repeat(coarse, 16, axis=2), 16, axis=3) + 0.1 * rng.normal(size=(count, 3, 224, 224)).astype(
        np.float32
    )


def _model_and_inputs(name: str, folder: Path) -> tuple[Path, Path, Path, dict[str, np.ndarray]]:
    """The fp32 file, calib.npz, val.npz and one batch-1 feed for timing."""
    if name in TORCHVISION:
        rng = np.random.default_rng(0)
        calib, val = _smooth_images(rng, 32), _smooth_images(rng, 32)
        model = export_torchvision(name, 1000, calib, folder / f"{name}.onnx")
        feeds = ({"input": calib}, {"input": val}, {"input": val[:1]})
    else:
        model = zoo_model(name)
        calib_feeds, val_feeds, context = corpus_case(name)
        feeds = (calib_feeds, val_feeds, first_feed(context))
    return model, write_npz(folder / "calib.npz", feeds[0]), write_npz(folder / "val.npz", feeds[1]), feeds[2]


def _shipped(speed: dict[str, Any], folder: Path, output: Path) -> tuple[str, Path, RuntimeChoice] | None:
    """What auto ships (int8 on its deploy runtime), else the fastest faithful option it named."""
    deploy = speed.get("deploy")
    if deploy is not None and output.is_file():
        weighed = speed.get("int8_model") or "int8"  # "int8 (nncf)" when NNCF's file ran fastest
        return f"{weighed} on {speed['runtime']}", output, RuntimeChoice(deploy["runtime"], deploy["precision"])
    best = next((a for a in speed.get("alternatives", []) if a["option"] == speed.get("fastest_faithful")), None)
    if best is None or best["model"] != "fp32":
        return None
    runtime, _, precision = best["runtime"].partition("/")
    return best["option"], Path(), RuntimeChoice(runtime, precision or None)


def run_model(name: str, folder: Path) -> dict[str, Any]:
    model, calib, val, feed = _model_and_inputs(name, folder)
    output = folder / "auto.int8.onnx"
    args = ["quantize", str(model), "--calib", str(calib), "--val", str(val)]
    auto = run_cli([*args, "-o", str(output), "--json", "--quiet"], folder)
    manifest = _manifest(auto, output) if auto["code"] in (0, 1) else None
    speed = (manifest or {}).get("speed") or {}
    row: dict[str, Any] = {"name": name, "code": auto["code"], "wall_s": auto["wall_s"]}
    row["verdict"] = (manifest or {}).get("verdict") or auto["stderr"].strip().splitlines()[-1:]
    row["options"] = [
        (a["option"], a["p50_over_fp32"], a["faithful"]) for a in speed.get("alternatives", []) if a["p50_ms"]
    ]
    nncf_out = folder / "nncf.int8.onnx"
    nncf_args = ["--backend", "nncf", "--runtime", "openvino", "--no-speed-check", "-o", str(nncf_out)]
    peer = run_cli([*args, *nncf_args], folder)
    nncf_file = nncf_out if nncf_out.is_file() else folder / "nncf.int8.rejected.onnx"
    row["nncf"] = {"code": peer["code"], "wall_s": peer["wall_s"], "faithful": peer["code"] == 0}
    shipped = _shipped(speed, folder, output)
    models = {"fp32 on ort": model}
    runtimes = {"fp32 on ort": ONNXRUNTIME}
    if shipped is not None:
        label, path, runtime = shipped
        models[f"auto: {label}"], runtimes[f"auto: {label}"] = path if path != Path() else model, runtime
    if nncf_file.is_file():
        models["nncf int8 on openvino"], runtimes["nncf int8 on openvino"] = nncf_file, RuntimeChoice("openvino")
    results = measure_interleaved(models, TIMING, feed, runtimes=runtimes)
    base = results["fp32 on ort"].stats["p50_ms"]
    row["p50_over_fp32_ort"] = {label: r.stats["p50_ms"] / base for label, r in results.items()}
    auto_label = next((label for label in results if label.startswith("auto: ")), None)
    if auto_label and "nncf int8 on openvino" in results:  # a tie is read off the interval, not the point
        versus = speedup_of(results[auto_label], results["nncf int8 on openvino"])
        row["auto_over_nncf"] = [versus.ratio, *(versus.ratio_ci or ())]
    return row


def table_row(row: dict[str, Any]) -> str:
    ratios = row["p50_over_fp32_ort"]
    auto = next((k for k in ratios if k.startswith("auto: ")), None)
    nncf = ratios.get("nncf int8 on openvino")
    paired = row.get("auto_over_nncf") or []
    versus = f"{paired[0]:.2f} [{paired[1]:.2f}, {paired[2]:.2f}]" if len(paired) == 3 else "-"
    fidelity = {True: "", False: " (not faithful)", None: " (not judged: a faithful option was faster)"}
    options = "; ".join(f"{o} {r:.2f}{fidelity[ok]}" for o, r, ok in row["options"]) or "-"
    peer = row["nncf"]
    nncf_cell = f"{nncf:.2f}" if nncf else "-"
    nncf_cell += " (faithful)" if peer["faithful"] else f" (exit {peer['code']}: outside tolerance or failed)"
    verdict = str(row["verdict"]).replace("|", "\\|")
    return (
        f"| {row['name']} | {row['code']} | {auto.removeprefix('auto: ') if auto else '-'} "
        f"({ratios[auto]:.2f}) | {nncf_cell} | {versus} | {options} | {row['wall_s']:.0f} s | {verdict} |"
        if auto
        else f"| {row['name']} | {row['code']} | - | {nncf_cell} | - | {options} | {row['wall_s']:.0f} s | {verdict} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [*all_cases(), *TORCHVISION]
    parser.add_argument("--only", action="append", choices=names, help="only this model (repeatable)")
    parser.add_argument("--no-append", action="store_true", help="print the table, leave RESULTS.md alone")
    args = parser.parse_args(argv)
    if not ZOO.is_dir():
        print(f"{ZOO} is missing: run `make zoo` first", file=sys.stderr)
        return 2
    rows = []
    for name in args.only or names:
        with tempfile.TemporaryDirectory() as tmp:
            row = run_model(name, Path(tmp))
        print(json.dumps(row, default=str), file=sys.stderr)
        rows.append(table_row(row))
    header = [
        "| model | exit | auto ships (p50 / fp32 ort) | NNCF int8 on OpenVINO (p50 / fp32 ort) | auto / NNCF [95%] "
        "| every option auto weighed (p50 / fp32 ort, its own measurement) | auto wall | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    intro = (
        f"{cpu_line(cpu_fingerprint())}. `edgeport quantize MODEL --calib --val` with its defaults (quantizer and "
        "runtime chosen: onnxruntime's recipes and NNCF's, each file on onnxruntime and OpenVINO) against NNCF's "
        "default int8 on OpenVINO alone (`--backend nncf --runtime openvino`, judged as "
        "OpenVINO runs it); the three columns of ratios come from one interleaved measurement (batch 1, one "
        "thread, 10 rounds; auto / NNCF with its 95% interval, rounds paired). resnet18 and mobilenet_v2: "
        "torchvision, seeded random weights, smooth random images."
    )
    if args.no_append:
        print("\n".join(["", intro, "", *header, *rows]))
    else:
        append_results("Every candidate and NNCF's int8, per model", "zoo.py", intro, [*header, *rows])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
