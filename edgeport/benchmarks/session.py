"""An onnxruntime session to measure, and what to feed it: the provider (never a silent fallback), the
session options shared with the device runner, and inputs given (checked against the model's signature)
or synthesised from it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.benchmarks.records import AUTO_ORDER, PROVIDERS, BenchSettings, RuntimeChoice
from edgeport.benchmarks.remote_runner import session_options
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
    runtime = runtime or settings.runtime_choice
    if runtime.name == "openvino":
        from edgeport.benchmarks.openvino_runtime import OpenVinoSession

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


def _synthetic_shape(arg: Any, batch: int, shapes: Shapes) -> list[int]:
    if arg.name in shapes:
        shape = list(shapes[arg.name])
        if len(shape) != len(arg.shape) or not _fits(arg.shape, shape):
            raise BenchmarkError(
                f"--shape {arg.name}={'x'.join(map(str, shape))} does not fit the model's shape {list(arg.shape)}"
            )
        return shape
    shape = []
    for axis, dim in enumerate(arg.shape):
        if isinstance(dim, int) and dim > 0:
            shape.append(dim)
        elif axis == 0:
            shape.append(batch)
        else:
            raise BenchmarkError(
                f"input {arg.name!r} has a dynamic axis {axis} ({dim!r}); give --shape {arg.name}=... or real inputs"
            )
    return shape


def synthesize_inputs(session: Any, batch: int, seed: int, shapes: Shapes | None = None) -> Feeds:
    """Random inputs matching the model's signature; symbolic batch axes take ``batch``, other
    dynamic axes come from ``shapes`` (name -> full shape)."""
    rng = np.random.default_rng(seed)
    shapes = shapes or {}
    names = {arg.name for arg in session.get_inputs()}
    unknown = sorted(set(shapes) - names)
    if unknown:
        raise BenchmarkError(f"--shape names {', '.join(unknown)} are not model inputs ({', '.join(sorted(names))})")
    feeds: Feeds = {}
    for arg in session.get_inputs():
        if arg.type not in _DTYPES:
            raise BenchmarkError(f"input {arg.name!r} has type {arg.type}, which cannot be synthesised")
        shape = _synthetic_shape(arg, batch, shapes)
        dtype = _DTYPES[arg.type]
        if np.issubdtype(dtype, np.floating):
            feeds[arg.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype is np.bool_:
            feeds[arg.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[arg.name] = rng.integers(0, 100, shape).astype(dtype)
    return feeds


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
