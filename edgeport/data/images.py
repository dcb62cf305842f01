"""Image conversion helpers shared by the loaders."""

from __future__ import annotations

import numpy as np
from PIL import Image


def resize_batch(x: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of float32 NCHW images to ``size`` x ``size``; a no-op when already that size."""
    if x.shape[2] == size and x.shape[3] == size:
        return x.astype(np.float32, copy=False)
    out = np.empty((x.shape[0], x.shape[1], size, size), dtype=np.float32)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            plane = Image.fromarray(np.ascontiguousarray(x[n, c], dtype=np.float32), mode="F")
            out[n, c] = np.asarray(plane.resize((size, size), Image.Resampling.BILINEAR))
    return out


def to_unit_float(x: np.ndarray) -> np.ndarray:
    """uint8 images become [0, 1] floats; float images are kept as they are."""
    if np.issubdtype(x.dtype, np.integer):
        return (x.astype(np.float32) / 255.0).astype(np.float32)
    return x.astype(np.float32, copy=False)
