"""The per-tensor error ranking compares like with like: a Relu or Clip folded into a QuantizeLinear."""

from __future__ import annotations

import onnx

from edgeport.quantize import quant_config, quantize
from edgeport.quantize.guard.sensitivity import tensor_errors


def test_a_relu_folded_into_the_int8_range_is_not_counted_as_error(tmp_path, fp32_onnx, digits16):
    out = tmp_path / "int8.onnx"
    quantize(fp32_onnx, {"input": digits16.train.x[:64]}, quant_config(backend="ort-static"), out)
    fp32_graph, int8_graph = onnx.load(str(fp32_onnx)).graph, onnx.load(str(out)).graph
    # ORT folds each Relu into its Conv's QuantizeLinear and gives the Conv the Relu's output name
    relus = {name for n in fp32_graph.node if n.op_type == "Relu" for name in (n.input[0], n.output[0])}
    assert relus and not [n for n in int8_graph.node if n.op_type == "Relu"]
    rows = {row["tensor"]: row for row in tensor_errors(out, fp32_onnx, {"input": digits16.val.x})}
    folded = [rows[name] for name in relus if name in rows]
    # compared without the Relu the negative half counts as error (about 3 dB); with it, int8 noise only
    assert folded and all(row["sqnr_db"] > 20 for row in folded), folded


def test_a_relu_the_quantizer_kept_is_not_applied_twice(tmp_path, fp32_onnx, digits16):
    # symmetric activations: ORT keeps each Relu (its range is no longer [0, max]) and quantizes its input
    out = tmp_path / "int8.onnx"
    config = quant_config(backend="ort-static", symmetric_activations=True)
    quantize(fp32_onnx, {"input": digits16.train.x[:64]}, config, out)
    kept = [n for n in onnx.load(str(out)).graph.node if n.op_type == "Relu"]
    assert kept
    rows = {row["tensor"]: row for row in tensor_errors(out, fp32_onnx, {"input": digits16.val.x})}
    compared = [
        rows[n.input[0].removesuffix("_DequantizeLinear_Output")]
        for n in kept
        if n.input[0].endswith("_DequantizeLinear_Output")
    ]
    assert compared and all(row["sqnr_db"] > 20 for row in compared), compared
