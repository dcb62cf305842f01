"""`edgeport quantize` with its defaults on the real pretrained corpus of `.zoo/` (`make zoo`).

For each corpus model (PP-OCRv4 detector and recogniser, PP-OCR direction classifier, Silero VAD,
MiniLM, and the other kinds of tests/corpus/kinds.py: a PP-LCNet orientation classifier, a PicoDet
layout detector, openwakeword's speech embedding CNN, Resemblyzer's LSTM speaker encoder): calib.npz
and val.npz from tests/corpus (different samples), the CLI run as a
subprocess (exit code, wall time, the child's peak RSS, the manifest's verdict and chosen recipe),
then, where an int8 file was written, its task judge (tests/corpus/judges.py: decoded text, masks,
speech decisions, embeddings) as each installed runtime runs it, and p50 at batch 1, one thread,
interleaved with fp32, on onnxruntime and on OpenVINO where installed. Appends a table to perf/RESULTS.md.

    python perf/corpus.py [--only NAME ...] [--no-append] [--seed N] [--keep DIR] [--runtime NAME]

``--runtime ort`` quantizes for onnxruntime alone (as where OpenVINO is not installed: no NNCF recipe, no
runtime choice); the judges and timings still cover every installed runtime.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from perf_common import append_results, cpu_line, run_cli

from edgeport.benchmarks import BenchSettings, measure_interleaved
from edgeport.benchmarks.fingerprint import cpu_fingerprint
from edgeport.benchmarks.records import ONNXRUNTIME, RuntimeChoice
from tests.corpus.inputs import ZOO, all_cases, corpus_case, first_feed, ort_session, write_npz, zoo_model
from tests.corpus.judges import MEASURES, deploy_runtime, judge

LATENCY_BUDGET_S = 20.0  # per model and runtime: fp32 + int8 runs together
OPENVINO = RuntimeChoice("openvino")


def _runtimes() -> dict[str, RuntimeChoice]:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return {"ort": ONNXRUNTIME}
    return {"ort": ONNXRUNTIME, "openvino": OPENVINO}


def _manifest(result: dict[str, Any], output: Path) -> dict[str, Any] | None:
    """The manifest: printed by --json, else the file beside the output."""
    text = result["stdout"]
    start = text.find("{")
    if start >= 0:
        try:
            return json.loads(text[start:])
        except json.JSONDecodeError:
            pass
    beside = output.with_name(output.name.removesuffix(".onnx") + ".manifest.json")
    return json.loads(beside.read_text()) if beside.is_file() else None


def _settings(model: Path, feed: dict[str, np.ndarray]) -> BenchSettings:
    """Iterations sized so that fp32 and int8 together take about LATENCY_BUDGET_S on this machine."""
    session = ort_session(model)
    session.run(None, feed)
    start = time.perf_counter()
    for _ in range(3):
        session.run(None, feed)
    per_run = (time.perf_counter() - start) / 3
    iterations = int(np.clip(LATENCY_BUDGET_S / (2 * per_run), 30, 500))
    return BenchSettings(batch=1, threads=1, warmup=max(5, iterations // 10), iterations=iterations, rounds=10)


def latency_ratios(fp32: Path, int8: Path, feed: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per runtime: (int8 p50 / fp32 p50, int8 ms, fp32 ms), or the error that runtime gave."""
    settings = _settings(fp32, feed)
    ratios: dict[str, Any] = {}
    for label, runtime in _runtimes().items():
        try:
            results = measure_interleaved(
                {"fp32": fp32, "int8": int8}, settings, feed, runtimes={"fp32": runtime, "int8": runtime}
            )
        except Exception as exc:  # a runtime that cannot run the model is a result, not a crash
            ratios[label] = f"error: {' '.join(str(exc).split())[:240]}"
            continue
        p50 = {k: r.stats["p50_ms"] for k, r in results.items()}
        ratios[label] = (p50["int8"] / p50["fp32"], p50["int8"], p50["fp32"])
    return ratios


def _last_lines(text: str, count: int = 3) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[-count:])


