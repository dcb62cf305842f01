"""Walking an ONNX graph including the subgraphs of If, Loop and Scan nodes.

Layers inside control flow are layers too: counting only the top-level graph reported "int8
coverage 0 of 0" for a model whose convolutions all sat inside an If branch.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import onnx

# Recurrent layers are compute layers too: an LSTM model reported "int8 coverage 1 of 1 compute layers"
# while three float LSTMs did the work. onnxruntime quantizes an LSTM (dynamically) as DynamicQuantizeLSTM.
RECURRENT_FLOAT = frozenset({"LSTM", "GRU", "RNN"})
RECURRENT_INTEGER = frozenset({"DynamicQuantizeLSTM"})
COMPUTE_LAYERS = "Conv/Gemm/MatMul/LSTM/GRU/RNN"  # the compute layers int8 coverage counts, as reports name them


def subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.GRAPH:
            yield attribute.g
        elif attribute.type == onnx.AttributeProto.GRAPHS:
            yield from attribute.graphs


def iter_nodes(graph: onnx.GraphProto, depth: int = 0) -> Iterator[tuple[onnx.NodeProto, int]]:
    """Every node with its nesting depth (0: the main graph), parents before their subgraphs' nodes."""
    for node in graph.node:
        yield node, depth
        for sub in subgraphs(node):
            yield from iter_nodes(sub, depth + 1)


def dequantize(q: np.ndarray, scale: np.ndarray, zero: np.ndarray | None, axis: int) -> np.ndarray:
    """(q - zero point) * scale in float64, per channel along ``axis`` when the scale is a vector."""
    q, scale = np.asarray(q, dtype=np.float64), np.asarray(scale, dtype=np.float64)
    zero = np.zeros(()) if zero is None else np.asarray(zero, dtype=np.float64)
    if scale.ndim == 1 and q.ndim > 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return (q - zero) * scale


def dequantize_constant(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> np.ndarray:
    """The float value a DequantizeLinear of constant inputs stands for (its axis: 1 unless set)."""
    zero = constants[node.input[2]] if len(node.input) > 2 else None
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    return dequantize(constants[node.input[0]], constants[node.input[1]], zero, axis)


def op_summary(path: str | os.PathLike) -> dict:
    """Counts of the quantization nodes in a written int8 model (for the backend's report)."""
    ops = Counter(n.op_type for n, _ in iter_nodes(onnx.load(str(path)).graph))
    return {
        "quantize_linear_nodes": ops.get("QuantizeLinear", 0),
        "dequantize_linear_nodes": ops.get("DequantizeLinear", 0),
        "op_counts": dict(sorted(ops.items())),
    }


# What auto's recipes and the NNCF backend read first: what kind of graph it is.
WEIGHT_OPS = ("MatMul", "Gemm")


@dataclass(frozen=True)
class GraphProfile:
    op_counts: dict[str, int]
    weight_matmuls: int  # MatMul/Gemm with a constant (initializer) operand
    activation_matmuls: list[str]  # MatMul nodes whose operands are both computed (attention)
    integer_inputs: int
    # a conv net's classifier head: the nodes after its last convolution, when a weight MatMul/Gemm is among them
    classifier_head: tuple[str, ...] = ()

    @property
    def conv_dominant(self) -> bool:
        convs = self.op_counts.get("Conv", 0) + self.op_counts.get("ConvTranspose", 0)
        return convs >= self.weight_matmuls and not self.activation_matmuls and not self.integer_inputs

    def describe(self) -> dict:
        return {
            "kind": "conv-dominant" if self.conv_dominant else "matmul-dominant",
            "conv": self.op_counts.get("Conv", 0),
            "weight_matmuls": self.weight_matmuls,
            "activation_matmuls": len(self.activation_matmuls),
            "layer_norms": self.op_counts.get("LayerNormalization", 0),
            "softmax": self.op_counts.get("Softmax", 0),
            "integer_inputs": self.integer_inputs,
            "classifier_head": list(self.classifier_head),
        }


def graph_profile(model: onnx.ModelProto) -> GraphProfile:
    graph = model.graph
    constants = {i.name for i in graph.initializer}
    constants |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    nodes = [n for n, depth in iter_nodes(graph) if depth == 0]
    weight = [n for n in nodes if n.op_type in WEIGHT_OPS and any(i in constants for i in n.input[:2])]
    activation = [n.name for n in nodes if n.op_type == "MatMul" and not any(i in constants for i in n.input[:2])]
    initializers = {i.name for i in graph.initializer}
    integer_types = (onnx.TensorProto.INT64, onnx.TensorProto.INT32)  # token ids, masks: a language model
    integer = [i for i in graph.input if i.name not in initializers and i.type.tensor_type.elem_type in integer_types]
    return GraphProfile(
        dict(Counter(n.op_type for n in nodes)),
        len(weight),
        activation,
        len(integer),
        classifier_head(nodes, {n.name for n in weight}),
    )


_CONVOLUTIONS = ("Conv", "ConvTranspose")
_FUSED_WITH_CONV = ("BatchNormalization", "Relu", "Clip")


def classifier_head(nodes: list[onnx.NodeProto], weight_layers: set[str]) -> tuple[str, ...]:
    """The named nodes computed from the last convolution's output (pooling, flatten, the Gemm that makes
    the logits), in graph order, when a weight MatMul/Gemm is among them; () otherwise (no convolution, or
    a tail without a weight layer, such as a detector's Sigmoid). ``nodes``: the main graph's, which ONNX
    keeps in topological order."""
    last = max((i for i, n in enumerate(nodes) if n.op_type in _CONVOLUTIONS), default=None)
    if last is None:
        return ()
    consumers: dict[str, list[int]] = {}
    for index, node in enumerate(nodes):
        for name in node.input:
            consumers.setdefault(name, []).append(index)
    # the convolution's own normalisation and activation run fused with it (QLinearConv): not the head
    while len(nodes[last].output) == 1 and len(after := consumers.get(nodes[last].output[0], [])) == 1:
        if nodes[after[0]].op_type not in _FUSED_WITH_CONV:
            break
        last = after[0]
    reached = set(nodes[last].output)
    tail: list[onnx.NodeProto] = []
    for node in nodes[last + 1 :]:
        if any(i in reached for i in node.input):
            reached.update(node.output)
            tail.append(node)
    if not any(n.name in weight_layers for n in tail) or not all(n.name for n in tail):
        return ()  # an unnamed node cannot be kept in float by name
    return tuple(n.name for n in tail)
