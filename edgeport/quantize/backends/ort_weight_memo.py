"""Weight quantization done once per auto or fallback run.

onnxruntime quantizes a per-channel weight one channel at a time, in Python (``quantize_data`` per
channel, about 139,000 calls for all-MiniLM-L6-v2's 36 MatMuls): about 5 s of each 6 s dynamic
re-quantization on an AMD EPYC Zen 1. The fallback re-quantizes the same model with a few more layers
in float at each step, so every step computed again the same scales, zero points and int8 values of
every weight it kept.

Both functions remembered here are pure: their result depends only on the values and the settings
passed, which form the key (the values by a 128-bit BLAKE2b digest of their bytes, dtype and shape).
Within ``weights_remembered()`` onnxruntime's module-level names are bound to remembering wrappers, and
the originals are restored on leaving; the int8 model is byte-identical to one quantized without it
(tests/quantize/test_reuse.py). Where a later onnxruntime renames either function, nothing is wrapped
and quantization runs as before, only slower.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# (module, function): the names onnxruntime's quantizers call per weight (and per channel).
_TARGETS = (
    ("onnxruntime.quantization.base_quantizer", "quantize_data"),
    ("onnxruntime.quantization.qdq_quantizer", "compute_data_quant_params"),
)
_LOCK = threading.Lock()


@dataclass
class MemoStats:
    hits: int = 0
    misses: int = 0
    cache: dict = field(default_factory=dict, repr=False)


_ACTIVE: list[MemoStats] = []  # the open memo (at most one: nested calls share the outer one)


def _setting(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    array = np.asarray(value)
    return (array.dtype.str, array.shape, array.tobytes())


def _key(data: Any, args: tuple, kwargs: dict) -> tuple | None:
    """The call's key, or None when a value is not an array of numbers (called through, not kept)."""
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "fiu":
        return None
    array = np.ascontiguousarray(data)
    digest = hashlib.blake2b(array.data.cast("B"), digest_size=16).digest()
    try:
        settings = tuple(_setting(a) for a in args) + tuple(sorted((k, _setting(v)) for k, v in kwargs.items()))
    except (TypeError, ValueError):
        return None
    return (array.dtype.str, array.shape, digest, settings)


def _copied(value: Any) -> Any:
    """A fresh copy of a remembered result, so that no caller can change what the next one gets."""
    if isinstance(value, tuple):
        return tuple(_copied(v) for v in value)
    return value.copy() if isinstance(value, np.ndarray) else value


def _remembering(name: str, original: Callable, stats: MemoStats) -> Callable:
    def wrapper(data, *args, **kwargs):
        key = _key(data, args, kwargs)
        if key is None:
            return original(data, *args, **kwargs)
        key = (name, *key)
        if key in stats.cache:
            stats.hits += 1
            return _copied(stats.cache[key])
        stats.misses += 1
        value = original(data, *args, **kwargs)
        stats.cache[key] = _copied(value)
        return value

    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    return wrapper


@contextlib.contextmanager
def weights_remembered() -> Iterator[MemoStats]:
    """Remember onnxruntime's weight quantization meanwhile (see the module's docstring)."""
    with _LOCK:
        if _ACTIVE:
            outer = _ACTIVE[-1]
            nested = True
        else:
            outer, nested = MemoStats(), False
            _ACTIVE.append(outer)
    if nested:
        yield outer
        return
    patched: list[tuple[Any, str, Callable]] = []
    try:
        for module_name, name in _TARGETS:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            original = getattr(module, name, None)
            if callable(original):
                setattr(module, name, _remembering(name, original, outer))
                patched.append((module, name, original))
        yield outer
    finally:
        for module, name, original in reversed(patched):
            setattr(module, name, original)
        with _LOCK:
            _ACTIVE.remove(outer)


def memo_stats() -> MemoStats | None:
    """The open memo's counts, None outside ``weights_remembered``."""
    return _ACTIVE[-1] if _ACTIVE else None


__all__ = ["MemoStats", "memo_stats", "weights_remembered"]
