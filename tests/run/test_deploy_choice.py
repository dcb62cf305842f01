"""`edgeport run` names what ships across every runtime by quantize's rule: the fastest faithful int8
combination only when it beats the fastest faithful fp32 one by the margin and beyond noise."""

from __future__ import annotations

import numpy as np

from edgeport.benchmarks.records import BenchResult
from edgeport.run.runtimes import deploy_choice


def _result(medians: list[float], seed: int) -> BenchResult:
    rng = np.random.default_rng(seed)
    rounds = [median * (1 + 0.01 * rng.standard_normal(40)) for median in medians]
    settings = {"batch": 1, "rounds_run": len(rounds), "round_sizes": [len(r) for r in rounds]}
    return BenchResult("m.onnx", "0" * 64, settings, {}, np.concatenate(rounds).tolist())


def _row(label: str, model: str, runtime: str, precision: str | None, p50: float, faithful: bool = True) -> dict:
    return {
        "label": label,
        "model": model,
        "runtime": runtime,
        "precision": precision,
        "p50_ms": p50,
        "faithful": faithful,
    }


def test_int8_ships_on_the_runtime_where_it_beats_the_fastest_faithful_fp32():
    rows = [
        _row("fp32", "fp32", "ort", None, 10.0),
        _row("int8", "int8", "ort", None, 9.6),
        _row("fp32@openvino", "fp32", "openvino", None, 8.0),
        _row("int8@openvino", "int8", "openvino", None, 4.0),
    ]
    results = {
        "fp32": _result([10.0] * 5, 0),
        "int8": _result([9.6] * 5, 1),
        "fp32@openvino": _result([8.0] * 5, 2),
        "int8@openvino": _result([4.0] * 5, 3),
    }
    deploy = deploy_choice(rows, results)
    assert deploy is not None and (deploy["label"], deploy["against"]) == ("int8@openvino", "fp32@openvino")
    assert abs(deploy["int8_over_fp32_p50"] - 0.5) < 0.02
    assert deploy["int8_over_fp32_p50_ci"][1] < 1.0 and "the fastest faithful fp32" in deploy["verdict"]


def test_an_int8_gain_within_noise_or_an_unfaithful_int8_keeps_the_fastest_faithful_fp32():
    rows = [
        _row("fp32", "fp32", "ort", None, 10.0),
        _row("int8", "int8", "ort", None, 9.0),
        _row("int8@openvino", "int8", "openvino", None, 2.0, faithful=False),  # fast, but outside tolerance
    ]
    results = {
        "fp32": _result([10.0] * 6, 0),
        "int8": _result([6.0, 12.0, 6.5, 11.5, 7.0, 9.0], 1),  # below fp32's median, rounds on both sides
        "int8@openvino": _result([2.0] * 6, 2),
    }
    deploy = deploy_choice(rows, results)
    assert deploy is not None and deploy["model"] == "fp32" and deploy["label"] == "fp32"
    assert "not faster beyond noise" in deploy["verdict"] and "keep fp32 on ort" in deploy["verdict"]
    rows[1]["faithful"] = False
    deploy = deploy_choice(rows, results)
    assert deploy is not None and deploy["model"] == "fp32" and deploy["verdict"].startswith("no faithful int8")
