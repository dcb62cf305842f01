"""The two layouts of model-input arrays (.npz calibration, validation and benchmark files), and how each
is cut into what one ``session.run`` is fed.

batch-first: every array has the model input's rank and its first axis is the model's batch axis, so a
chunk ``a[start:end]`` is one run and the outputs concatenate.
per-sample: every array has one axis more; ``a[i]`` is one complete model input (the model's own batch
axis, if any, inside it), so each sample is one run and the outputs stack. The only form for a model
whose inputs are not batch-first: a recurrent state [layers, batch, hidden], a rank-0 sample rate.

Either way the first axis of the arrays, and of the outputs, indexes samples, so everything downstream
(hold-back split, labels, fidelity) treats both alike. The layout follows from the ranks alone, at each
site, from the model or session at hand: no flag to pass along.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import onnx

from edgeport.errors import EdgeportError, QuantizationError

Layout = Literal["batch-first", "per-sample"]
BATCH_FIRST: Layout = "batch-first"
PER_SAMPLE: Layout = "per-sample"

Shape = Sequence[Any]  # ints for fixed dims, names (or None) for symbolic ones, as onnx and onnxruntime give them
Feeds = dict[str, np.ndarray]


def show_shape(shape: Shape) -> str:
    """``[2, batch, 128]``: symbolic dims by name, unknown ones as ``?``."""
    return "[" + ", ".join(str(d) if isinstance(d, int) and d > 0 else (str(d) if d else "?") for d in shape) + "]"


def _forms(rank: int) -> str:
    if rank == 0:  # a scalar has no batch axis to put samples on
        return "a rank-0 input is fed per sample only: give a 1-D array, one value per sample"
    return (
        f"give batch-first arrays (rank {rank}, samples on the model's batch axis) or per-sample feeds "
        f"(rank {rank + 1}, one complete input per slice along the first axis)"
    )


def _layout_of(array: np.ndarray, shape: Shape) -> Layout | None:
    if array.ndim == len(shape) + 1:
        return PER_SAMPLE
    if array.ndim == len(shape) and shape:  # rank 0 has no batch axis: never batch-first
        return BATCH_FIRST
    return None


def feed_layout(
    shapes: Mapping[str, Shape],
    arrays: Mapping[str, np.ndarray],
    source: str,
    what: str = "input",
    error: type[EdgeportError] = QuantizationError,
) -> Layout:
    """The layout of ``arrays`` for a model whose inputs have ``shapes``; one line naming ``source`` and
    the input when an array fits neither, or the arrays mix the two. ``what`` names the inputs
    ("calibration input"). Inputs without an array are left to the caller's name check."""
    found = {name: _layout_of(arrays[name], shape) for name, shape in shapes.items() if name in arrays}
    odd = next((name for name, layout in found.items() if layout is None), None)
    if odd is not None:
        shape = shapes[odd]
        raise error(
            f"{source}: {what} {odd!r} has shape {arrays[odd].shape}; the model expects rank {len(shape)} "
            f"{show_shape(shape)}: {_forms(len(shape))}"
        )
    kinds = [layout for layout in found.values() if layout is not None]  # every one, past the check above
    if not kinds or all(k == kinds[0] for k in kinds):
        return kinds[0] if kinds else BATCH_FIRST
    raise error(_mix_message(shapes, arrays, found, source, what))


def _mix_message(
    shapes: Mapping[str, Shape], arrays: Mapping[str, np.ndarray], found: dict, source: str, what: str
) -> str:
    """Name an input of the minority layout (on a tie, one that differs from the first input); with a
    rank-0 input only per-sample feeds can work, so name a batch-first one then."""
    kinds = [layout for layout in found.values() if layout is not None]  # every one, past the check above
    scalar = next((n for n in found if not len(shapes[n])), None)
    if scalar is not None:
        minority: Layout = BATCH_FIRST
    else:
        minority = min((BATCH_FIRST, PER_SAMPLE), key=lambda k: (kinds.count(k), k == kinds[0]))
    name = next(n for n, k in found.items() if k == minority)
    other = next(n for n, k in found.items() if k != minority)
    rank = len(shapes[name])
    forms = (
        f"rank-0 {scalar!r} is fed per sample only, so give per-sample feeds for every input (rank {rank + 1} "
        "here, one complete input per slice along the first axis)"
        if scalar is not None
        else _forms(rank)
    )
    return (
        f"{source}: {what} {name!r} has shape {arrays[name].shape} ({minority} for the model's rank {rank} "
        f"{show_shape(shapes[name])}) but {other!r} has shape {arrays[other].shape} ({found[other]}); use one "
        f"layout for every input: {forms}"
    )


