"""Summary statistics computed from raw latency samples, with bootstrap confidence intervals.

Latency samples are skewed and often multi-modal, so intervals for percentiles come from the
bootstrap (scipy.stats.bootstrap, percentile method), never from a normal approximation.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import stats as sps

# Round-level intervals (benchmarks/rounds.py) when the rounds are known; the bootstrap's confidence and
# resample count are defined there, so that the dependency runs one way: stats -> rounds.
from edgeport.benchmarks.rounds import CONFIDENCE, RESAMPLES, percentile_intervals, split_rounds

__all__ = ["CONFIDENCE", "MIN_SAMPLES", "RESAMPLES", "percentile_ci", "summarize"]

# A percentile q needs at least 1 / (1 - q) samples before even one sample lies above it; a budget on
# it (the gate) needs that many too. summarize still reports the median of a single run: it is that run.
MIN_SAMPLES = {"p50": 2, "p90": 10, "p95": 20, "p99": 100}
_REPORTED_FROM = {**MIN_SAMPLES, "p50": 1}


def _percentile_statistic(q: float):
    def statistic(x, axis=-1):
        return np.percentile(x, q, axis=axis)

    return statistic


def percentile_ci(samples: np.ndarray, q: float, seed: int = 0, resamples: int = RESAMPLES) -> list[float] | None:
    """95% bootstrap interval of the q-th percentile, or None with too few samples."""
    if samples.size < 2 or np.ptp(samples) == 0:
        return None if samples.size < 2 else [float(samples[0])] * 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate resamples of discrete timers
        result = sps.bootstrap(
            (samples,),
            _percentile_statistic(q),
            n_resamples=resamples,
            confidence_level=CONFIDENCE,
            method="percentile",
            vectorized=True,
            rng=np.random.default_rng(seed),
        )
    return [float(result.confidence_interval.low), float(result.confidence_interval.high)]


def summarize(
    samples_ms: np.ndarray | list[float], batch: int = 1, seed: int = 0, round_sizes: list[int] | None = None
) -> dict:
    """min, mean, std, p50/p90/p95/p99, max, throughput and 95% intervals for p50 and p90.

    A percentile that the sample count cannot support is reported as None, and named in
    ``unsupported`` (p99 needs at least 100 samples); an interval needs at least 2 samples.
    ``round_sizes``: samples per measurement round, in order; given, the intervals resample whole
    rounds (benchmarks/rounds.py), as bench --vs and the gate do, instead of single samples.
    """
    samples = np.asarray(samples_ms, dtype=np.float64)
    if samples.size == 0:
        raise ValueError("no latency samples to summarize")
    summary: dict[str, Any] = {
        "count": int(samples.size),
        "min_ms": float(samples.min()),
        "mean_ms": float(samples.mean()),
        "std_ms": float(samples.std(ddof=1)) if samples.size > 1 else 0.0,
    }
    unsupported = []
    for name, need in _REPORTED_FROM.items():
        if samples.size >= need:
            summary[f"{name}_ms"] = float(np.percentile(samples, float(name[1:])))
        else:
            summary[f"{name}_ms"] = None
            unsupported.append(name)
    summary["max_ms"] = float(samples.max())
    summary["throughput_per_s"] = float(batch * 1000.0 / summary["mean_ms"]) if summary["mean_ms"] > 0 else None
    wanted = [name for name in ("p50", "p90") if summary[f"{name}_ms"] is not None and samples.size >= 2]
    if round_sizes is not None and wanted:
        blocks = split_rounds(samples, {"round_sizes": list(round_sizes)})
        intervals = dict(zip(wanted, percentile_intervals(blocks, [float(n[1:]) for n in wanted], seed), strict=True))
    else:
        intervals = {name: percentile_ci(samples, float(name[1:]), seed) for name in wanted}
    for name in ("p50", "p90"):
        summary[f"{name}_ci_ms"] = intervals.get(name)
    summary["confidence"] = CONFIDENCE
    summary["unsupported"] = unsupported
    return summary
