"""An onnxruntime session to measure, and what to feed it: the provider (never a silent fallback), the
session options shared with the device runner, and inputs given (checked against the model's signature)
or synthesised from it."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.benchmarks.openvino_runtime import OpenVinoSession
from edgeport.benchmarks.records import AUTO_ORDER, PROVIDERS, BenchSettings, RuntimeChoice
from edgeport.benchmarks.remote_runner import session_options
from edgeport.core.bench_defaults import MAX_SYNTHETIC_INPUT_BYTES
from edgeport.errors import BenchmarkError

Feeds = dict[str, np.ndarray]
Shapes = dict[str, tuple[int, ...]]

# onnxruntime input type -> numpy dtype of the arrays fed to it
_DTYPES: dict[str, type[np.generic]] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def resolve_provider(name: str) -> str:
    """The onnxruntime provider for ``name``; refuses one this machine does not have (no silent fallback)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if name == "auto":
        return next(PROVIDERS[p] for p in AUTO_ORDER if PROVIDERS[p] in available)
    if PROVIDERS[name] not in available:
        have = ", ".join(k for k, v in PROVIDERS.items() if v in available)
        raise BenchmarkError(
            f"provider {name!r} ({PROVIDERS[name]}) is not available in this onnxruntime; available here: {have}"
        )
    return PROVIDERS[name]


def create_session(path: str | os.PathLike[str], settings: BenchSettings, runtime: RuntimeChoice | None = None) -> Any:
    """A session of ``runtime`` (default: the settings'): onnxruntime with the settings' provider, or
    OpenVINO on the CPU (benchmarks/openvino_runtime.py), both answering ``run`` and ``get_inputs``."""
    if not Path(path).is_file():
        raise BenchmarkError(f"{path}: model file not found")
    runtime = runtime or settings.runtime
    if runtime.name == "openvino":
        return OpenVinoSession(path, settings.threads, runtime.precision)
    import onnxruntime as ort

    provider = resolve_provider(settings.provider)
    options = session_options(settings.threads, settings.optimization_level)
    try:
        return ort.InferenceSession(str(path), options, providers=[provider])
    except Exception as exc:  # ORT raises its own exception types for unreadable or invalid models
        raise BenchmarkError(f"{path}: onnxruntime cannot load the model ({exc})") from exc


def _fits(model_dims: Any, dims: Any) -> bool:
    """Every fixed (positive integer) dimension of the model equals the given one."""
    return not any(isinstance(d, int) and d > 0 and d != s for d, s in zip(model_dims, dims, strict=True))


# A --shape's first axis written `N`: the batch axis, filled with each --batch value.
BATCH_AXIS = -1


def _is_fixed(dim: Any) -> bool:
    return isinstance(dim, int) and dim >= 0


def _show(shape: Any) -> str:
    return "x".join(map(str, shape))


def _given_shape(arg: Any, batch: int, shape: list[int]) -> list[int]:
    """A --shape, used exactly as given: it must fit the model's fixed axes, and where the model's first
    axis is the (dynamic) batch axis, agree with ``batch`` (benchmarks/job.py derives the batch from the
    shapes when --batch is not given, so only an explicit, different --batch disagrees). A first axis
    written ``N`` (BATCH_AXIS) is ``batch``."""
    if shape and shape[0] == BATCH_AXIS:
        shape = [batch, *shape[1:]]
    if len(shape) != len(arg.shape) or not _fits(arg.shape, shape):
        raise BenchmarkError(f"--shape {arg.name}={_show(shape)} does not fit the model's shape {list(arg.shape)}")
    if arg.shape and not _is_fixed(arg.shape[0]) and shape[0] != batch:
        raise BenchmarkError(
            f"--shape {arg.name}={_show(shape)} has batch {shape[0]} but --batch is {batch}: a --shape is taken "
            "as given, so give the same batch in both, leave --batch out, or write its batch axis as N "
            f"({arg.name}=N{_show(shape[1:]) and 'x' + _show(shape[1:])}) to take each --batch"
        )
    return shape


def _synthetic_shape(arg: Any, batch: int, shapes: Shapes) -> list[int]:
    zero = next((axis for axis, dim in enumerate(arg.shape) if isinstance(dim, int) and dim == 0), None)
    if zero is not None:  # not a dynamic axis: the model itself says this input holds nothing
        raise BenchmarkError(
            f"input {arg.name!r} has a fixed zero-sized axis {zero} (model shape {list(arg.shape)}): "
            "an empty input cannot be measured"
        )
    if arg.name in shapes:
        return _given_shape(arg, batch, list(shapes[arg.name]))
    shape = []
    for axis, dim in enumerate(arg.shape):
        if _is_fixed(dim):
            shape.append(dim)
        elif axis == 0:
            shape.append(batch)
        else:
            raise BenchmarkError(
                f"input {arg.name!r} has a dynamic axis {axis} ({dim!r}); give --shape {arg.name}=... or real inputs"
            )
    return shape


