"""Each budget check, decided with the noise in mind.

- Percentile budget (mode "ci", the default): pass when the upper end of the percentile's 95%
  bootstrap interval is within budget, fail when its lower end is over budget, otherwise
  inconclusive. Mode "point" compares the estimate alone.
- Regression versus a baseline: "regressed" only when a one-sided Mann-Whitney U test says the
  current round medians are slower (p < ALPHA) AND the whole 95% interval of the p50 ratio lies
  beyond 1 + max_regression; pass when the interval's upper end is within 1 + max_regression.
Intervals resample whole measurement rounds (benchmarks/rounds.py), so bursts of machine noise widen them.
- Speed-up versus fp32: pass when the interval of fp32 p50 / artifact p50 is at or above the
  minimum, fail when it is wholly below.
- Accuracy and size: deterministic numbers compared with their budget.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgeport.benchmarks.rounds import (
    CONFIDENCE,
    can_pair,
    paired_ratio_interval,
    paired_slower_p_value,
    percentile_interval,
    ratio_interval,
    slower_p_value,
)
from edgeport.benchmarks.stats import MIN_SAMPLES

ALPHA = 0.01
VERDICTS = ("pass", "fail", "inconclusive")


@dataclass(frozen=True)
class Check:
    name: str
    budget: str  # as a person reads it: "<= 1.5 ms"
    measured: float | None
    unit: str
    interval: list[float] | None
    verdict: str
    reason: str

    def describe(self) -> dict:
        return asdict(self)


def _three_way(low: float, high: float, estimate: float, limit: float, mode: str, lower_is_better: bool) -> str:
    if mode == "point":
        ok = estimate <= limit if lower_is_better else estimate >= limit
        return "pass" if ok else "fail"
    if lower_is_better:
        return "pass" if high <= limit else ("fail" if low > limit else "inconclusive")
    return "pass" if low >= limit else ("fail" if high < limit else "inconclusive")


def percentile_check(
    name: str, budget_ms: float, rounds: np.ndarray, mode: str, seed: int = 0, confidence: float = CONFIDENCE
) -> Check:
    """``rounds``: the measurement as (rounds, samples per round), see benchmarks/rounds.py."""
    q = float(name[1:3])
    estimate = float(np.percentile(rounds, q))
    interval = percentile_interval(rounds, q, seed, confidence)
    if interval is None:  # run_gate refuses a percentile budget on fewer samples than it needs
        raise ValueError(f"{name} needs at least {needed_samples(name)} samples for an interval")
    verdict = _three_way(interval[0], interval[1], estimate, budget_ms, mode, lower_is_better=True)
    reason = {
        "pass": f"{name[:3]} {'estimate' if mode == 'point' else '95% upper bound'} within budget",
        "fail": f"{name[:3]} {'estimate' if mode == 'point' else 'is over budget even at the 95% lower bound'}"
        + (" over budget" if mode == "point" else ""),
        "inconclusive": f"the 95% interval of {name[:3]} straddles the budget; measure longer",
    }[verdict]
    return Check(name, f"<= {budget_ms:g} ms", estimate, "ms", interval, verdict, reason)


def regression_check(
    current: np.ndarray,
    baseline: np.ndarray,
    max_regression: float,
    mode: str,
    seed: int = 0,
    paired: bool = False,
    confidence: float = CONFIDENCE,
) -> Check:
    """``paired``: both were measured interleaved, round by round (Wilcoxon signed-rank on round medians
    and a paired round bootstrap); otherwise two independent measurements (Mann-Whitney U)."""
    ratio = float(np.percentile(current, 50) / np.percentile(baseline, 50))
    if paired:
        interval = paired_ratio_interval(current, baseline, 50, seed, confidence)
        p_value = paired_slower_p_value(current, baseline)
    else:
        interval = ratio_interval(current, baseline, 50, seed, confidence)
        p_value = slower_p_value(current, baseline)
    limit = 1.0 + max_regression
    test = "Wilcoxon, interleaved" if paired else "Mann-Whitney"
    if mode == "point":
        verdict = "pass" if ratio <= limit else "fail"
    elif p_value < ALPHA and interval[0] > limit:
        verdict = "fail"
    elif interval[1] <= limit:
        verdict = "pass"
    else:
        verdict = "inconclusive"
    reason = {
        "pass": f"p50 is at most {max_regression:.0%} slower than the baseline",
        "fail": f"regressed: p50 {ratio:.3f}x the baseline ({test} p={p_value:.2g})",
        "inconclusive": f"cannot tell whether p50 is more than {max_regression:.0%} slower "
        f"(ratio interval {interval[0]:.3f}-{interval[1]:.3f}, {test} p={p_value:.2g})",
    }[verdict]
    return Check("max_regression", f"p50 ratio <= {limit:.3g}", ratio, "x baseline", interval, verdict, reason)


def speedup_check(
    artifact: np.ndarray,
    fp32: np.ndarray,
    min_speedup: float,
    mode: str,
    seed: int = 0,
    paired: bool = False,
    confidence: float = CONFIDENCE,
) -> Check:
    """``paired``: fp32 and the artifact were measured interleaved (a run's latency.json, bench --vs)."""
    speedup = float(np.percentile(fp32, 50) / np.percentile(artifact, 50))
    interval = (
        paired_ratio_interval(fp32, artifact, 50, seed, confidence)
        if paired and can_pair(fp32, artifact)
        else ratio_interval(fp32, artifact, 50, seed, confidence)
    )
    verdict = _three_way(interval[0], interval[1], speedup, min_speedup, mode, lower_is_better=False)
    reason = {
        "pass": "fp32 p50 / artifact p50 at or above the minimum",
        "fail": "the artifact is not that much faster than fp32",
        "inconclusive": "the speed-up interval straddles the minimum; measure longer",
    }[verdict]
    return Check("min_speedup", f">= {min_speedup:g}x", speedup, "x fp32", interval, verdict, reason)


def accuracy_drop_check(accuracy: float, fp32: float, split: str, max_drop: float) -> Check:
    drop = fp32 - accuracy
    verdict = "pass" if drop <= max_drop + 1e-9 else "fail"
    return Check(
        "max_accuracy_drop",
        f"<= {max_drop:g} points",
        drop,
        "points",
        None,
        verdict,
        f"{split} accuracy {accuracy:.2f}% vs fp32 {fp32:.2f}%",
    )


def min_accuracy_check(accuracy: float, split: str, minimum: float) -> Check:
    verdict = "pass" if accuracy >= minimum else "fail"
    return Check("min_accuracy", f">= {minimum:g}%", accuracy, "%", None, verdict, f"{split} top-1 accuracy")


def size_check(size_bytes: int, max_mb: float) -> Check:
    size_mb = size_bytes / 1e6
    verdict = "pass" if size_mb <= max_mb else "fail"
    return Check("max_size_mb", f"<= {max_mb:g} MB", size_mb, "MB", None, verdict, f"{size_bytes} bytes")


def needed_samples(name: str) -> int:
    return MIN_SAMPLES[name[:3]]
