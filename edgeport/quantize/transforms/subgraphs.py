"""Control flow (If, Loop, Scan) through onnxruntime's quantizers: bodies that read outer-scope values.

A subgraph may read any value of the graphs around it by name, without listing it as an input of its
node. onnxruntime's quantizers (static QDQ and QOperator, dynamic) look at a node's listed inputs
only, and so break such a model in two ways, both found on a real voice-activity model (three If
nodes on its sample rate, whose branches read the encoder's output and the recurrent state):

- order: before saving, the quantizer sorts the main graph's nodes by their listed inputs alone
  (``ONNXModel.topological_sort``). An If whose condition is ready early went before the nodes
  computing what its branches read, and the int8 file failed onnx's checker ("Nodes in a graph must
  be topologically sorted ... If_1"); onnxruntime loaded some such files and refused others.
- names: a quantized value is renamed in the main graph only. In QOperator form a convolution's
  output became ``<name>_quantized`` and a removed Relu's output an alias of its input, and a body
  reading the old name found nothing ("Invalid model with unknown initializers/tensors").

``shield_outer_reads`` makes every such read explicit before quantization: a main-graph
``Identity`` per value read from inside a body, the body reading the Identity's output instead.
The Identity is kept in float (its name is excluded), so every quantizer hands it the float value
under whatever name it now has. ``restore_outer_reads`` removes the Identity nodes afterwards, the
bodies reading that value, and ``sort_graph`` puts every graph back in an order that counts the values a
node's bodies read. The static backend leaves the bodies in float: onnxruntime's QDQ quantizer does
not enter them, and calibration ranges exist for main-graph values only. The dynamic backend, which
needs no ranges, quantizes them (onnxruntime's EnableSubgraph), and keeps them in float when that
fails. ``subgraph_report`` says which, for the backend's report.
"""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass

import onnx
from onnx import helper

from edgeport.errors import QuantizationError
from edgeport.quantize.inputs.calibration import QUANTIZED_OPS
from edgeport.quantize.inputs.graph import iter_nodes, subgraphs

SHIELD_PREFIX = "edgeport_outer_"
# Ops that exist only in a quantized graph: one inside a body means the body was quantized.
_INT8_OPS = QUANTIZED_OPS | {"DynamicQuantizeLSTM"}


def has_subgraphs(graph: onnx.GraphProto) -> bool:
    return any(True for node in graph.node for _ in subgraphs(node))


def _defined(graph: onnx.GraphProto) -> set[str]:
    return (
        {i.name for i in graph.initializer}
        | {i.name for i in graph.sparse_initializer if i.values.name}
        | {i.name for i in graph.input}
        | {o for n in graph.node for o in n.output if o}
    )


def outer_reads(graph: onnx.GraphProto) -> set[str]:
    """Names that ``graph`` (its nested bodies included) reads and does not define: outer-scope values."""
    local = _defined(graph)
    reads: set[str] = set()
    for node in graph.node:
        reads.update(name for name in node.input if name and name not in local)
        for sub in subgraphs(node):
            reads.update(name for name in outer_reads(sub) if name not in local)
    return reads


def node_outer_reads(node: onnx.NodeProto) -> set[str]:
    """The outer-scope values ``node``'s bodies read: its inputs that are not listed."""
    reads: set[str] = set()
    for sub in subgraphs(node):
        reads |= outer_reads(sub)
    return reads


