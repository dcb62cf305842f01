"""Which axis of each model output holds the samples: found by running the model, never by dim names.

A graph's declared output shapes cannot be trusted for this: a CTC head exported time-major gives
[T, N, C]; paddle2onnx names an output's batch dim ``p2o.DynamicDimension.3`` while the input's is
``p2o.DynamicDimension.0``; a graph may declare ``[1, seqlen]`` and return a batch of any size. So the
model is run, and the shapes it returns say where the samples are:

- batch-first inputs with an open batch axis: one run on the first sample and one on the first two
  samples; the sample axis of an output is the one whose length went 1 -> 2 while every other axis
  kept its length. No such axis (a per-batch constant, an output reduced over the batch), or more than
  one: ``None``, the output is not per sample. A model that refuses the batch of two (an open batch
  axis that a Reshape in the graph fixes to 1) is run one sample at a time, as a fixed batch of 1.
- a fixed batch of F (batch-first): one run on the first F samples; the sample axis is axis 0 when its
  length is F, else the one axis of length F. With F = 1 every run is one sample, so every output is
  per sample: axis 0 when it has length 1, else the first axis of length 1, else (no such axis: a
  rank-0 or squeezed output) the runs are stacked on a new front axis, given as 0. With F > 1 and no
  axis of length F, or several: ``None``.
- per-sample feeds (data/feeds.py): every run is one complete input, the runs are stacked on a new
  front axis (``join_outputs``), given as 0.

``run_all_outputs`` (run.py) joins every output along its sample axis and moves it to the front, so its
outputs are always samples first; an output whose axis is ``None`` is joined on its axis 0 as it comes
(stacked when it is rank 0) and named in ``not_per_sample(outputs)``, so that per-sample metrics can
skip it. The probe is cached per session: two extra runs at most, once.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeport.data.feeds import (
    PER_SAMPLE,
    Layout,
    feed_layout,
    first_feed,
    join_outputs,
    pad_feed,
    sample_count,
    session_shapes,
)
from edgeport.errors import QuantizationError

Axes = dict[str, int | None]


def fixed_batch(session: Any) -> int | None:
    """The batch size the model's first input fixes, or None when its batch axis is dynamic."""
    first = session.get_inputs()[0].shape
    return first[0] if first and isinstance(first[0], int) and first[0] > 0 else None


@dataclass(frozen=True)
class OutputPlan:
    """How a session is run on inputs of one layout, and where each output's samples are.

    ``per_run``: samples in one run: the fixed batch, 1 (per-sample feeds, a single sample, or a model
    that refused a batch of two), or None (any: the batch axis is open). ``axes``: by output name, the
    axis of one run's value that holds the samples (see the module's docstring), None where none does.
    """

    layout: Layout
    per_run: int | None
    axes: Axes

    @property
    def one_per_run(self) -> bool:
        return self.per_run == 1


class SampleOutputs(dict[str, np.ndarray]):
    """Outputs by name, samples first, with the names of those whose values are not per sample."""

    not_per_sample: frozenset[str]

    def __init__(self, values: Mapping[str, np.ndarray], not_per_sample: frozenset[str] = frozenset()) -> None:
        super().__init__(values)
        self.not_per_sample = not_per_sample


def not_per_sample(outputs: Mapping[str, np.ndarray]) -> frozenset[str]:
    """The outputs of ``run_all_outputs`` that hold no axis of samples (a per-batch constant, an output
    reduced over the batch): their first axis does not index samples, so per-sample metrics (cosine per
    sample, top-1, sequences) do not apply to them. Empty for a plain dict."""
    return getattr(outputs, "not_per_sample", frozenset())


_PLANS: weakref.WeakKeyDictionary[Any, dict[tuple, OutputPlan]] = weakref.WeakKeyDictionary()


def output_plan(session: Any, inputs: Mapping[str, np.ndarray], source: str = "the inputs") -> OutputPlan:
    """The plan for running ``session`` on ``inputs`` (probed once per session, layout and whether there
    are two samples to probe with); raises the layout's one-line error for inputs that fit neither."""
    layout = feed_layout(session_shapes(session), inputs, source)
    key = (layout, min(sample_count(inputs), 2))
    try:
        cached = _PLANS.setdefault(session, {})
    except TypeError:  # a session type without weak references: probed on every call
        cached = {}
    if key not in cached:
        cached[key] = _probe(session, inputs, layout)
    return cached[key]


