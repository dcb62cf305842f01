"""Every installed runtime in `edgeport run`: the fp32 and int8 artifacts measured on onnxruntime and,
where the openvino extra is installed, on OpenVINO (the int8 file as it is; the fp32 file at OpenVINO's
own CPU default, bf16 on CPUs with AMX or AVX-512 BF16: a reduced-precision baseline that needs no
calibration, and there at f32 too), all interleaved in one measurement. Each combination is also run on the
validation split, so its accuracy and its agreement with the same file on onnxruntime are known (the
numerics of one artifact differ between runtimes). The fastest combination within the guard's
tolerance is named: on a CPU where OpenVINO runs int8 three times faster, that is what a user ships.

What ships (``deploy``) follows the rule ``edgeport quantize`` chooses its runtime by: the fastest faithful
int8 combination against the fastest faithful fp32 one (any runtime or precision), int8 only when it is
faster by the margin and beyond noise (benchmarks/speedup.py, the two paired round by round).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeport.benchmarks.openvino_runtime import fp32_openvino_choices, openvino_version
from edgeport.benchmarks.records import ONNXRUNTIME, RuntimeChoice
from edgeport.benchmarks.speedup import fastest_beyond_noise, speedup_of
from edgeport.distill import accuracy
from edgeport.exporter import predict_on


@dataclass(frozen=True)
class Variant:
    label: str  # the key in latency.json: "fp32", "int8", "int8@openvino", "fp32@openvino/f32", ...
    model: str  # "fp32" or "int8": which artifact
    runtime: RuntimeChoice


def runtime_variants(primary: RuntimeChoice = ONNXRUNTIME) -> list[Variant]:
    """The combinations to measure: "fp32" and "int8" on the run's own runtime (``bench.runtime``, what
    its latency section and the gate read), then onnxruntime and OpenVINO (when installed) beside it."""
    variants = [Variant("fp32", "fp32", primary), Variant("int8", "int8", primary)]
    if primary.name != ONNXRUNTIME.name:
        variants += [Variant("fp32@ort", "fp32", ONNXRUNTIME), Variant("int8@ort", "int8", ONNXRUNTIME)]
    if openvino_version():
        # fp32 at f32 and at OpenVINO's default (bf16 where the CPU has it; the default alone where it is f32)
        variants += [Variant(f"fp32@{choice.label()}", "fp32", choice) for choice in fp32_openvino_choices()]
        variants.append(Variant("int8@openvino", "int8", RuntimeChoice("openvino")))
    unique: dict[tuple, Variant] = {}
    for variant in variants:  # the run's own runtime may be one of the others: measure each pair once
        unique.setdefault((variant.model, variant.runtime), variant)
    return list(unique.values())


def _outputs(variant: Variant, path: Path, x: np.ndarray) -> np.ndarray:
    return predict_on(path, x, variant.runtime)


def runtime_table(
    variants: list[Variant], paths: Mapping[str, Path], results: dict, val_x: np.ndarray, val_y: np.ndarray, drop: float
) -> dict:
    """One row per combination (latency, precision used, val accuracy, agreement with the same file on
    onnxruntime, faithful or not), and the fastest faithful one. Faithful: val accuracy at most ``drop``
    points below the fp32 model on onnxruntime (the guard's tolerance)."""
    ort_outputs = {v.model: _outputs(v, paths[v.model], val_x) for v in variants if v.runtime.name == ONNXRUNTIME.name}
    reference = accuracy(ort_outputs["fp32"], val_y)
    ort_fp32 = next(v.label for v in variants if v.model == "fp32" and v.runtime == ONNXRUNTIME)
    base_p50 = results[ort_fp32].stats["p50_ms"]
    rows = []
    for variant in variants:
        outputs = (
            ort_outputs[variant.model]
            if variant.runtime.name == ONNXRUNTIME.name
            else _outputs(variant, paths[variant.model], val_x)
        )
        val_accuracy = accuracy(outputs, val_y)
        result = results[variant.label]
        rows.append(
            {
                "label": variant.label,
                "model": variant.model,
                "runtime": variant.runtime.name,
                "precision": variant.runtime.precision,
                "precision_used": result.settings.get("precision_used"),
                "p50_ms": result.stats["p50_ms"],
                "p90_ms": result.stats["p90_ms"],
                "p50_over_ort_fp32": result.stats["p50_ms"] / base_p50,
                "val_accuracy": val_accuracy,
                "top1_agreement_with_ort": float(
                    (outputs.argmax(1) == ort_outputs[variant.model].argmax(1)).mean() * 100
                ),
                "max_abs_diff_vs_ort": float(np.abs(outputs - ort_outputs[variant.model]).max()),
                "faithful": val_accuracy >= reference - drop,
            }
        )
    faithful = [r for r in rows if r["faithful"]]
    fastest = min(faithful, key=lambda r: r["p50_ms"])["label"] if faithful else None
    return {"tolerance_points": drop, "rows": rows, "fastest_faithful": fastest, "deploy": deploy_choice(rows, results)}


def deploy_choice(rows: list[dict], results: dict) -> dict | None:
    """What ships: the fastest faithful int8 row (the first listed unless another is clearly faster: a tie is
    not decided by chance) when it beats the fastest faithful fp32 row beyond noise, else that fp32 row; None
    when no fp32 row is faithful (nothing to compare with)."""
    faithful = [r for r in rows if r["faithful"]]
    fp32 = min((r for r in faithful if r["model"] == "fp32"), key=lambda r: r["p50_ms"], default=None)
    int8s = {r["label"]: r for r in faithful if r["model"] == "int8"}
    int8 = int8s[fastest_beyond_noise(list(int8s), results)] if int8s else None
    if fp32 is None:
        return None
    if int8 is None:
        return {**_ships(fp32), "against": None, "int8_over_fp32_p50": None, "int8_over_fp32_p50_ci": None,
                "verdict": f"no faithful int8 combination: keep fp32 on {_where(fp32)}"}  # fmt: skip
    speedup = speedup_of(results[int8["label"]], results[fp32["label"]])
    ships = int8 if speedup.pays else fp32
    verdict = (
        f"int8 on {_where(int8)} at {speedup.text()} the p50 of fp32 on {_where(fp32)}, the fastest faithful fp32"
        if speedup.pays
        else f"int8 on {_where(int8)}, the fastest faithful int8, ran at {speedup.text()} the p50 of fp32 on "
        f"{_where(fp32)} ({speedup.why_not()}): keep fp32 on {_where(fp32)}"
    )
    return {
        **_ships(ships),
        "against": fp32["label"],
        "int8_over_fp32_p50": round(speedup.ratio, 4),
        "int8_over_fp32_p50_ci": [round(v, 4) for v in speedup.ratio_ci] if speedup.ratio_ci else None,
        "verdict": verdict,
    }


def _where(row: dict) -> str:
    return RuntimeChoice(row["runtime"], row["precision"]).label()


def _ships(row: dict) -> dict:
    return {"label": row["label"], "model": row["model"], "runtime": row["runtime"], "precision": row["precision"]}