def model_inputs(model: onnx.ModelProto) -> dict[str, tuple[tuple, np.dtype]]:
    """Graph inputs that are not initializers: name -> (shape with symbolic dims as strings, numpy dtype)."""
    from onnx import helper  # onnx only where a model is read: the benchmark runner imports this module

    initializers = {i.name for i in model.graph.initializer}
    found = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else d.dim_param for d in tensor.shape.dim)
        found[value.name] = (dims, np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type)))
    return found


def session_shapes(session: Any) -> dict[str, Shape]:
    """An onnxruntime session's inputs by name: their shapes."""
    return {arg.name: arg.shape for arg in session.get_inputs()}


def model_layout(onnx_path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> Layout:
    """The layout of ``arrays`` for the ONNX model at ``onnx_path`` (its graph inputs)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    shapes = {name: shape for name, (shape, _) in model_inputs(model).items()}
    return feed_layout(shapes, arrays, str(onnx_path))


def sample_count(arrays: Mapping[str, np.ndarray]) -> int:
    """Samples in ``arrays``: the length of their first axis in either layout."""
    return len(next(iter(arrays.values())))


def sample_feed(arrays: Mapping[str, np.ndarray], index: int) -> Feeds:
    """Sample ``index`` of per-sample arrays: one complete model input. ``a[i, ...]`` keeps a 0-d array for
    a rank-0 input (``a[i]`` would be a numpy scalar), made C-contiguous only where it is not already."""
    return {name: np.asarray(a[index, ...], order="C") for name, a in arrays.items()}


def iter_feeds(arrays: Mapping[str, np.ndarray], layout: Layout, step: int) -> Iterator[Feeds]:
    """What each run is fed, in order: chunks of ``step`` samples (batch-first), or one sample each."""
    count = sample_count(arrays)
    if layout == PER_SAMPLE:
        for index in range(count):
            yield sample_feed(arrays, index)
        return
    for start in range(0, count, step):
        yield {name: a[start : start + step] for name, a in arrays.items()}


def join_outputs(parts: Sequence[np.ndarray], layout: Layout, dtype: Any = None) -> np.ndarray:
    """The runs' values of one output, samples on the first axis: concatenated chunks, or stacked samples,
    converted to ``dtype`` (None: as they are) in the one copy the join makes. A single chunk is returned
    as it is: an exposed rank-0 tensor (sensitivity.py) cannot be concatenated. (Batch-first outputs whose
    samples are on another axis: ``quantize/inputs/output_axes.py``.)"""
    if layout == PER_SAMPLE:
        shapes = {np.shape(part) for part in parts}
        if len(shapes) > 1:  # NonZero, NMS: outputs whose size depends on the sample cannot be stacked
            raise QuantizationError(
                f"an output's shape changes from sample to sample ({', '.join(map(str, sorted(shapes)[:3]))}); "
                "per-sample feeds need outputs of one shape to compare the int8 model with fp32"
            )
        return np.stack(parts, dtype=dtype, casting="unsafe")
    if len(parts) == 1:
        return np.asarray(parts[0], dtype=dtype)
    return np.concatenate(parts, dtype=dtype, casting="unsafe")


def pad_feed(feed: Mapping[str, np.ndarray], size: int) -> Feeds:
    """A batch-first chunk filled up to ``size`` samples with repeats of its last sample (a model with a
    fixed batch size); a full chunk is returned as it is."""
    real = sample_count(feed)
    if real >= size:
        return dict(feed)
    return {name: np.concatenate([a, np.repeat(a[-1:], size - real, axis=0)]) for name, a in feed.items()}


def first_feed(arrays: Mapping[str, np.ndarray], layout: Layout) -> Feeds:
    """What one run on the first sample is fed: a batch of 1 (batch-first), or the first complete input."""
    return next(iter_feeds(arrays, layout, 1))


def feed_batch(shapes: Mapping[str, Shape], feed: Mapping[str, np.ndarray]) -> int:
    """The batch size of one per-sample feed, for the record: the size of the first input whose leading
    axis the model leaves open, else the leading size of the first input that has an axis (a model
    with a fixed batch), else 1 (rank-0 inputs only)."""
    for name, shape in shapes.items():
        if shape and not (isinstance(shape[0], int) and shape[0] > 0) and name in feed:
            return int(feed[name].shape[0])
    ranked = [a for a in feed.values() if a.ndim]
    return int(ranked[0].shape[0]) if ranked else 1
