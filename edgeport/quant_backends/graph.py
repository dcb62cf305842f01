"""Walking an ONNX graph including the subgraphs of If, Loop and Scan nodes.

Layers inside control flow are layers too: counting only the top-level graph reported "int8
coverage 0 of 0" for a model whose convolutions all sat inside an If branch.
"""

from __future__ import annotations

from collections.abc import Iterator

import onnx


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
