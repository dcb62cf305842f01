"""Per-tensor quantization error in one pass, in the spirit of onnxruntime's ``qdq_loss_debug``.

The QDQ int8 model is run once on a few validation samples with both sides of every
QuantizeLinear -> DequantizeLinear pair exposed as outputs: the float tensor and what int8 gives
back. A weight's error is its DequantizeLinear output against the fp32 model's initializer. Each
quantized tensor gets an SQNR (dB, higher is better); the ranking, worst first, is what
``--explain`` prints and what the fallback returns to float, layer by layer, by bisection.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeport.quantize.guard.verify import run_all_outputs
from edgeport.quantize.inputs.graph import dequantize_constant

SAMPLES = 32  # a few batches: the ranking, not a metric to report


def _sqnr(reference: np.ndarray, quantized: np.ndarray) -> float:
    reference, quantized = reference.astype(np.float64), quantized.astype(np.float64)
    noise = float(np.mean((reference - quantized) ** 2))
    signal = float(np.mean(reference**2))
    if noise == 0:
        return float("inf")
    return float(10 * np.log10(signal / noise)) if signal > 0 else float("-inf")


def _exposed_values(model: onnx.ModelProto, names: set[str], inputs: dict, source: str) -> dict[str, np.ndarray]:
    """The named tensors of ``model`` (made graph outputs) on the first ``SAMPLES`` samples."""
    import onnxruntime as ort

    graph = model.graph
    for name in names - {o.name for o in graph.output}:
        graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    feeds = {k: v[:SAMPLES] for k, v in inputs.items()}
    with tempfile.TemporaryDirectory() as tmp:
        exposed = Path(tmp) / "exposed.onnx"
        onnx.save(model, str(exposed))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every pair
        options.log_severity_level = 3
        options.intra_op_num_threads = 1  # one thread: the same sums, so the same ranking, every run
        session = ort.InferenceSession(str(exposed), options, providers=["CPUExecutionProvider"])
        # in chunks or one sample at a time, as the inputs' layout (feeds.py) and a fixed batch need
        return run_all_outputs(session, feeds, SAMPLES, source)


def _same(x: np.ndarray) -> np.ndarray:
    return x


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def _folded_activations(
    fp32_model: onnx.ModelProto, int8_readers: dict, constants: dict, int8_graph: onnx.GraphProto
) -> dict:
    """Tensor -> the Relu/Clip the quantizer folded into its QuantizeLinear (the int8 range starts at the
    activation's bound instead). The float side of such a pair is the pre-activation output: compared as
    it is, a Conv + Relu read about 3 dB where it is really 30; the activation is applied to it first."""
    int8_activations = {op: {n.output[0] for n in int8_graph.node if n.op_type == op} for op in ("Relu", "Clip")}
    constants = {**constants}
    for node in fp32_model.graph.node:  # torch exports Clip bounds as Constant nodes
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    folded = {}
    for node in fp32_model.graph.node:
        if node.op_type not in ("Relu", "Clip") or not node.input:
            continue
        if node.output[0] in int8_activations[node.op_type] or any(
            r.op_type == node.op_type for r in int8_readers.get(node.input[0], [])
        ):
            continue  # still in the int8 graph (reading a DequantizeLinear output, say): nothing was folded
        # the quantized tensor keeps the producer's output name, or takes the activation's (ORT's QDQ)
        names = (node.input[0], node.output[0])
        if node.op_type == "Relu":
            folded.update(dict.fromkeys(names, _relu))
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}  # opset < 11: min/max
        bounds = [attributes.get("min", -np.inf), attributes.get("max", np.inf)]
        for index, name in enumerate(node.input[1:3]):
            if name in constants:
                bounds[index] = float(constants[name])
            elif name:  # a computed bound: unknown here, compare unclipped
                break
        else:
            low, high = bounds
            folded.update(dict.fromkeys(names, lambda x, low=low, high=high: np.clip(x, low, high)))
    return folded


def tensor_errors(
    int8_path: str | os.PathLike, fp32_path: str | os.PathLike, inputs: dict[str, np.ndarray]
) -> list[dict]:
    """Every quantized tensor of the int8 model with its SQNR and the nodes that read it, worst first."""
    model = onnx.load(str(int8_path))
    graph = model.graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    fp32_model = onnx.load(str(fp32_path))
    fp32_weights = {i.name: numpy_helper.to_array(i) for i in fp32_model.graph.initializer}
    readers: dict[str, list[onnx.NodeProto]] = {}  # tensor -> the nodes that read it, built once
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    def read_by(tensor: str) -> list[str]:
        return [n.name for n in readers.get(tensor, []) if n.op_type != "QuantizeLinear"]

    rows, pairs = [], []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in constants:
            original = fp32_weights.get(node.input[0].removesuffix("_quantized"))
            if original is not None and original.shape == constants[node.input[0]].shape:
                sqnr = _sqnr(original, dequantize_constant(node, constants))
                rows.append(
                    {
                        "tensor": node.input[0].removesuffix("_quantized"),
                        "kind": "weight",
                        "sqnr_db": sqnr,
                        "read_by": read_by(node.output[0]),
                    }
                )
        elif node.op_type == "QuantizeLinear" and node.input[0] not in constants:
            dequant = next((n for n in readers.get(node.output[0], []) if n.op_type == "DequantizeLinear"), None)
            if dequant is not None:
                pairs.append((node.input[0], dequant.output[0]))
    folded = _folded_activations(fp32_model, readers, fp32_weights, graph)
    values = _exposed_values(model, {n for pair in pairs for n in pair}, inputs, str(int8_path))
    for float_name, dequant_name in pairs:
        rows.append(
            {
                "tensor": float_name,
                "kind": "activation",
                "sqnr_db": _sqnr(folded.get(float_name, _same)(values[float_name]), values[dequant_name]),
                "read_by": read_by(dequant_name),
            }
        )
    for row in rows:  # 0.01 dB: noise-level differences must not reorder the ranking (graph order breaks ties)
        row["sqnr_db"] = round(row["sqnr_db"], 2)
    ranked = sorted(rows, key=lambda row: row["sqnr_db"])
    for row in ranked:  # JSON has no infinity: an exact tensor (no quantization noise) is null
        row["sqnr_db"] = row["sqnr_db"] if np.isfinite(row["sqnr_db"]) else None
    return ranked


def layer_ranking(errors: list[dict], layers: list[str]) -> list[dict]:
    """Each layer scored by the worst SQNR among the quantized tensors it reads, worst first."""
    scores = {layer: float("inf") for layer in layers}
    for row in errors:
        sqnr = row["sqnr_db"] if row["sqnr_db"] is not None else float("inf")
        for layer in row["read_by"]:
            if layer in scores:
                scores[layer] = min(scores[layer], sqnr)
    ranked = sorted(scores.items(), key=lambda item: item[1])
    return [{"layer": k, "sqnr_db": v if np.isfinite(v) else None} for k, v in ranked]