def run_case(name: str, folder: Path, seed: int = 0, runtime: str | None = None) -> dict[str, Any]:
    """One corpus model end to end (quantized for ``runtime`` where given); every figure of its table row."""
    model = zoo_model(name)
    calib, val, context = corpus_case(name, seed)
    calib_path, val_path = write_npz(folder / "calib.npz", calib), write_npz(folder / "val.npz", val)
    output = folder / f"{name}.int8.onnx"
    args = ["quantize", str(model), "--calib", str(calib_path), "--val", str(val_path), "-o", str(output)]
    result = run_cli([*args, *(["--runtime", runtime] if runtime else []), "--json", "--quiet"], folder)
    manifest = _manifest(result, output) if result["code"] in (0, 1) else None
    row: dict[str, Any] = {"name": name, **{k: result[k] for k in ("code", "wall_s", "peak_rss_mib")}}
    # the yardstick of auto's wall time (goal: at most 3x): one plain ort-static quantization, no speed check
    plain = folder / "plain"
    plain.mkdir()
    static = run_cli([*args[:-1], str(plain / "static.onnx"), "--backend", "ort-static", "--no-speed-check"], plain)
    row["static_wall_s"] = static["wall_s"] if static["code"] in (0, 1) else None
    row["stderr"] = _last_lines(result["stderr"])
    row["verdict"] = manifest.get("verdict") if manifest else None
    auto = (manifest or {}).get("auto") or {}
    row["chosen"] = auto.get("chosen")
    row["tried"] = [a.get("recipe") + (f" ({a['error']})" if a.get("error") else "") for a in auto.get("attempts", [])]
    row["judge"], row["judge_detail"], row["latency"] = {}, {}, {}
    int8 = _int8_file(manifest, output)
    row["int8_file"] = int8.name if int8 else None
    row["deploy"] = deploy_runtime(manifest) if result["code"] == 0 else None
    if int8 is not None:
        for installed in _runtimes():  # the int8 file judged as each runtime runs it (fp32: onnxruntime)
            deploy = row["deploy"] or ""  # at the precision it ships with, on the runtime it ships on
            runtime = deploy if deploy.partition("/")[0] == installed else installed
            try:
                row["judge"][runtime], row["judge_detail"][runtime] = judge(name, model, int8, context, runtime)
            except Exception as exc:  # OpenVINO cannot load every model (Silero VAD)
                row["judge_detail"][runtime] = f"{type(exc).__name__}: {str(exc)[:160]}"
        row["latency"] = latency_ratios(model, int8, first_feed(context))
    return row


def _int8_file(manifest: dict[str, Any] | None, output: Path) -> Path | None:
    """The int8 file written: ``output``, or the one the manifest names (``*.int8.rejected.onnx`` when
    edgeport kept it but does not ship it: judged and timed all the same, for the record)."""
    if output.is_file():
        return output
    named = ((manifest or {}).get("artifact") or {}).get("path")
    if named and (output.parent / named).is_file():
        return output.parent / named
    return None


def _cell(value: Any) -> str:
    if isinstance(value, tuple):
        return f"{value[0]:.2f} ({value[1]:.2f} / {value[2]:.2f} ms)"
    return str(value).replace("|", "\\|")


def _versus(row: dict[str, Any]) -> str:
    static = row.get("static_wall_s")
    return f" ({row['wall_s'] / static:.1f}x one ort-static: {static:.0f} s)" if static else ""


def table_row(row: dict[str, Any], runtimes: list[str]) -> str:
    outcome = row["verdict"] or row["stderr"] or "-"
    chosen = row["chosen"] or "-"
    if row["tried"]:
        chosen += f" (tried: {', '.join(row['tried'])})"
    fidelity = "-"
    if row["judge"]:
        judged = [f"{value:.4f} on {runtime}" for runtime, value in row["judge"].items()]
        fidelity = f"{MEASURES[row['name']]}: {', '.join(judged)}"
        if row["deploy"]:
            fidelity += f" (ships on {row['deploy']})"
        elif row["int8_file"] and "rejected" in row["int8_file"]:
            fidelity += " (of the rejected int8 file)"
    p50 = [_cell(row["latency"].get(r, "-")) for r in runtimes]
    return (
        f"| {row['name']} | {row['code']} | {_cell(outcome)} | {_cell(chosen)} | {fidelity} | "
        + " | ".join(p50)
        + f" | {row['wall_s']:.0f} s{_versus(row)} | {row['peak_rss_mib']:.0f} MiB |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(all_cases()), help="only this model (repeatable)")
    parser.add_argument("--no-append", action="store_true", help="print the table, leave RESULTS.md alone")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="keep each model's files (npz, int8, manifest, CLI output) under DIR")
    parser.add_argument("--runtime", help="quantize for this runtime only (`edgeport quantize --runtime`)")
    args = parser.parse_args(argv)
    if not ZOO.is_dir():
        print(f"{ZOO} is missing: run `make zoo` first", file=sys.stderr)
        return 2
    cpu = cpu_fingerprint()
    runtimes = list(_runtimes())
    rows = []
    for name in args.only or list(all_cases()):
        with tempfile.TemporaryDirectory() as tmp:
            row = run_case(name, Path(tmp), args.seed, args.runtime)
            if args.keep:
                shutil.copytree(tmp, Path(args.keep) / name, dirs_exist_ok=True)
        print(json.dumps(row, default=str), file=sys.stderr)
        rows.append(table_row(row, runtimes))
    header = [
        "| model | exit | verdict / stderr | chosen | task fidelity (int8 vs fp32) | "
        + " | ".join(f"int8/fp32 p50 {r}" for r in runtimes)
        + " | auto wall (vs one ort-static) | peak RSS |",
        "|" + "---|" * (7 + len(runtimes)),
    ]
    flags = f" --runtime {args.runtime}" if args.runtime else ""
    intro = (
        f"{cpu_line(cpu)}. `edgeport quantize MODEL --calib --val{flags}` with defaults on real pretrained models "
        "and realistic inputs (tests/corpus/inputs.py); fidelity by task judges independent of edgeport's guard "
        "(tests/corpus/judges.py); p50 at batch 1, one thread, interleaved with fp32; wall time and peak RSS of "
        "the CLI process."
    )
    if args.no_append:
        print("\n".join(["", intro, "", *header, *rows]))
    else:
        title = f"Real pretrained corpus, quantize{flags}" if flags else "Real pretrained corpus, default quantize"
        append_results(title, "corpus.py", intro, [*header, *rows])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