def rename_outer_reads(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Read ``new`` wherever ``graph`` and its nested bodies read the outer-scope value ``old``; a graph
    that defines ``old`` itself (shadowing it) is left alone."""
    if old in _defined(graph):
        return
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        for sub in subgraphs(node):
            rename_outer_reads(sub, old, new)


def rename_reads(node: onnx.NodeProto, old: str, new: str) -> None:
    """``node`` reads ``new`` instead of ``old``: in its listed inputs and inside its bodies."""
    node.input[:] = [new if name == old else name for name in node.input]
    for sub in subgraphs(node):
        rename_outer_reads(sub, old, new)


def sort_graph(graph: onnx.GraphProto) -> bool:
    """Order ``graph``'s nodes (and every body's) so each comes after the producers of what it reads,
    the values its bodies read included; nodes keep their order where they can. Returns whether the
    order changed anywhere. A node that can never be placed (a cycle, a missing value) keeps its place
    after the others, for onnx's checker to name."""
    changed = False
    for node in graph.node:
        for sub in subgraphs(node):
            changed |= sort_graph(sub)
    nodes = list(graph.node)
    producer = {name: index for index, node in enumerate(nodes) for name in node.output if name}
    needs = [
        {producer[name] for name in (*node.input, *node_outer_reads(node)) if name in producer} - {index}
        for index, node in enumerate(nodes)
    ]
    readers: dict[int, list[int]] = {}
    for index, wanted in enumerate(needs):
        for needed in wanted:
            readers.setdefault(needed, []).append(index)
    waiting = [len(wanted) for wanted in needs]
    ready = [index for index, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        index = heapq.heappop(ready)  # the earliest ready node: the original order wherever it is valid
        order.append(index)
        for reader in readers.get(index, []):
            waiting[reader] -= 1
            if waiting[reader] == 0:
                heapq.heappush(ready, reader)
    placed = set(order)
    order += [index for index in range(len(nodes)) if index not in placed]
    if order == list(range(len(nodes))):
        return changed
    del graph.node[:]
    graph.node.extend(nodes[index] for index in order)
    return True


@dataclass(frozen=True)
class Shield:
    """The float ``Identity`` that stands between main-graph ``value`` and the bodies reading it."""

    node: str
    output: str
    value: str


def shield_outer_reads(model: onnx.ModelProto) -> list[Shield]:
    """Give every node output that a body reads an explicit float reader: an ``Identity`` right after its
    producer, read by the bodies instead; in the main graph and in every body whose own nested bodies
    read its values (onnxruntime's EnableSubgraph quantizes bodies with the same quantizer)."""
    taken = {name for node, _ in iter_nodes(model.graph) for name in (node.name, *node.input, *node.output)}
    shields: list[Shield] = []
    _shield_graph(model.graph, taken, shields)
    return shields


def _shield_graph(graph: onnx.GraphProto, taken: set[str], shields: list[Shield]) -> None:
    for node in graph.node:
        for sub in subgraphs(node):
            _shield_graph(sub, taken, shields)
    produced = {name for node in graph.node for name in node.output if name}
    wanted = sorted({name for node in graph.node for name in node_outer_reads(node) if name in produced})
    for value in wanted:
        index = len(shields)
        name, output = f"{SHIELD_PREFIX}{index}", f"{SHIELD_PREFIX}{index}_{value}"
        while name in taken or output in taken:
            name, output = f"_{name}", f"_{output}"
        taken |= {name, output}
        shields.append(Shield(name, output, value))
        for node in graph.node:
            for sub in subgraphs(node):
                rename_outer_reads(sub, value, output)
        position = next(i for i, node in enumerate(graph.node) if value in node.output)
        graph.node.insert(position + 1, helper.make_node("Identity", [value], [output], name=name))


def restore_outer_reads(model: onnx.ModelProto, shields: list[Shield]) -> None:
    """Undo ``shield_outer_reads`` after quantization: the bodies read what each Identity reads now (the
    float value, whatever the quantizer named it), the Identity nodes go, and every graph is sorted
    again (the quantizer's order ignores what bodies read)."""
    _restore_graph(model.graph, {(shield.node, shield.output) for shield in shields})
    sort_graph(model.graph)


def _restore_graph(graph: onnx.GraphProto, ours: set[tuple[str, str]]) -> None:
    for node in [n for n in graph.node if n.op_type == "Identity" and (n.name, n.output[0]) in ours]:
        # what the Identity reads now: the float value, or in QDQ form the pair's dequantized output, which
        # every other reader reads as well (and which may be all that clips a Relu the quantizer folded
        # into the pair: reading the pair's float input instead gave a branch unclipped negatives)
        source, output = node.input[0], node.output[0]
        graph.node.remove(node)
        for other in graph.node:
            rename_reads(other, output, source)
    for node in graph.node:
        for sub in subgraphs(node):
            _restore_graph(sub, ours)


def subgraph_report(model: onnx.ModelProto, outer_values: list[str]) -> dict | None:
    """What happened to the model's control flow, for the backend's report: which nodes carry bodies,
    how many nodes their bodies hold, whether any of those were quantized, and the values computed
    outside a body that it reads (as float tensors; in QDQ form dequantized, as for every other
    reader). None for a model without control flow."""
    carriers = [node for node, depth in iter_nodes(model.graph) if any(True for _ in subgraphs(node))]
    if not carriers:
        return None
    inner = [node for node, depth in iter_nodes(model.graph) if depth > 0]
    quantized = sum(1 for node in inner if node.op_type in _INT8_OPS)
    return {
        "control_flow_nodes": sorted(f"{node.name or '?'} ({node.op_type})" for node in carriers),
        "body_nodes": len(inner),
        "body_int8_nodes": quantized,
        "bodies": "quantized" if quantized else "kept in float",
        "outer_scope_values": outer_values,
    }


def unresolved_outer_reads(graph: onnx.GraphProto, outer: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """(node, value) for every value a body of a node in ``graph`` (at any depth) reads and neither the
    body nor any graph around it defines."""
    defined = outer | _defined(graph)
    missing = []
    for node in graph.node:
        for sub in subgraphs(node):
            inside = defined | _defined(sub)
            owner = node.name or node.op_type
            missing += [(owner, name) for inner in sub.node for name in inner.input if name and name not in inside]
            missing += unresolved_outer_reads(sub, frozenset(defined))
    return list(dict.fromkeys(missing))


def shield_file(path: str | os.PathLike) -> list[Shield]:
    """``shield_outer_reads`` on the model file at ``path``, rewritten only when it has control flow."""
    if not has_subgraphs(onnx.load(str(path), load_external_data=False).graph):
        return []
    model = onnx.load(str(path))
    shields = shield_outer_reads(model)
    if shields:
        onnx.save(model, str(path))
    return shields


def finish_file(path: str | os.PathLike, shields: list[Shield], where: str) -> dict | None:
    """After quantization of the model at ``path``: the shields removed, every graph in an order that counts
    what bodies read, every value a body reads still there (else one line naming it); the report entry
    (``subgraph_report``), None for a model without control flow."""
    if not has_subgraphs(onnx.load(str(path), load_external_data=False).graph):
        return None
    model = onnx.load(str(path))
    restore_outer_reads(model, shields)
    missing = unresolved_outer_reads(model.graph)
    if missing:
        node, value = missing[0]
        raise QuantizationError(
            f"{where}: quantization lost {value!r}, which the body of node {node!r} reads "
            f"({len(missing)} such value(s)); keep that node's producers in float with --exclude-node"
        )
    onnx.save(model, str(path))
    return subgraph_report(model, sorted(shield.value for shield in shields))


def keep_shared_activations(path: str | os.PathLike) -> list[str]:
    """Names of the Relu/Clip nodes whose input something else reads too (another node, a body, a graph
    output), naming unnamed ones in the file at ``path``: to be kept in float in QOperator form.

    onnxruntime's QOperator quantizer drops every Relu/Clip after a quantized node and lets its output
    share the input's quantized tensor, which clips only when the input's range was narrowed to the
    activation's, and it narrows it only for an input with a single reader. With a second reader
    (a residual, a body reading the pre-activation value), the Relu vanished and its readers got
    negative values (measured: a branch reading a convolution's output beside its Relu)."""
    model = onnx.load(str(path))
    graph = model.graph
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in {*node.input, *node_outer_reads(node)}:
            readers[name] = readers.get(name, 0) + 1
    for output in graph.output:
        readers[output.name] = readers.get(output.name, 0) + 1
    taken = {node.name for node, _ in iter_nodes(graph)}
    kept, renamed = [], False
    for index, node in enumerate(graph.node):
        if node.op_type not in ("Relu", "Clip") or not node.input or readers.get(node.input[0], 0) < 2:
            continue
        if not node.name:
            node.name = f"edgeport_activation_{index}"
            while node.name in taken:
                node.name = f"_{node.name}"
            taken.add(node.name)
            renamed = True
        kept.append(node.name)
    if renamed:
        onnx.save(model, str(path))
    return kept
