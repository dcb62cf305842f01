"""Exit 0 means ship it: an int8 model ships only when faithful and faster than fp32 on its runtime."""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeport.benchmarks.openvino_runtime import openvino_version
from edgeport.benchmarks.records import ONNXRUNTIME, RuntimeChoice
from edgeport.cli import main
from edgeport.quantize.strategy.payoff import PAYS_BELOW, Measured, Option, Payoff, options_to_compare


def _payoff(fp32: float, int8: float, faithful: bool = True, options=()) -> Payoff:
    payoff = Payoff(ONNXRUNTIME, fp32, int8, faithful, list(options), options_fp32_p50_ms=fp32)
    return payoff


def test_a_faithful_int8_model_ships_only_when_faster():
    assert _payoff(1.0, 0.6).ships and _payoff(1.0, 0.6).line() == ""
    slower = _payoff(1.0, 1.4, options=[Measured(Option("fp32", ONNXRUNTIME), 1.0, True, "the fp32 reference")])
    assert not slower.ships and slower.faster is False
    assert slower.line().startswith("int8 ran at 1.40x fp32's p50 on ort")
    assert not _payoff(1.0, 0.98).ships  # a 2 % "win" is noise, not a reason to ship int8
    assert "keep the fp32 model on ort" in slower.line()
    assert not _payoff(1.0, 0.5, faithful=False).ships  # faster is not enough


def test_the_fastest_faithful_option_is_named_and_an_unfaithful_one_never_is():
    openvino = RuntimeChoice("openvino")
    options = [
        Measured(Option("fp32", ONNXRUNTIME), 1.0, True, "the fp32 reference"),
        Measured(Option("int8", openvino), 0.3, False, "OUTSIDE TOLERANCE"),  # fastest, but not faithful
        Measured(Option("fp32", openvino), 0.6, True, "within tolerance"),
    ]
    payoff = _payoff(1.0, 1.2, options=options)
    assert payoff.fastest() is options[2]
    assert payoff.line().endswith("fastest faithful option measured: fp32 on openvino at 0.60x fp32 on ort")
    assert payoff.describe()["fastest_faithful"] == "fp32 on openvino"


def test_options_cover_every_installed_runtime():
    labels = [o.label for o in options_to_compare(ONNXRUNTIME, int8_faithful=True)]
    assert labels[:1] == ["fp32 on ort"] and "int8 on ort" not in labels  # what does not ship is no option
    if openvino_version():
        assert {"fp32 on openvino/f32", "fp32 on openvino", "int8 on openvino"} <= set(labels)
    assert all(o.model == "fp32" for o in options_to_compare(ONNXRUNTIME, int8_faithful=False))


def _tiny_model(folder):
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(16, 8)).astype(np.float32), "W")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Relu", ["h"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, folder / "tiny.onnx")
    np.savez(folder / "calib.npz", x=rng.normal(size=(64, 16)).astype(np.float32))
    np.savez(folder / "val.npz", x=rng.normal(size=(32, 16)).astype(np.float32))
    return folder / "tiny.onnx"


def test_the_exit_code_follows_the_measured_speed(tmp_path, capsys):
    model = _tiny_model(tmp_path)
    out = tmp_path / "tiny.int8.onnx"
    code = main(
        ["quantize", str(model), "--calib", str(tmp_path / "calib.npz"), "--val", str(tmp_path / "val.npz")]
        + ["--backend", "ort-static", "--speed-check", "--quiet", "-o", str(out)]
    )
    err = capsys.readouterr().err
    manifest = json.loads((tmp_path / "tiny.int8.manifest.json").read_text())
    speed = manifest["speed"]
    faster = speed["int8_over_fp32"] <= PAYS_BELOW
    # whatever this machine measured, the verdict, the exit code and the file name agree with it
    assert manifest["ships"] is faster and code == (0 if faster else 1), err
    assert out.is_file() is faster and (tmp_path / "tiny.int8.rejected.onnx").is_file() is not faster
    assert manifest["artifact"]["path"] == ("tiny.int8.onnx" if faster else "tiny.int8.rejected.onnx")
    if not faster:
        assert manifest["verdict"].startswith("NOT FASTER THAN FP32: int8 ran at")
        assert "does not ship" in err and speed["fastest_faithful"]
        assert any(a["option"] == "fp32 on ort" and a["faithful"] for a in speed["alternatives"])


def test_without_the_speed_check_a_faithful_model_ships(tmp_path, capsys):
    model = _tiny_model(tmp_path)
    out = tmp_path / "tiny.int8.onnx"
    args = ["quantize", str(model), "--calib", str(tmp_path / "calib.npz"), "--backend", "ort-static"]
    code = main([*args, "--no-speed-check", "--quiet", "-o", str(out)])  # as EDGEPORT_SPEED_CHECK=0 does
    manifest = json.loads((tmp_path / "tiny.int8.manifest.json").read_text())
    assert code == 0, capsys.readouterr().err
    assert out.is_file() and manifest["ships"] is True and manifest["speed"] is None


def test_auto_skips_a_fallback_that_cannot_pay(tmp_path, capsys):
    """No recipe meets an unreachable tolerance: the fallback runs only if the most faithful recipe, every
    layer int8, is faster than fp32 at all (keeping layers in float cannot make a slower model pay)."""
    model = _tiny_model(tmp_path)
    args = ["quantize", str(model), "--calib", str(tmp_path / "calib.npz"), "--val", str(tmp_path / "val.npz")]
    code = main([*args, "--min-cosine", "0.999999999", "--speed-check", "--quiet", "--json"])
    auto = json.loads(capsys.readouterr().out)["auto"]
    fallbacks = [a for a in auto["attempts"] if a["recipe"].endswith("+fallback")]
    assert code == 1
    if auto["fallback_skipped"]:
        assert not fallbacks and "cannot make it pay" in auto["fallback_skipped"]
        ratio = float(auto["fallback_skipped"].split(" ran at ")[1].split("x")[0])
        assert ratio > PAYS_BELOW
    else:
        assert len(fallbacks) == 1
