"""Which outputs are sequences of class scores: the graph, then the values.

A CTC recognizer's output is judged by its greedily decoded sequence (``fidelity.sequence_agreement``), but
the shape alone cannot tell [samples, T, C] scores from a [samples, tokens, hidden] hidden state.
``sequence_outputs`` reads the candidates off the graph (a Softmax / LogSoftmax or a linear head, followed
through the ops that keep the class axis); ``sequence_heads`` keeps those whose fp32 values have a CTC
blank (``fidelity.ctc_blank``).

A module of its own: walking an ONNX graph is a job apart from the numpy metrics of ``fidelity.py``; it
uses them, they do not use it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import numpy_helper

from edgeport.quantize.guard.fidelity import ctc_blank, is_sequence

SEQUENCE_SCORES = {"Softmax", "LogSoftmax"}
LINEAR_HEADS = {"MatMul", "Gemm", "Conv"}  # with a constant weight: a linear head's raw logits
# Ops between the scores and the graph output that keep "class scores per step" meaning.
SEQUENCE_PASS_THROUGH = {"Transpose", "Identity", "Reshape", "Squeeze", "Unsqueeze", "Cast"}
RANK_KEEPING = {"Transpose", "Identity", "Cast"}


def _default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _ranks(model: onnx.ModelProto) -> dict[str, int]:
    """The rank of every tensor whose type declares a shape; ONNX shape inference fills in the rest
    (on the graph alone: external data is not needed, and a graph it cannot infer keeps what it has)."""

    def collect(graph: onnx.GraphProto) -> dict[str, int]:
        found = {}
        for value in (*graph.input, *graph.value_info, *graph.output):
            tensor = value.type.tensor_type
            if value.type.HasField("tensor_type") and tensor.HasField("shape"):
                found[value.name] = len(tensor.shape.dim)
        for init in graph.initializer:
            found[init.name] = len(init.dims)
        return found

    ranks = collect(model.graph)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # onnx raises its C++ errors as plain exceptions; keep the declared ranks
        return ranks
    return {**collect(inferred.graph), **ranks}


def _constant_dims(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """The dims of every constant (initializer or Constant node output): a head's weights."""
    dims = {init.name: tuple(init.dims) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    dims[node.output[0]] = tuple(attr.t.dims)
    return dims


def _small_constants(model: onnx.ModelProto, wanted: set[str]) -> dict[str, np.ndarray]:
    """The values of the ``wanted`` constants (shapes, axes: small, never a weight)."""
    values = {}
    for init in model.graph.initializer:
        if init.name in wanted and init.data_location != onnx.TensorProto.EXTERNAL:
            values[init.name] = numpy_helper.to_array(init)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] in wanted:
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def _attr(node: onnx.NodeProto, name: str, default):
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


class _Graph:
    """What the sequence-head walk reads off a graph: producers, constants, ranks (inferred once, lazily)."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.opset = _default_opset(model)
        self.producers = {out: node for node in model.graph.node for out in node.output}
        self.weights = _constant_dims(model)
        shaping = ("Reshape", "Squeeze", "Unsqueeze")
        wanted = {n.input[1] for n in model.graph.node if n.op_type in shaping and len(n.input) > 1}
        self.values = _small_constants(model, {name for name in wanted if name})
        self._ranks: dict[str, int] | None = None

    def rank(self, name: str) -> int | None:
        if self._ranks is None:
            self._ranks = _ranks(self.model)
        return self._ranks.get(name)

    def axes(self, node: onnx.NodeProto) -> list[int] | None:
        """A Squeeze/Unsqueeze's axes: its attribute (before opset 13), else its constant input."""
        given = _attr(node, "axes", None)
        if given is not None:
            return [int(a) for a in given]
        if len(node.input) > 1 and node.input[1] in self.values:
            return [int(a) for a in np.asarray(self.values[node.input[1]]).ravel()]
        return None


