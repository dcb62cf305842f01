"""`edgeport run` names what ships across every runtime by quantize's rule: the fastest faithful int8
combination only when it beats the fastest faithful fp32 one by the margin and beyond noise."""

from __future__ import annotations

from edgeport.run.runtimes import deploy_choice
from tests.helpers import bench_result as _result


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


def test_int8_on_two_runtimes_at_the_same_speed_ships_where_it_is_listed_first():
    rows = [
        _row("fp32", "fp32", "ort", None, 10.0),
        _row("int8", "int8", "ort", None, 5.0),
        _row("int8@openvino", "int8", "openvino", None, 5.0),
    ]
    lower = set()
    for seed in range(6):  # whichever p50 came out lower in this measurement, the tie keeps the first row
        results = {
            "fp32": _result([10.0] * 5, 0),
            "int8": _result([5.0] * 5, 2 * seed + 1),
            "int8@openvino": _result([5.0] * 5, 2 * seed + 2),
        }
        for row in rows:  # the rows carry the p50 of this measurement, as runtime_rows writes them
            row["p50_ms"] = results[row["label"]].stats["p50_ms"]
        lower.add(min(("int8", "int8@openvino"), key=lambda label: results[label].stats["p50_ms"]))
        deploy = deploy_choice(rows, results)
        assert deploy is not None and deploy["label"] == "int8"
    assert lower == {"int8", "int8@openvino"}  # both ways round among these measurements
