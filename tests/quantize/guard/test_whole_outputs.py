"""An output that holds no samples axis (one value per run) is judged as one vector, never a traceback."""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeport.cli import main


def test_an_output_without_a_samples_axis_gets_a_verdict(tmp_path, capsys):
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(3, 8, 3, 3)).astype(np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["features"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["features"], ["y"]),
        helper.make_node("ReduceMean", ["y"], ["level"], keepdims=0),  # rank 0: one value per run
    ]
    graph = helper.make_graph(
        nodes,
        "whole",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 16, 16])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 16, 16]),
            helper.make_tensor_value_info("level", TensorProto.FLOAT, []),
        ],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", x=rng.normal(size=(32, 8, 16, 16)).astype(np.float32))
    np.savez(tmp_path / "val.npz", x=rng.normal(size=(16, 8, 16, 16)).astype(np.float32))
    args = ["quantize", tmp_path / "m.onnx", "--calib", tmp_path / "calib.npz", "--val", tmp_path / "val.npz"]
    code = main([str(a) for a in [*args, "--backend", "ort-static", "--quiet", "--json"]])
    out, err = capsys.readouterr()
    assert code in (0, 1) and "Traceback" not in err, err
    outputs = {o["name"]: o for o in json.loads(out)["guard"]["outputs"]}
    assert outputs["level"]["per_sample"] is False and outputs["level"]["mean_cosine"] > 0.99
    assert "per_sample" not in outputs["y"]