# The class axis is tracked as a negative offset from the last axis, with the rank where known: (offset,
# rank, classes), classes being the head's class count when its weight says it.
_Track = tuple[int, int | None, int | None]


def _linear_head(node: onnx.NodeProto, graph: _Graph) -> _Track | None:
    """A MatMul / Gemm / Conv with a constant weight, or an Add of a constant to one: a head's raw logits."""
    if node.op_type == "Add":
        if len(node.input) != 2:
            return None
        for constant, other in ((node.input[0], node.input[1]), (node.input[1], node.input[0])):
            inner = graph.producers.get(other)
            if constant in graph.weights and inner is not None and inner.op_type in LINEAR_HEADS:
                return _linear_head(inner, graph)
        return None
    weight = graph.weights.get(node.input[1]) if len(node.input) > 1 else None
    if not weight:
        return None
    if node.op_type == "MatMul":
        return -1, graph.rank(node.output[0]), weight[-1]
    if node.op_type == "Gemm" and len(weight) == 2:
        return -1, 2, weight[0] if _attr(node, "transB", 0) else weight[1]
    if node.op_type == "Conv":
        return 1 - len(weight), len(weight), weight[0]
    return None


def _scores(node: onnx.NodeProto, graph: _Graph, rank_hint: int | None) -> _Track | None:
    """Softmax / LogSoftmax: the class axis is its axis (before opset 13 only the last, as it flattens).
    Its rank: its input's or output's, else ``rank_hint`` (the graph output's, when only rank-keeping ops
    follow: shape inference often stops short of a converter's last nodes, whose output is declared)."""
    rank = graph.rank(node.input[0]) or graph.rank(node.output[0]) or rank_hint
    axis = int(_attr(node, "axis", 1 if graph.opset < 13 else -1))
    if axis >= 0:
        if rank is None:
            return None
        axis -= rank
    if (rank is not None and axis < -rank) or (graph.opset < 13 and axis != -1):
        return None
    return axis, rank, None


def _squeeze(offset: int, rank: int | None, axes: list[int] | None) -> tuple[int, int | None] | None:
    if axes is None:  # every axis of length 1: the class axis (C > 1) stays, and stays last if last
        return (offset, None) if offset == -1 else None
    if rank is None and any(a >= 0 for a in axes):
        return None
    removed = [a - rank if a >= 0 and rank is not None else a for a in axes]
    if offset in removed:
        return None
    return offset + sum(1 for a in removed if a > offset), None if rank is None else rank - len(axes)


def _unsqueeze(offset: int, rank: int | None, axes: list[int] | None) -> tuple[int, int | None] | None:
    if axes is None:
        return None
    out_rank = None if rank is None else rank + len(axes)
    if out_rank is None and any(a >= 0 for a in axes):
        return None
    inserted = {a - out_rank if a >= 0 and out_rank is not None else a for a in axes}
    position, kept = -1, 0
    while True:  # the offset-th kept axis from the end, in the output
        if position not in inserted:
            kept += 1
            if kept == -offset:
                return position, out_rank
        position -= 1


def _follow(chain: list[onnx.NodeProto], track: _Track, graph: _Graph) -> _Track | None:
    """The class axis through the pass-through ops, in graph order; None when a step loses it."""
    offset, rank, classes = track
    for node in chain:
        if node.op_type == "Transpose":
            perm = _attr(node, "perm", None)
            if perm is None:
                rank = rank if rank is not None else graph.rank(node.input[0])
                if rank is None:
                    return None
                perm = list(range(rank - 1, -1, -1))
            rank = len(perm)
            if offset < -rank:
                return None
            offset = [int(p) for p in perm].index(rank + offset) - rank
        elif node.op_type == "Reshape":
            # [N * T, C] -> [N, T, C] or [T, N, C] -> [T, N, C]: the meaning survives when the class axis is last
            # before and after (a split of the last axis, [.., A * C] -> [.., A, C], is a detector's, not this)
            shape = graph.values.get(node.input[1]) if len(node.input) > 1 else None
            if offset != -1:
                return None
            if shape is not None:
                last = int(np.asarray(shape).ravel()[-1]) if np.asarray(shape).size else 0
                if classes is not None and last > 0 and last != classes:
                    return None
                rank = int(np.asarray(shape).size)
            else:
                rank = graph.rank(node.output[0])
        elif node.op_type == "Squeeze":
            moved = _squeeze(offset, rank if rank is not None else graph.rank(node.input[0]), graph.axes(node))
            if moved is None:
                return None
            offset, rank = moved
        elif node.op_type == "Unsqueeze":
            moved = _unsqueeze(offset, rank if rank is not None else graph.rank(node.input[0]), graph.axes(node))
            if moved is None:
                return None
            offset, rank = moved
        # Identity, Cast: nothing moves
    return offset, rank, classes


