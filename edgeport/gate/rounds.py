"""Round-level (block) statistics for the gate.

Latency noise on shared machines comes in bursts that last longer than one inference, so
consecutive samples are not independent and a bootstrap over single samples gives intervals that
are too narrow (measured here: back-to-back A/A measurements whose p50s differ by 5-10%). A
measurement is taken in rounds; resampling whole rounds keeps each burst together, so the interval
widens exactly as much as the machine drifted between rounds. The Mann-Whitney test likewise
compares round medians, not single samples.

With few rounds the percentile bootstrap is too narrow (it covered a true p50 about 90% of the time
instead of 95% in a simulation with 10 drifting rounds), so each interval is widened around its
estimate by t(n-1)/z * sqrt(n/(n-1)), the usual small-sample correction (1.22x for 10 rounds).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats as sps

from edgeport.benchmarks.stats import CONFIDENCE, RESAMPLES

MIN_ROUNDS = 5  # fewer blocks cannot show drift; split the samples into this many instead


def rounds_of(samples: np.ndarray, settings: dict) -> np.ndarray:
    """The samples as a (rounds, per_round) array, in measurement order."""
    samples = np.asarray(samples, dtype=np.float64)
    rounds = int(settings.get("rounds_run") or settings.get("rounds") or 0)
    if rounds < MIN_ROUNDS or samples.size % rounds:
        rounds = MIN_ROUNDS if samples.size >= MIN_ROUNDS * 2 else 1
    usable = samples.size - samples.size % rounds
    return samples[:usable].reshape(rounds, -1)


def _resampled(blocks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    picks = rng.integers(0, blocks.shape[0], size=(RESAMPLES, blocks.shape[0]))
    return blocks[picks].reshape(RESAMPLES, -1)


def widening(rounds: int, confidence: float) -> float:
    if rounds < 2:
        return 1.0
    z = sps.norm.ppf(0.5 + confidence / 2)
    return float(sps.t.ppf(0.5 + confidence / 2, rounds - 1) / z * np.sqrt(rounds / (rounds - 1)))


def _interval(values: np.ndarray, estimate: float, rounds: int, confidence: float) -> list[float]:
    tail = (1 - confidence) / 2 * 100
    low, high = float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))
    factor = widening(rounds, confidence)
    return [estimate - factor * max(estimate - low, 0.0), estimate + factor * max(high - estimate, 0.0)]


def percentile_interval(blocks: np.ndarray, q: float, seed: int = 0, confidence: float = CONFIDENCE) -> list[float]:
    """Interval of the q-th percentile, resampling rounds (the sample bootstrap when there is one round)."""
    if blocks.shape[0] == 1:
        from edgeport.benchmarks.stats import percentile_ci

        return percentile_ci(blocks[0], q, seed)
    rng = np.random.default_rng(seed)
    return _interval(np.percentile(_resampled(blocks, rng), q, axis=1), float(np.percentile(blocks, q)),
                     blocks.shape[0], confidence)


def ratio_interval(a: np.ndarray, b: np.ndarray, q: float, seed: int = 0, confidence: float = CONFIDENCE) -> list[float]:
    """Interval of percentile_q(a) / percentile_q(b), resampling the rounds of each side independently."""
    rng = np.random.default_rng(seed)
    values = np.percentile(_resampled(a, rng), q, axis=1) / np.percentile(_resampled(b, rng), q, axis=1)
    return _interval(values, float(np.percentile(a, q) / np.percentile(b, q)), min(a.shape[0], b.shape[0]), confidence)


def slower_p_value(current: np.ndarray, baseline: np.ndarray) -> float:
    """One-sided Mann-Whitney U p-value that current's round medians are larger than baseline's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(sps.mannwhitneyu(np.median(current, axis=1), np.median(baseline, axis=1),
                                      alternative="greater").pvalue)


def paired_ratio_interval(a: np.ndarray, b: np.ndarray, q: float, seed: int = 0,
                          confidence: float = CONFIDENCE) -> list[float]:
    """As ratio_interval, for two models measured interleaved: round i of a ran beside round i of b,
    so the same rounds are drawn for both and drift common to a round cancels in the ratio."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, a.shape[0], size=(RESAMPLES, a.shape[0]))
    values = (np.percentile(a[picks].reshape(RESAMPLES, -1), q, axis=1)
              / np.percentile(b[picks].reshape(RESAMPLES, -1), q, axis=1))
    return _interval(values, float(np.percentile(a, q) / np.percentile(b, q)), a.shape[0], confidence)


def can_pair(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.shape[0] > 1


def paired_slower_p_value(current: np.ndarray, baseline: np.ndarray) -> float:
    """One-sided Wilcoxon signed-rank p-value that current's round medians exceed baseline's, round by round."""
    diff = np.log(np.median(current, axis=1)) - np.log(np.median(baseline, axis=1))
    if not np.any(diff):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(sps.wilcoxon(diff, alternative="greater").pvalue)
