"""Summary statistics computed from raw latency samples."""

from __future__ import annotations

import numpy as np


def summarize(samples_ms: np.ndarray | list[float]) -> dict:
    samples = np.asarray(samples_ms, dtype=np.float64)
    if samples.size == 0:
        raise ValueError("no latency samples to summarize")
    p50, p90, p99 = np.percentile(samples, [50, 90, 99])
    return {"count": int(samples.size), "min_ms": float(samples.min()), "mean_ms": float(samples.mean()),
            "std_ms": float(samples.std(ddof=1)) if samples.size > 1 else 0.0,
            "p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99),
            "max_ms": float(samples.max())}
