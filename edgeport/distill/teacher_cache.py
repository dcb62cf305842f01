"""Teacher logits, computed once per (teacher weights, training inputs) and cached on disk."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from torch import nn

from edgeport.core.artifacts import atomic_write_bytes
from edgeport.data.npz_reader import read_npy
from edgeport.distill.evaluate import predict_logits
from edgeport.errors import DataError


def cache_key(teacher_sha256: str, inputs: np.ndarray) -> str:
    digest = hashlib.sha256(teacher_sha256.encode())
    digest.update(repr(inputs.shape).encode())
    digest.update(np.ascontiguousarray(inputs).tobytes())
    return digest.hexdigest()


def teacher_logits(
    teacher: nn.Module, teacher_sha256: str, inputs: np.ndarray, cache_dir: Path | None
) -> tuple[np.ndarray, bool]:
    """Return the teacher's logits for ``inputs`` and whether they came from the cache.

    The key covers the teacher checkpoint's sha256 and the exact input tensor, so a
    different teacher, dataset, split or normalisation can never reuse stale logits.
    """
    key = cache_key(teacher_sha256, inputs)
    path = cache_dir / f"{key}.npy" if cache_dir is not None else None
    if path is not None and path.is_file():
        try:  # the bounded reader: a damaged entry's header cannot make us allocate what it claims
            cached = read_npy(path)
            if cached.ndim == 2 and cached.shape[0] == len(inputs):
                return cached, True
        except DataError:
            pass  # a damaged cache entry is recomputed and overwritten
    logits = predict_logits(teacher, inputs).astype(np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, logits, allow_pickle=False)
        atomic_write_bytes(path, buffer.getvalue())
    return logits, False
