"""Which fp32 layers an int8 model's tensor belongs to: the node an int8 node stands for, and the nodes that
made a quantized tensor, by their fp32 names (the names the fallback keeps in float)."""

from __future__ import annotations

from collections.abc import Container

import onnx


def source_name(node: onnx.NodeProto, fp32_nodes: set[str]) -> str:
    """The fp32 node an int8 node stands for: its own name (QDQ models keep it), else the longest fp32 node
    name it extends with "_": onnxruntime's dynamic quantization names the integer op of a MatMul or Conv
    after it with ``_quant`` appended, and a Gemm becomes ``{gemm}_MatMul_quant``."""
    if node.name in fp32_nodes:
        return node.name
    extended = [name for name in fp32_nodes if name and node.name.startswith(name + "_")]
    return max(extended, key=len, default=node.name)


def made_by(
    tensor: str, producers: dict[str, onnx.NodeProto], constants: Container[str], fp32_nodes: set[str]
) -> list[str]:
    """The nodes that made ``tensor`` (fp32 names, nearest first): its producer, and back through the ops with
    one computed input (a Relu, a bias Add, a Reshape) as far as a quantized input or a join of two tensors;
    the ranking charges the first of them that is a layer (sensitivity.layer_ranking). ``producers``: the int8
    graph's nodes by output; ``constants``: its initializers (by name)."""
    chain: list[str] = []
    node = producers.get(tensor)
    while node is not None and node.op_type not in ("DequantizeLinear", "QuantizeLinear") and len(chain) < 8:
        chain.append(source_name(node, fp32_nodes))
        computed = [name for name in node.input if name and name not in constants]
        if len(computed) != 1 or computed[0] not in producers:
            break  # a join of two tensors (or a dequantized weight beside its input), or a graph input
        node = producers[computed[0]]
    return chain


__all__ = ["made_by", "source_name"]
