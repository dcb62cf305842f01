"""`edgeport quantize` with its default (auto) against a forced ort-static, on models not built for edgeport.

- torchvision resnet18 at 224x224 (random weights: latency and the static recipe's route do not depend
  on them): wall time of auto over one ort-static quantization (goal <= 3x) and the p50 of auto's
  artifact over ort-static's, measured interleaved with fp32 (goal: within 5%).
- BERT-style encoders from `transformers` configs (random weights, padded sentences; sizes in
  ENCODERS): auto's chosen recipe, its mean output cosine on held-out inputs (goal >= 0.99) and its
  p50 over fp32 (the issue's goal <= 0.40 at batch 1, one thread).

Appends a table to perf/RESULTS.md.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
from perf_common import append_results, cpu_line, export_torchvision, verdict

from edgeport.benchmarks import BenchSettings, measure_interleaved
from edgeport.benchmarks.fingerprint import cpu_fingerprint
from edgeport.quantize.job import QuantizeFileRequest, quantize_file
from tests.models.encoders import export_bert_encoder, save_padded_sentences

SETTINGS = BenchSettings(batch=1, threads=1, warmup=50, iterations=1000, rounds=10)


def _resnet(folder: Path) -> list[str]:
    x = np.random.default_rng(0).standard_normal((40, 3, 224, 224)).astype(np.float32)
    fp32 = export_torchvision("resnet18", 1000, x, folder / "resnet18.onnx")
    np.savez(folder / "calib.npz", x=x[:32])
    np.savez(folder / "val.npz", x=x[32:])
    seconds = {}
    for backend in ("ort-static", "auto"):
        started = time.perf_counter()
        quantize_file(
            QuantizeFileRequest(
                str(folder / "calib.npz"),
                model=str(fp32),
                val=str(folder / "val.npz"),
                config={"backend": backend},
                output=str(folder / f"{backend}.onnx"),
            )
        )
        seconds[backend] = time.perf_counter() - started
    models = {"fp32": fp32, "static": folder / "ort-static.onnx", "auto": folder / "auto.onnx"}
    p50 = {k: r.stats["p50_ms"] for k, r in measure_interleaved(models, SETTINGS, {"input": x[:1]}).items()}
    chosen = json.loads((folder / "auto.manifest.json").read_text())["auto"]["chosen"]
    wall = seconds["auto"] / seconds["ort-static"]
    speed = p50["auto"] / p50["static"]
    return [
        f"| resnet18 224 | wall of auto / one ort-static quantization | {wall:.2f} ({seconds['auto']:.1f} s / "
        f"{seconds['ort-static']:.1f} s) | <= 3 | {verdict(wall <= 3)} |",
        f"| resnet18 224 | p50 of auto's artifact ({chosen}) / ort-static's | {speed:.3f} ({p50['auto']:.2f} ms / "
        f"{p50['static']:.2f} ms; fp32 {p50['fp32']:.2f} ms) | within 5% | {verdict(abs(speed - 1) <= 0.05)} |",
    ]


# (label, layers, hidden, heads, intermediate, sequence length). The first is the model: a
# 6-layer sentence-embedding encoder (MiniLM-L6 sizes) at 32 tokens; the second is narrower and longer,
# a harder case for int8 (less MatMul work per token, more attention and mask arithmetic).
ENCODERS = (("L6 H384 seq32 (MiniLM-L6 sizes)", 6, 384, 12, 1536, 32), ("L4 H256 seq64", 4, 256, 4, 1024, 64))


def _encoder(folder: Path, label: str, layers: int, hidden: int, heads: int, intermediate: int, length: int):
    folder = folder / f"encoder-{layers}x{hidden}"
    folder.mkdir()
    sizes = {"hidden": hidden, "layers": layers, "heads": heads, "intermediate": intermediate}
    fp32 = export_bert_encoder(folder / "encoder.onnx", vocab=1000, length=length, **sizes)
    rng = np.random.default_rng(1)
    for name, count in (("calib", 32), ("val", 16)):
        save_padded_sentences(folder / f"e{name}.npz", count, length, 1000, rng)
    started = time.perf_counter()
    _, manifest = quantize_file(
        QuantizeFileRequest(
            str(folder / "ecalib.npz"),
            model=str(fp32),
            val=str(folder / "eval.npz"),
            config={"backend": "auto"},
            output=str(folder / "encoder.int8.onnx"),
        )
    )
    seconds = time.perf_counter() - started
    feeds = {k: v[:1] for k, v in np.load(folder / "eval.npz").items()}
    models = {"fp32": fp32, "int8": folder / "encoder.int8.onnx"}
    p50 = {k: r.stats["p50_ms"] for k, r in measure_interleaved(models, SETTINGS, feeds).items()}
    ratio, cosine = p50["int8"] / p50["fp32"], manifest["guard"]["value"]
    tried = ", ".join(
        f"{a['recipe']} cos {a['value']:.4f}" + (f" {a['p50_over_fp32']:.2f}x" if a["p50_over_fp32"] else "")
        for a in manifest["auto"]["attempts"]
    )
    return [
        f"| BERT-style encoder {label} | auto's choice: {manifest['auto']['chosen']} (tried: {tried}; "
        f"{seconds:.1f} s) | mean cosine {cosine:.4f}, p50 {ratio:.2f}x fp32 ({p50['int8']:.2f} / "
        f"{p50['fp32']:.2f} ms) | cosine >= 0.99, <= 0.40x | "
        f"cosine {verdict(cosine >= 0.99)}, speed {verdict(ratio <= 0.40)} |",
    ]


def main() -> int:
    cpu = cpu_fingerprint()
    with tempfile.TemporaryDirectory() as tmp:
        rows = _resnet(Path(tmp))
        for encoder in ENCODERS:
            rows += _encoder(Path(tmp), *encoder)
    append_results(
        "`edgeport quantize` default (auto) vs ort-static",
        "auto_recipes.py",
        f"{cpu_line(cpu)}; p50 at batch 1, one thread, interleaved with fp32 in one process.",
        ["| model | what | measured | goal | verdict |", "|---|---|---|---|---|", *rows],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
