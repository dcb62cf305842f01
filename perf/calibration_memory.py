"""Peak memory of `edgeport quantize` on a 100 MB model with 100 calibration samples (goal: at most 4 GiB).

The model: torchvision's VisionTransformer at ViT-S/16 size (12 layers, 6 heads, width 384, MLP 1536,
22 M parameters, about 88 MB of fp32 weights), seeded random weights (memory does not depend on their
values), exported to ONNX with a dynamic batch axis. 100 calibration images and 16 validation images of
3x224x224. Each row is one CLI run in a child process: ort-static with each calibration method (one
intermediate sample of this model is about 280 MB of tensors, so keeping every sample would take
tens of GB), and auto, the default. Peak RSS is the child's own, from wait4.

    python perf/calibration_memory.py [--no-append] [--samples N] [--only METHOD ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from perf_common import append_results, cpu_line, run_cli, verdict

from edgeport.benchmarks.fingerprint import cpu_fingerprint

GOAL_MIB = 4096
RUNS = {
    "minmax": ["--backend", "ort-static", "--calibration-method", "minmax"],
    "percentile": ["--backend", "ort-static", "--calibration-method", "percentile"],
    "entropy": ["--backend", "ort-static", "--calibration-method", "entropy"],
    "auto": [],
}


def vit_small(path: Path) -> Path:
    import torch
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(
        image_size=224, patch_size=16, num_layers=12, num_heads=6, hidden_dim=384, mlp_dim=1536
    ).eval()
    torch.onnx.export(
        model,
        torch.zeros(1, 3, 224, 224),
        str(path),
        dynamo=False,
        input_names=["input"],
        dynamic_axes={"input": {0: "batch"}},
    )
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-append", action="store_true", help="print the table, leave RESULTS.md alone")
    parser.add_argument("--samples", type=int, default=100, help="calibration samples (default 100)")
    parser.add_argument("--only", action="append", choices=sorted(RUNS), help="only this run (repeatable)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    rows, ok = [], True
    with tempfile.TemporaryDirectory(prefix="calib-memory-") as tmp:
        folder = Path(tmp)
        model = vit_small(folder / "vit_s.onnx")
        size_mb = model.stat().st_size / 1e6
        calib = folder / "calib.npz"
        val = folder / "val.npz"
        np.savez(calib, x=rng.standard_normal((args.samples, 3, 224, 224)).astype(np.float32))
        np.savez(val, x=rng.standard_normal((16, 3, 224, 224)).astype(np.float32))
        for name in args.only or list(RUNS):
            run = folder / name
            run.mkdir()
            output = run / "int8.onnx"
            cli = ["quantize", str(model), "--calib", str(calib), "--val", str(val), "-o", str(output)]
            result = run_cli([*cli, *RUNS[name], "--no-speed-check", "--json", "--quiet"], run)
            quantization = (_manifest(result["stdout"]).get("lineage") or {}).get("quantization") or {}
            done = quantization.get("report") or {}
            # exit 1 (outside tolerance: random weights) still quantized; no manifest means it did not
            passed = bool(quantization) and result["peak_rss_mib"] <= GOAL_MIB
            ok &= passed
            plan = quantization.get("backend", "-")
            if "calibration_batch" in done:
                plan += f": batch {done['calibration_batch']}, chunk {done['calibration_chunk']}"
            last = result["stderr"].strip().splitlines()[-1:] if result["code"] != 0 else []
            rows.append(
                f"| {name} | {result['code']}{(' ' + last[0][:160]) if last else ''} | {plan} "
                f"| {result['wall_s']:.0f} s | {result['peak_rss_mib']:.0f} MiB | {verdict(passed)} |"
            )
            print(rows[-1], flush=True)
    intro = (
        f"{cpu_line(cpu_fingerprint())}. ViT-S/16-sized VisionTransformer ({size_mb:.0f} MB fp32 ONNX, random "
        f"weights), {args.samples} calibration images and 16 validation images of 3x224x224; `edgeport quantize` "
        f"in a child process, `--no-speed-check`; peak RSS of that process (wait4). Goal: at most {GOAL_MIB} MiB."
    )
    header = "| run | exit | backend: calibration plan | wall | peak RSS | verdict |"
    table = [header, "|---|---|---|---|---|---|", *rows]
    if args.no_append:
        print("\n".join([intro, "", *table]))
    else:
        append_results("Calibration memory, 100 MB model", "calibration_memory.py", intro, table)
    return 0 if ok else 1


def _manifest(stdout: str) -> dict:
    """The manifest printed by --json, or {}."""
    start = stdout.find("{")
    try:
        return json.loads(stdout[start:]) if start >= 0 else {}
    except json.JSONDecodeError:
        return {}


if __name__ == "__main__":
    sys.exit(main())