def sample_axes(session: Any, inputs: Mapping[str, np.ndarray], source: str = "the inputs") -> Axes:
    """By output name, the axis of the model's output that holds the samples; None when no axis does
    (the output is not per sample). Found by running the model (see the module's docstring)."""
    return dict(output_plan(session, inputs, source).axes)


def _run(session: Any, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(value) for value in session.run(None, dict(feed))]


def _names(session: Any) -> list[str]:
    return [o.name for o in session.get_outputs()]


def _probe(session: Any, inputs: Mapping[str, np.ndarray], layout: Layout) -> OutputPlan:
    names = _names(session)
    if layout == PER_SAMPLE:
        return OutputPlan(layout, 1, dict.fromkeys(names, 0))
    fixed = fixed_batch(session)
    if fixed is None and sample_count(inputs) >= 2:
        one = _run(session, first_feed(inputs, layout))
        try:
            two = _run(session, {name: a[:2] for name, a in inputs.items()})
        except Exception:  # an open batch axis that the graph fixes to 1 (onnxruntime's own error types)
            return OutputPlan(layout, 1, {n: _axis_of_length(v.shape, 1) for n, v in zip(names, one, strict=True)})
        axes = {n: grown_axis(a.shape, b.shape) for n, a, b in zip(names, one, two, strict=True)}
        return OutputPlan(layout, None, axes)
    size = fixed or 1  # a fixed batch, or a single sample to run
    feed = pad_feed({name: a[:size] for name, a in inputs.items()}, size)
    first = _run(session, feed)
    return OutputPlan(layout, size, {n: _axis_of_length(v.shape, size) for n, v in zip(names, first, strict=True)})


def grown_axis(one: Sequence[int], two: Sequence[int]) -> int | None:
    """The axis whose length went 1 -> 2 from a run on one sample to a run on two, every other axis
    unchanged; None when there is no such axis, or more than one."""
    if len(one) != len(two):
        return None
    changed = [axis for axis, (a, b) in enumerate(zip(one, two, strict=True)) if a != b]
    if len(changed) != 1 or (one[changed[0]], two[changed[0]]) != (1, 2):
        return None
    return changed[0]


def _axis_of_length(shape: Sequence[int], size: int) -> int | None:
    """The sample axis of a run's output on exactly ``size`` samples: axis 0 when its length is ``size``,
    else the only axis of that length. One sample a run: the first axis of length 1, else 0 (the runs
    are stacked on a new front axis): every run is one sample, so the output is per sample either way."""
    if shape and shape[0] == size:
        return 0
    matching = [axis for axis, length in enumerate(shape) if length == size]
    if size == 1:
        return matching[0] if matching else 0
    return matching[0] if len(matching) == 1 else None


def join_samples(
    name: str, parts: Sequence[np.ndarray], plan: OutputPlan, source: str = "the inputs", dtype: Any = np.float64
) -> np.ndarray:
    """The runs' values of output ``name``, joined into one array of ``dtype`` with the samples on axis 0.

    Per-sample feeds are stacked (``feeds.join_outputs``); one sample a run is joined along its length-1
    sample axis, or stacked when it has none; otherwise the parts are concatenated along the output's
    sample axis, moved to the front. No sample axis (not per sample): concatenated on axis 0 as they
    come (stacked when rank 0; one run's value as it is). Values whose sizes change from run to run on
    another axis (NonZero, NMS) cannot be joined: one line naming the output."""
    if plan.layout == PER_SAMPLE:
        return join_outputs(parts, plan.layout, dtype)
    axis = plan.axes.get(name)
    ndim = parts[0].ndim
    if axis is None:
        if len(parts) == 1:  # as it comes: a rank-0 value stays rank 0
            return np.asarray(parts[0], dtype=dtype)
        axis, stack = 0, ndim == 0
    else:
        stack = plan.one_per_run and not (axis < ndim and parts[0].shape[axis] == 1)
    try:
        if stack:
            return np.stack(parts, dtype=dtype, casting="unsafe")
        moved = [np.moveaxis(part, axis, 0) for part in parts] if axis else list(parts)
        # one allocation, of ``dtype`` and C-ordered: no copy of the whole result in the model's type first
        joined = np.empty((sum(len(m) for m in moved), *moved[0].shape[1:]), dtype=dtype)
        return np.concatenate(moved, axis=0, out=joined, casting="unsafe")
    except ValueError as exc:  # numpy: the parts' shapes do not fit together
        seen = ", ".join(str(p.shape) for p in parts[:3])
        raise QuantizationError(
            f"{source}: output {name!r} changes shape from run to run ({seen}); its values cannot be joined "
            "sample by sample to compare the int8 model with fp32"
        ) from exc