def _sequence_candidates(model: onnx.ModelProto) -> dict[str, int | None]:
    """Graph outputs that may be sequences of class scores, with their class count where the head's
    weight says it (see ``sequence_outputs``)."""
    graph = _Graph(model)
    found: dict[str, int | None] = {}
    for output in model.graph.output:
        chain: list[onnx.NodeProto] = []
        node = graph.producers.get(output.name)
        while node is not None and node.op_type in SEQUENCE_PASS_THROUGH and node.input:
            chain.insert(0, node)
            node = graph.producers.get(node.input[0])
        if node is None:
            continue
        if node.op_type in SEQUENCE_SCORES:
            keeps_rank = all(n.op_type in RANK_KEEPING for n in chain)
            start = _scores(node, graph, graph.rank(output.name) if keeps_rank else None)
        elif node.op_type in LINEAR_HEADS or node.op_type == "Add":
            start = _linear_head(node, graph)
        else:
            continue
        track = _follow(chain, start, graph) if start is not None else None
        if track is None:
            continue
        offset, rank, classes = track
        rank = rank if rank is not None else graph.rank(output.name)
        if offset == -1 and rank in (None, 3):
            found[output.name] = classes
    return found


def sequence_outputs(model: onnx.ModelProto) -> set[str]:
    """Names of the graph outputs that may be sequences of class scores, [samples, T, C] once samples-first
    (a time-major [T, samples, C] output too): rank 3 (where known), the classes on the last axis, produced
    directly or through Transpose / Reshape / Identity / Squeeze / Unsqueeze / Cast by

    - a Softmax or LogSoftmax over the class axis, or
    - a linear head's raw logits: a MatMul, Gemm or Conv with a constant weight, or an Add of a constant
      to one (its bias). A reshape that splits the last axis ([.., A * C] -> [.., A, C]) loses it.

    The graph alone cannot tell a head from a projected hidden state: ``sequence_heads`` (and ``fidelity``)
    keep only those whose fp32 values have a CTC blank (``ctc_blank``). Never one: a LayerNormalization's
    output (nor a decomposed one's Add(Mul(..), beta)), a feature map ([N, C, H, W]), a per-pixel
    probability map (Sigmoid), a classifier's [N, classes], a Softmax over an image's channels.
    Outputs of the top-level graph only; the graph is read without its external data."""
    return set(_sequence_candidates(model))


def sequence_heads(model: onnx.ModelProto, outputs: Mapping[str, np.ndarray]) -> dict[str, int]:
    """The sequence outputs of ``model`` (``sequence_outputs``) whose fp32 ``outputs`` (samples-first, by
    name) are [samples, T, C] with the head's class count and a CTC blank: name -> the blank (0 or C - 1),
    the class greedy decoding drops."""
    found = {}
    for name, classes in _sequence_candidates(model).items():
        value = outputs.get(name)
        if value is None or not is_sequence(value) or (classes is not None and value.shape[-1] != classes):
            continue
        blank = ctc_blank(value)
        if blank is not None:
            found[name] = blank
    return found