def check_synthetic_size(name: str, shape: list[int], dtype: type[np.generic] | np.dtype, total: int = 0) -> int:
    """``total`` plus the bytes of this input, refused above MAX_SYNTHETIC_INPUT_BYTES before numpy is asked."""
    size = math.prod(shape) * np.dtype(dtype).itemsize
    if total + size > MAX_SYNTHETIC_INPUT_BYTES:
        raise BenchmarkError(
            f"input {name!r} of shape {_show(shape)} ({np.dtype(dtype)}) would take {size / 1024**3:.1f} GiB; "
            f"synthetic inputs are limited to {MAX_SYNTHETIC_INPUT_BYTES / 1024**3:.0f} GiB per model: "
            "use a smaller --batch or --shape"
        )
    return total + size


def synthesize_inputs(session: Any, batch: int, seed: int, shapes: Shapes | None = None) -> Feeds:
    """Random inputs matching the model's signature; symbolic batch axes take ``batch``, other
    dynamic axes come from ``shapes`` (name -> full shape, used as given). Their size is checked
    against MAX_SYNTHETIC_INPUT_BYTES before anything is allocated."""
    rng = np.random.default_rng(seed)
    shapes = shapes or {}
    names = {arg.name for arg in session.get_inputs()}
    unknown = sorted(set(shapes) - names)
    if unknown:
        raise BenchmarkError(f"--shape names {', '.join(unknown)} are not model inputs ({', '.join(sorted(names))})")
    planned, total = [], 0
    for arg in session.get_inputs():
        if arg.type not in _DTYPES:
            raise BenchmarkError(f"input {arg.name!r} has type {arg.type}, which cannot be synthesised")
        shape, dtype = _synthetic_shape(arg, batch, shapes), _DTYPES[arg.type]
        total = check_synthetic_size(arg.name, shape, dtype, total)
        planned.append((arg.name, shape, dtype))
    feeds: Feeds = {}
    for name, shape, dtype in planned:
        if np.issubdtype(dtype, np.floating):
            feeds[name] = rng.standard_normal(shape).astype(dtype)
        elif dtype is np.bool_:
            feeds[name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[name] = rng.integers(0, 100, shape).astype(dtype)
    return feeds


def batch_of_shapes(session: Any, shapes: Shapes) -> int | None:
    """The batch the --shapes give (their first axis, for inputs whose first axis the model leaves
    dynamic), None when none says; refused when two of them disagree."""
    given = {
        arg.name: shapes[arg.name][0]
        for arg in session.get_inputs()
        if arg.name in shapes
        and arg.shape
        and not _is_fixed(arg.shape[0])
        and shapes[arg.name]
        and shapes[arg.name][0] != BATCH_AXIS
    }
    if len(set(given.values())) > 1:
        listed = ", ".join(f"{name}={_show(shapes[name])}" for name in given)
        raise BenchmarkError(f"--shape {listed}: the first (batch) axes differ; give one batch for every input")
    return next(iter(given.values()), None)


def check_feeds(session: Any, feeds: Feeds, where: str) -> None:
    """Names, dtypes and ranks of given inputs against the model's signature."""
    expected = {arg.name: arg for arg in session.get_inputs()}
    if set(feeds) != set(expected):
        raise BenchmarkError(f"{where}: inputs {sorted(feeds)} do not match the model's inputs {sorted(expected)}")
    for name, arg in expected.items():
        array = feeds[name]
        dtype = _DTYPES.get(arg.type)
        if dtype is not None and array.dtype != dtype:
            raise BenchmarkError(f"{where}: input {name!r} is {array.dtype}, the model expects {np.dtype(dtype)}")
        if array.ndim != len(arg.shape) or not _fits(arg.shape[1:], array.shape[1:]):
            raise BenchmarkError(f"{where}: input {name!r} has shape {array.shape}, the model expects {arg.shape}")


def model_feeds(
    session: Any, path: str | os.PathLike[str], settings: BenchSettings, inputs: Feeds | None, shapes: Shapes | None
) -> Feeds:
    """What ``session`` (loaded from ``path``) is fed: ``inputs`` when given, checked against its
    signature, else inputs synthesised for ``settings.batch`` and ``shapes`` from ``settings.seed``."""
    if inputs is not None:
        check_feeds(session, inputs, str(path))
        return inputs
    return synthesize_inputs(session, settings.batch, settings.seed, shapes)
