"""A/B latency comparison with round-level statistics (benchmarks/rounds.py): p50 and p90 ratios with
bootstrap intervals over whole measurement rounds and a test on round medians, turned into
"faster", "slower" or "no detectable difference".

Why rounds, not single runs: noise comes in bursts, so thousands of runs are far from thousands of
independent observations. The earlier sample-level bootstrap and Mann-Whitney test on single runs
gave `bench A --vs A` intervals like 1.018 [1.017, 1.019] (p = 1e-48) that excluded 1.0 in 7 of 10
runs, hidden only behind a fixed 2% margin. With `--vs` the two models are measured interleaved,
round by round, so round i of A and round i of B share the machine's state: the interval resamples
the same rounds for both (paired) and the test is a Wilcoxon signed-rank test on the log ratios of
round medians. Measurements that were not interleaved (a remote device runs A, then B) use an
independent round bootstrap and a Mann-Whitney U test on round medians.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgeport.benchmarks.rounds import (
    CONFIDENCE,
    can_pair,
    paired_slower_p_value,
    ratio_intervals,
    slower_p_value,
    smallest_p_value,
    split_rounds,
)
from edgeport.benchmarks.stats import MIN_SAMPLES
from edgeport.errors import BenchmarkError, ConfigError

ALPHA = 0.01
MIN_COMPARE_SAMPLES = MIN_SAMPLES["p90"]  # the p90 ratio needs at least this many samples per model
TESTS = {
    "wilcoxon-paired-rounds": "Wilcoxon signed-rank on paired round medians",
    "mann-whitney-rounds": "Mann-Whitney U on round medians",
}


def check_margin(margin: float) -> float:
    """The relative margin a verdict must clear (0.02 = 2%): finite, at least 0, below 1."""
    if (
        isinstance(margin, bool)
        or not isinstance(margin, (int, float))
        or not math.isfinite(margin)
        or not 0 <= margin < 1
    ):
        raise ConfigError(f"--margin must be a finite fraction >= 0 and < 1 (0.02 = 2%), got {margin!r}")
    return float(margin)


def compare(
    a_ms: Sequence[float] | np.ndarray,
    b_ms: Sequence[float] | np.ndarray,
    a_settings: dict[str, Any] | None = None,
    b_settings: dict[str, Any] | None = None,
    *,
    paired: bool = True,
    seed: int = 0,
    margin: float = 0.0,
) -> dict:
    """How A's latency relates to B's. Ratios are A / B: below 1 means A is faster.

    ``a_settings`` / ``b_settings``: the settings each measurement recorded (BenchResult.settings); they
    give the round boundaries (``round_sizes``, else iterations and rounds). ``b_settings`` defaults to
    ``a_settings``. ``paired``: A and B were measured interleaved, round by round (measure_interleaved).

    A difference is declared only when the test rejects "same latency" at ALPHA AND the whole 95% p50
    ratio interval lies beyond 1 -/+ ``margin``; otherwise "no detectable difference".
    """
    margin = check_margin(margin)
    a_settings = a_settings or {}
    b_settings = a_settings if b_settings is None else b_settings
    a_rounds, b_rounds = _enough(split_rounds(a_ms, a_settings), "A"), _enough(split_rounds(b_ms, b_settings), "B")
    paired = paired and can_pair(a_rounds, b_rounds)
    (p50_ci, p90_ci) = ratio_intervals(a_rounds, b_rounds, [50, 90], seed, CONFIDENCE, paired=paired)
    if paired:
        test, p_value = "wilcoxon-paired-rounds", paired_slower_p_value(a_rounds, b_rounds, "two-sided")
    else:
        test, p_value = "mann-whitney-rounds", slower_p_value(a_rounds, b_rounds, "two-sided")
    a, b = np.concatenate(a_rounds), np.concatenate(b_rounds)
    result = {
        "p50_ratio": float(np.percentile(a, 50) / np.percentile(b, 50)),
        "p50_ratio_ci": p50_ci,
        "p90_ratio": float(np.percentile(a, 90) / np.percentile(b, 90)),
        "p90_ratio_ci": p90_ci,
        "test": test,
        "p_value": p_value,
        "rounds": [len(a_rounds), len(b_rounds)],
        "alpha": ALPHA,
        "confidence": CONFIDENCE,
        "margin": margin,
        "note": None,
    }
    if smallest_p_value(len(a_rounds), len(b_rounds), paired) >= ALPHA:
        # Say so rather than let "no detectable difference" read as evidence of equal speed.
        need = "8 or more rounds (--rounds)" if paired else "5 or more rounds per model"
        result["note"] = (
            f"with {len(a_rounds)} rounds the {TESTS[test]} test cannot reach p < {ALPHA:g}, "
            f"so no difference can be declared; measure {need}"
        )
    result["verdict"] = _verdict(p_value, p50_ci, margin)
    return result


def _enough(rounds: list[np.ndarray], label: str) -> list[np.ndarray]:
    """``rounds``, refused when they hold too few samples for the p90 ratio."""
    count = sum(r.size for r in rounds)
    if count < MIN_COMPARE_SAMPLES:
        raise BenchmarkError(
            f"an A/B comparison needs at least {MIN_COMPARE_SAMPLES} samples per model; "
            f"{label} has {count}: raise --iterations"
        )
    return rounds


def _verdict(p_value: float, p50_ci: list[float], margin: float) -> str:
    """A difference only when the test rejects "same latency" and the whole p50 interval clears the margin."""
    low, high = p50_ci
    if p_value < ALPHA and high < 1.0 - margin:
        return "faster"
    if p_value < ALPHA and low > 1.0 + margin:
        return "slower"
    return "no detectable difference"
