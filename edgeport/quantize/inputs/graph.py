"""Walking an ONNX graph including the subgraphs of If, Loop and Scan nodes.

Layers inside control flow are layers too: counting only the top-level graph reported "int8
coverage 0 of 0" for a model whose convolutions all sat inside an If branch.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator

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


def dequantize_constant(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> np.ndarray:
    """The float value a DequantizeLinear of constant inputs stands for: (q - zero point) * scale,
    per channel along the node's axis when the scale is a vector."""
    q = np.asarray(constants[node.input[0]], dtype=np.float64)
    scale = np.asarray(constants[node.input[1]], dtype=np.float64)
    zero = np.asarray(constants[node.input[2]], dtype=np.float64) if len(node.input) > 2 else np.zeros(())
    if scale.ndim == 1 and q.ndim > 1:
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return (q - zero) * scale


def op_summary(path: str | os.PathLike) -> dict:
    """Counts of the quantization nodes in a written int8 model (for the backend's report)."""
    ops = Counter(n.op_type for n, _ in iter_nodes(onnx.load(str(path)).graph))
    return {
        "quantize_linear_nodes": ops.get("QuantizeLinear", 0),
        "dequantize_linear_nodes": ops.get("DequantizeLinear", 0),
        "op_counts": dict(sorted(ops.items())),
    }
