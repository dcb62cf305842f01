"""A/B latency comparison from interleaved samples: ratios with bootstrap intervals and a
Mann-Whitney U test, turned into "faster", "slower" or "no detectable difference"."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats as sps

from edgeport.benchmarks.stats import CONFIDENCE, RESAMPLES

ALPHA = 0.01
# Two sessions of the very same file differ by up to ~1-2% here (memory placement, cache state), and
# thousands of samples make that "significant"; a verdict needs the whole interval past this margin.
MIN_EFFECT = 0.02


def ratio_ci(a: np.ndarray, b: np.ndarray, q: float, seed: int = 0) -> list[float]:
    """95% bootstrap interval of percentile_q(a) / percentile_q(b), resampling a and b independently."""
    def statistic(x, y, axis=-1):
        return np.percentile(x, q, axis=axis) / np.percentile(y, q, axis=axis)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = sps.bootstrap((a, b), statistic, n_resamples=RESAMPLES, confidence_level=CONFIDENCE,
                               method="percentile", vectorized=True, paired=False, rng=np.random.default_rng(seed))
    return [float(result.confidence_interval.low), float(result.confidence_interval.high)]


def compare(a_ms, b_ms, seed: int = 0, min_effect: float = MIN_EFFECT) -> dict:
    """How A's latency relates to B's. Ratios are A / B: below 1 means A is faster.

    A difference is declared only when the Mann-Whitney U test rejects "same distribution" at
    ALPHA and the whole p50 ratio interval lies beyond 1 -/+ ``min_effect``; otherwise the answer
    is "no detectable difference".
    """
    a, b = np.asarray(a_ms, dtype=np.float64), np.asarray(b_ms, dtype=np.float64)
    if a.size < 10 or b.size < 10:
        raise ValueError("an A/B comparison needs at least 10 samples per model")
    p_value = float(sps.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    result = {"p50_ratio": float(np.percentile(a, 50) / np.percentile(b, 50)),
              "p50_ratio_ci": ratio_ci(a, b, 50, seed),
              "p90_ratio": float(np.percentile(a, 90) / np.percentile(b, 90)),
              "p90_ratio_ci": ratio_ci(a, b, 90, seed),
              "mann_whitney_p": p_value, "alpha": ALPHA, "confidence": CONFIDENCE, "min_effect": min_effect}
    low, high = result["p50_ratio_ci"]
    if p_value < ALPHA and high < 1.0 - min_effect:
        result["verdict"] = "faster"
    elif p_value < ALPHA and low > 1.0 + min_effect:
        result["verdict"] = "slower"
    else:
        result["verdict"] = "no detectable difference"
    return result
