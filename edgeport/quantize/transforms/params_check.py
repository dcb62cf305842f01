"""Valid quantization parameters: after any backend, every scale in the int8 graph is checked.

A scale that is NaN, infinite, zero or negative quantizes its tensor to garbage, and so does an
absurd one: a range of 10^12 and more comes from a constant such as an attention mask's
``finfo(float32).min``, not from data, and leaves every real value at the zero point. Such an
activation is repaired by leaving it in float (its QuantizeLinear -> DequantizeLinear pair is
bypassed, the consumers read the float tensor); a weight (a constant DequantizeLinear input) or a
QOperator node with such a scale is refused with the tensor named.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import numpy_helper

from edgeport.errors import QuantizationError
from edgeport.quantize.inputs.graph import dequantize_constant
from edgeport.quantize.transforms.subgraphs import node_outer_reads, rename_reads

# A uint8 step of 4e9 spans 10^12: no activation of a working network, only masking constants.
MAX_SCALE = 4e9
QOPERATOR_SCALED = {"QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd", "QLinearMul"}


def _problem(scale: np.ndarray) -> str | None:
    if not np.isfinite(scale).all():
        return "a NaN or infinite scale"
    if (scale <= 0).any():
        return "a zero or negative scale"
    if (scale > MAX_SCALE).any():
        return f"a scale of {float(scale.max()):.3g} (a range beyond 10^12: a masking constant, not data)"
    return None


def _bypass(graph: onnx.GraphProto, quant: onnx.NodeProto) -> set[str]:
    """Remove ``quant`` and the DequantizeLinear nodes it feeds (their readers read its float input);
    return the outputs of the removed nodes, or nothing when the pair cannot be bypassed."""
    readers = [n for n in graph.node if quant.output[0] in n.input]
    outputs = {o.name for o in graph.output}
    if not readers or any(n.op_type != "DequantizeLinear" or n.output[0] in outputs for n in readers):
        return set()  # another reader, or a graph output produced by the pair: not ours to rewire
    if any(quant.output[0] in node_outer_reads(n) for n in graph.node):
        return set()  # an If/Loop/Scan body reads the int8 tensor itself
    float_name = quant.input[0]
    for dequant in readers:
        for node in graph.node:  # a body reading the dequantized value reads the float one as well
            rename_reads(node, dequant.output[0], float_name)
        graph.node.remove(dequant)
    graph.node.remove(quant)
    return {quant.output[0], *(d.output[0] for d in readers)}


def _dequantized_constant(graph: onnx.GraphProto, dequant: onnx.NodeProto, constants: dict) -> bool:
    """Replace a DequantizeLinear of a constant by the float constant it stands for, when its (finite,
    positive, absurd) scale still gives the value back."""
    scale = np.asarray(constants[dequant.input[1]], dtype=np.float64)
    if not np.isfinite(scale).all() or (scale <= 0).any():
        return False
    value = dequantize_constant(dequant, constants).astype(np.float32)
    graph.initializer.append(numpy_helper.from_array(value, dequant.output[0]))
    graph.node.remove(dequant)
    return True


def repair_quant_params(path: str | os.PathLike) -> list[dict]:
    """Check every scale of the int8 model at ``path``; fix activations in place, refuse the rest.

    Returns the repairs (tensor, problem, what was done) for the backend's report.
    """
    model = onnx.load(str(path))
    graph = model.graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    repairs = []
    removed: set[str] = set()  # outputs of bypassed nodes: those nodes are gone from the graph
    for node in list(graph.node):
        if node.output[0] in removed:
            continue
        if node.op_type not in {"QuantizeLinear", "DequantizeLinear"} | QOPERATOR_SCALED:
            continue
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            scales = [node.input[1]] if len(node.input) > 1 and node.input[1] in constants else []
        else:  # QOperator: its float constant inputs are its scales (weights are int8, biases int32)
            scales = [i for i in node.input if i in constants and constants[i].dtype.kind == "f"]
        for name in scales:
            problem = _problem(np.asarray(constants[name], dtype=np.float64))
            if problem is None:
                continue
            tensor = node.input[0]
            bypassed = _bypass(graph, node) if node.op_type == "QuantizeLinear" and tensor not in constants else set()
            if bypassed:
                removed |= bypassed
                repairs.append({"tensor": tensor, "problem": problem, "action": "left in float"})
                break
            if node.op_type == "DequantizeLinear" and any(
                n.op_type == "QuantizeLinear" and n.output[0] == tensor for n in graph.node
            ):
                continue  # the activation pair: repaired (or refused) at its QuantizeLinear
            if (
                node.op_type == "DequantizeLinear"
                and tensor in constants
                and _dequantized_constant(graph, node, constants)
            ):
                removed.add(node.output[0])
                repairs.append({"tensor": tensor, "problem": problem, "action": "stored in float"})
                break
            raise QuantizationError(
                f"the int8 model has {problem} for {tensor!r} (node {node.name or node.op_type}); "
                f"keep it in float with --exclude-node {node.name or '<node>'} or another backend"
            )
    if repairs:
        onnx.save(model, str(path))
    return repairs
