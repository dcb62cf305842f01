"""Summary statistics of raw latency samples (edgeport/benchmarks/stats.py)."""

import numpy as np
import pytest

from edgeport.benchmarks import summarize


def test_summarize_matches_numpy():
    samples = np.arange(1, 101, dtype=float)
    stats = summarize(samples)
    assert stats["count"] == 100 and stats["min_ms"] == 1 and stats["max_ms"] == 100
    assert stats["p50_ms"] == pytest.approx(np.percentile(samples, 50))
    assert stats["p99_ms"] == pytest.approx(np.percentile(samples, 99))
    assert stats["mean_ms"] == pytest.approx(50.5)
    with pytest.raises(ValueError):
        summarize([])


def test_summary_intervals_cover_the_estimate_and_p99_needs_100_samples():
    x = np.random.default_rng(0).lognormal(0, 0.3, 500)
    s = summarize(x, batch=4)
    assert s["p50_ci_ms"][0] <= s["p50_ms"] <= s["p50_ci_ms"][1]
    assert s["p90_ci_ms"][0] <= s["p90_ms"] <= s["p90_ci_ms"][1]
    assert s["throughput_per_s"] == pytest.approx(4000 / x.mean())
    assert s["p95_ms"] == pytest.approx(np.percentile(x, 95))
    small = summarize(x[:50])
    assert small["p99_ms"] is None and small["unsupported"] == ["p99"]


def test_p50_interval_has_about_95_percent_coverage():
    rng = np.random.default_rng(1)
    true_median = 1.0  # lognormal(0, s) has median exp(0)
    hits = sum(
        lo <= true_median <= hi
        for lo, hi in (summarize(rng.lognormal(0, 0.3, 300), seed=i)["p50_ci_ms"] for i in range(100))
    )
    assert 88 <= hits <= 100


def test_given_rounds_the_intervals_resample_whole_rounds():
    # Ten rounds whose level drifts (a shared machine): resampling whole rounds sees that drift in the
    # interval of the median, resampling single samples does not.
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(level, 0.01, 20) for level in rng.uniform(1, 2, 10)])
    by_sample, by_round = summarize(x)["p50_ci_ms"], summarize(x, round_sizes=[20] * 10)["p50_ci_ms"]
    assert by_round[0] <= float(np.median(x)) <= by_round[1]
    assert by_round[1] - by_round[0] > 5 * (by_sample[1] - by_sample[0])
