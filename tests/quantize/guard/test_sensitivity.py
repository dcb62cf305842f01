"""The per-tensor error ranking compares like with like: a Relu or Clip folded into a QuantizeLinear."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from edgeport.quantize import ModelSource, quant_config, quantize
from edgeport.quantize.guard.sensitivity import _dynamic_round_trip, layer_ranking, tensor_errors
from edgeport.quantize.strategy.fallback import layer_candidates
from tests.helpers import plant_outlier_channel


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


def test_the_dynamic_round_trip_is_onnxruntimes_dynamic_quantize_linear():
    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "scale", "zero"])
    graph = helper.make_graph(
        [node],
        "dql",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 7])],
        [
            helper.make_tensor_value_info("y", TensorProto.UINT8, [3, 7]),
            helper.make_tensor_value_info("scale", TensorProto.FLOAT, []),
            helper.make_tensor_value_info("zero", TensorProto.UINT8, []),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    samples = [rng.normal(size=(3, 7)) * 5 + 2, rng.uniform(0.5, 3, size=(3, 7)), np.zeros((3, 7))]
    for sample in samples:  # one sample at a time: the range is the sample's own
        x = sample.astype(np.float32)
        y, scale, zero = session.run(None, {"x": x})
        expected = (y.astype(np.float64) - float(zero)) * float(scale)
        assert np.allclose(_dynamic_round_trip(x[None])[0], expected, atol=1e-6)


def test_a_dynamic_model_is_ranked_by_its_own_errors_under_the_fp32_layer_names(tmp_path, fp32_onnx, digits16):
    damaged = tmp_path / "damaged.onnx"
    plant_outlier_channel(fp32_onnx, damaged)
    out = tmp_path / "dynamic.onnx"
    quantize(damaged, {"input": digits16.train.x[:64]}, quant_config(backend="ort-dynamic", per_channel=False), out)
    assert any(n.op_type == "ConvInteger" for n in onnx.load(str(out)).graph.node)
    rows = tensor_errors(out, damaged, {"input": digits16.val.x})
    kinds = {row["kind"] for row in rows if row["sqnr_db"] is not None}
    assert kinds == {"weight", "activation"}, rows
    ranking = layer_ranking(rows, layer_candidates(ModelSource(damaged), "onnx"))
    scored = [row for row in ranking if row["sqnr_db"] is not None]
    # every integer op (the Gemm made a MatMul too) is scored under its fp32 node's name, worst first
    layers = layer_candidates(ModelSource(damaged), "onnx")
    assert sorted(row["layer"] for row in scored) == sorted(layers)
    assert [row["sqnr_db"] for row in scored] == sorted(row["sqnr_db"] for row in scored)


def test_the_ranking_reads_as_many_samples_as_fit_the_budget_run_by_run(tmp_path, fp32_onnx, digits16, monkeypatch):
    """Every activation of the PP-OCRv4 detector on its samples took 15 GiB: samples beyond what fits the budget
    (judged by the first sample's exposed bytes) are left out of the ranking, down to two, and what is read is
    reduced run by run, each run at most the budget."""
    from edgeport.quantize.guard import sensitivity

    out = tmp_path / "int8.onnx"
    quantize(fp32_onnx, {"input": digits16.train.x[:64]}, quant_config(backend="ort-static"), out)
    model, inputs = onnx.load(str(out)), {"input": digits16.val.x}
    dequantized = {n.input[0]: n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    pairs = [(n.input[0], dequantized[n.output[0]]) for n in model.graph.node if n.op_type == "QuantizeLinear"]
    measures = [sensitivity._Measure(name, back, sensitivity._same) for name, back in pairs]
    exposed = onnx.load(str(out))  # the same pairs exposed here, to compute the SQNRs over the first k samples
    exposed.graph.output.extend(
        helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for pair in pairs for n in pair
    )
    session = ort.InferenceSession(exposed.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]

    def sqnr_over(k: int) -> list[float]:
        values = dict(zip(names, session.run(None, {"input": digits16.val.x[:k]}), strict=True))
        return [sensitivity._sqnr(values[name], values[back]) for name, back in pairs]

    one = dict(zip(names, session.run(None, {"input": digits16.val.x[:1]}), strict=True))
    per_sample = sum(one[n].nbytes for pair in pairs for n in pair)
    runs: list[int] = []
    real = sensitivity.iter_run_outputs
    monkeypatch.setattr(
        sensitivity,
        "iter_run_outputs",
        lambda s, chunk, *a, **k: runs.append(len(chunk["input"])) or real(s, chunk, *a, **k),
    )
    assert np.allclose(sensitivity._exposed_errors(onnx.load(str(out)), measures, inputs, "x"), sqnr_over(32))
    monkeypatch.setattr(sensitivity, "EXPOSED_BYTES", 5 * per_sample)
    runs.clear()
    assert np.allclose(sensitivity._exposed_errors(onnx.load(str(out)), measures, inputs, "x"), sqnr_over(5))
    assert runs == [1, 4]  # the first sample alone (it sets the count), then the rest in runs within the budget
    monkeypatch.setattr(sensitivity, "EXPOSED_BYTES", 1)
    assert np.allclose(sensitivity._exposed_errors(onnx.load(str(out)), measures, inputs, "x"), sqnr_over(2))


def test_a_static_tensor_is_charged_to_the_layer_that_makes_it_as_well_as_its_readers(tmp_path):
    """onnxruntime's QDQ quantizer keeps the tensor between two Convs quantized while either Conv is: with its
    reader in float it stays the writer's int8 output. The ranking charges both, so that the fallback puts
    the two in float together (charged to its reader alone, the fallback took all three layers of this model,
    the harmless first one included: tests/quantize/strategy/test_early_fallback.py)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    from tests.quantize.strategy.test_early_fallback import _three_convs

    path, calibration, validation = _three_convs(tmp_path)

    class Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self.samples = iter([{"x": calibration["x"][i : i + 1]} for i in range(len(calibration["x"]))])

        def get_next(self):
            return next(self.samples, None)

    out = tmp_path / "int8.onnx"
    quantize_static(str(path), str(out), Feeds(), quant_format=QuantFormat.QDQ, per_channel=True)
    rows = {row["tensor"]: row for row in tensor_errors(out, path, validation)}
    between = rows["r1"]  # second -> Relu -> r1 -> third
    assert between["read_by"] == ["third"] and between["made_by"][-1] == "second", between
    assert "made_by" not in rows["x"]  # a graph input: nothing made it
    ranking = {row["layer"]: row["sqnr_db"] for row in layer_ranking(list(rows.values()), ["first", "second", "third"])}
    assert ranking["second"] <= between["sqnr_db"] and ranking["third"] <= between["sqnr_db"]
    # a dynamic input is quantized by its reader alone: charged to no maker
    dynamic = {"tensor": "t", "kind": "activation", "sqnr_db": 1.0, "read_by": ["third"]}
    assert [r["layer"] for r in layer_ranking([dynamic], ["first", "second", "third"])][0] == "third"
