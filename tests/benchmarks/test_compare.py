"""A/B comparison on round-level statistics (edgeport/benchmarks/compare.py)."""

import numpy as np

from edgeport.benchmarks.compare import compare

# As `edgeport bench --vs --iterations 400` records them: 10 interleaved rounds of 40 runs.
BENCH_SETTINGS = {"iterations": 400, "rounds": 10, "round_sizes": [40] * 10, "rounds_run": 10}


def test_a_a_comparisons_rarely_raise_false_alarms():
    rng = np.random.default_rng(2)
    verdicts = [
        compare(rng.lognormal(0, 0.25, 400), rng.lognormal(0, 0.25, 400), BENCH_SETTINGS, seed=i) for i in range(200)
    ]
    false_alarms = sum(v["verdict"] != "no detectable difference" for v in verdicts)
    contains_one = sum(v["p50_ratio_ci"][0] <= 1.0 <= v["p50_ratio_ci"][1] for v in verdicts)
    assert false_alarms <= 4  # 2% of 200
    assert 180 <= contains_one <= 199  # a 95% interval: neither too narrow nor uselessly wide


def test_a_real_speedup_is_detected_in_both_directions():
    rng = np.random.default_rng(3)
    slow, fast = rng.lognormal(0, 0.25, 400), rng.lognormal(np.log(0.85), 0.25, 400)
    assert compare(fast, slow, BENCH_SETTINGS)["verdict"] == "faster"
    assert compare(slow, fast, BENCH_SETTINGS)["verdict"] == "slower"
    detected = sum(
        compare(rng.lognormal(np.log(0.85), 0.25, 400), rng.lognormal(0, 0.25, 400), BENCH_SETTINGS, seed=i)["verdict"]
        == "faster"
        for i in range(100)
    )
    assert detected >= 95


def test_measurements_that_were_not_interleaved_are_compared_unpaired():
    rng = np.random.default_rng(4)
    slow, fast = rng.lognormal(0, 0.25, 400), rng.lognormal(np.log(0.7), 0.25, 400)
    result = compare(fast, slow, BENCH_SETTINGS, paired=False)
    assert result["test"] == "mann-whitney-rounds" and result["verdict"] == "faster"
    assert compare(fast, slow, BENCH_SETTINGS)["test"] == "wilcoxon-paired-rounds"
