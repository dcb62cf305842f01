"""Round-level (block) statistics: the one place where bench, the gate and search get their
latency intervals and tests for comparisons.

Latency noise on shared machines comes in bursts that last longer than one inference, so
consecutive samples are not independent and a bootstrap over single samples gives intervals that
are too narrow (measured here: back-to-back A/A measurements whose p50s differ by 5-10%, and
`bench A --vs A` intervals that excluded 1.0 in 7 of 10 runs). A measurement is taken in rounds;
resampling whole rounds keeps each burst together, so the interval widens exactly as much as the
machine drifted between rounds. Tests likewise compare round medians, not single samples.

With few rounds the percentile bootstrap is too narrow (it covered a true p50 about 90% of the time
instead of 95% in a simulation with 10 drifting rounds), so each interval is widened around its
estimate by t(n-1)/z * sqrt(n/(n-1)), the usual small-sample correction (1.22x for 10 rounds).

Rounds need not hold the same number of samples (23 runs in 10 rounds are rounds of 3 and 2), so
the functions here take rounds either as a (rounds, per_round) array or as a list of 1-D arrays.
Imports numpy and scipy only (never torch): it runs wherever edgeport.benchmarks runs.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

# split_counts lives in the device runner, which cannot import edgeport: host and device split alike.
from edgeport.benchmarks.remote_runner import split_counts
from edgeport.errors import BenchmarkError

# Every latency interval edgeport reports (bench, the gate, search) is at this confidence, from this many
# bootstrap resamples; benchmarks/stats.py builds on this module and shares them.
CONFIDENCE = 0.95
RESAMPLES = 1000
MIN_ROUNDS = 5  # fewer blocks cannot show drift; split each round into parts to reach this many
# Resampled samples held in memory at once (float64): a long --duration measurement has ~1e6 samples,
# and 1,000 resamples of it at once would need gigabytes.
_CHUNK_ELEMENTS = 8_000_000

Rounds = np.ndarray | Sequence[np.ndarray]


def round_sizes(settings: dict, count: int) -> list[int]:
    """Samples per round, in measurement order, for ``count`` samples taken with ``settings``.

    Recorded ``round_sizes`` win; results without them (edgeport before they were recorded, remote
    and torch runners) are rebuilt from iterations and rounds, else split evenly over the rounds run.
    """
    recorded = settings.get("round_sizes")
    if (
        isinstance(recorded, list)
        and recorded
        and all(isinstance(s, int) and s > 0 for s in recorded)
        and sum(recorded) == count
    ):
        return list(recorded)
    iterations, rounds = settings.get("iterations"), settings.get("rounds")
    # A fixed count ran split_counts(iterations, rounds); compared before splitting, so that a result
    # file claiming a billion rounds cannot make a billion-entry list.
    if not settings.get("duration_s") and iterations == count and isinstance(rounds, int) and rounds > 0:
        return split_counts(count, rounds)
    rounds = settings.get("rounds_run") or settings.get("rounds") or 0
    if not isinstance(rounds, int) or rounds <= 0:
        rounds = MIN_ROUNDS
    return split_counts(count, rounds)


def block_sizes(settings: dict, count: int) -> list[int]:
    """The blocks the bootstrap resamples: the rounds, each split in equal parts when there are fewer
    than MIN_ROUNDS of them (and enough samples), so that blocks never straddle a round boundary."""
    sizes = round_sizes(settings, count)
    if 0 < len(sizes) < MIN_ROUNDS and count >= 2 * MIN_ROUNDS:
        parts = math.ceil(MIN_ROUNDS / len(sizes))
        sizes = [part for size in sizes for part in split_counts(size, parts)]
    return sizes


def split_rounds(samples, settings: dict) -> list[np.ndarray]:
    """The samples cut at their blocks' boundaries (see block_sizes), every sample kept."""
    samples = np.asarray(samples, dtype=np.float64).ravel()
    bounds = np.cumsum(block_sizes(settings, samples.size))[:-1]
    return np.split(samples, bounds) if samples.size else []


def rounds_of(samples: np.ndarray, settings: dict) -> np.ndarray:
    """The samples as a (rounds, per_round) array, in measurement order, cut at the real round boundaries.

    A rectangle needs equal rounds: when rounds differ by one sample (23 runs in 10 rounds), the larger
    ones lose their last sample (fewer samples than rounds in all). split_rounds keeps every sample.
    """
    blocks = split_rounds(samples, settings)
    if not blocks:
        return np.empty((0, 0))
    width = min(block.size for block in blocks)
    return np.stack([block[:width] for block in blocks])


def _blocks(rounds: Rounds) -> list[np.ndarray]:
    if isinstance(rounds, np.ndarray):
        rounds = rounds.reshape(1, -1) if rounds.ndim == 1 else rounds
        return [np.asarray(row, dtype=np.float64) for row in rounds]
    return [np.asarray(block, dtype=np.float64).ravel() for block in rounds]


def _pooled(blocks: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(blocks) if blocks else np.empty(0)


def _resampled_percentiles(blocks: list[np.ndarray], picks: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """(len(qs), resamples): the q-th percentiles of the pooled blocks each row of ``picks`` draws.

    Each resample is built and sorted on purpose. An exact version that counts instead (draw counts times
    each block's running count, a numpy matmul) was 6x faster, but OpenBLAS hung a search process inside
    that matmul for 9 minutes at full CPU (torch and onnxruntime loaded beside it); without BLAS the
    counting was barely faster than this."""
    sizes = np.array([block.size for block in blocks])
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // (picks.shape[1] * int(sizes.max())))
    out = []
    if np.all(sizes == sizes[0]):
        stacked = np.stack(blocks)
        for start in range(0, picks.shape[0], rows_per_chunk):
            chunk = picks[start : start + rows_per_chunk]
            out.append(np.percentile(stacked[chunk].reshape(chunk.shape[0], -1), qs, axis=1).reshape(len(qs), -1))
        return np.concatenate(out, axis=1)
    # Unequal rounds: pad with NaN (sorted last), then interpolate each row at its own length exactly as
    # np.percentile's default (linear) method does on the row without padding.
    padded = np.full((len(blocks), sizes.max()), np.nan)
    for i, block in enumerate(blocks):
        padded[i, : block.size] = block
    for start in range(0, picks.shape[0], rows_per_chunk):
        chunk = picks[start : start + rows_per_chunk]
        rows = np.sort(padded[chunk].reshape(chunk.shape[0], -1), axis=1)
        n = sizes[chunk].sum(axis=1)
        values = []
        for q in qs:
            position = (n - 1) * (q / 100.0)
            low = np.floor(position).astype(np.int64)
            high = np.minimum(low + 1, n - 1)
            at_low = np.take_along_axis(rows, low[:, None], axis=1)[:, 0]
            at_high = np.take_along_axis(rows, high[:, None], axis=1)[:, 0]
            values.append(at_low + (position - low) * (at_high - at_low))
        out.append(np.stack(values))
    return np.concatenate(out, axis=1)


def _picks(rng: np.random.Generator, count: int) -> np.ndarray:
    return rng.integers(0, count, size=(RESAMPLES, count))


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


def _resampleable(blocks: list[np.ndarray]) -> list[np.ndarray]:
    """One block cannot be resampled: fall back to single samples as blocks (the sample bootstrap)."""
    if len(blocks) == 1 and blocks[0].size > 1:
        return [blocks[0][i : i + 1] for i in range(blocks[0].size)]
    return blocks


def percentile_intervals(
    rounds: Rounds, qs: Sequence[float], seed: int = 0, confidence: float = CONFIDENCE
) -> list[list[float] | None]:
    """Intervals of several percentiles from one round bootstrap; None for a single sample."""
    blocks = _resampleable(_blocks(rounds))
    pooled = _pooled(blocks)
    if pooled.size < 2:
        return [None for _ in qs]
    values = _resampled_percentiles(blocks, _picks(np.random.default_rng(seed), len(blocks)), qs)
    return [_interval(values[i], float(np.percentile(pooled, q)), len(blocks), confidence) for i, q in enumerate(qs)]


def percentile_interval(rounds: Rounds, q: float, seed: int = 0, confidence: float = CONFIDENCE) -> list[float] | None:
    """Interval of the q-th percentile, resampling rounds (single samples when there is one round)."""
    return percentile_intervals(rounds, [q], seed, confidence)[0]


def _ratio_inputs(a: Rounds, b: Rounds) -> tuple[list[np.ndarray], list[np.ndarray]]:
    a_blocks, b_blocks = _blocks(a), _blocks(b)
    for blocks in (a_blocks, b_blocks):
        pooled = _pooled(blocks)
        if pooled.size < 2:
            raise BenchmarkError(f"{pooled.size} latency sample(s) cannot bound a ratio; measure more iterations")
        if not np.all(np.isfinite(pooled)) or np.any(pooled <= 0):
            raise BenchmarkError("latency samples must be positive, finite milliseconds")
    return a_blocks, b_blocks


def ratio_intervals(
    a: Rounds, b: Rounds, qs: Sequence[float], seed: int = 0, confidence: float = CONFIDENCE, paired: bool = False
) -> list[list[float]]:
    """Intervals of percentile_q(a) / percentile_q(b) for each q.

    ``paired``: a and b were measured interleaved (round i of a ran beside round i of b), so the same
    rounds are drawn for both and drift common to a round cancels in the ratio; otherwise the rounds
    of each side are resampled independently.
    """
    a_blocks, b_blocks = _ratio_inputs(a, b)
    estimates = [float(np.percentile(_pooled(a_blocks), q) / np.percentile(_pooled(b_blocks), q)) for q in qs]
    rng = np.random.default_rng(seed)
    if paired:
        if not can_pair(a_blocks, b_blocks):
            raise ValueError("paired rounds need the same number of rounds of the same sizes on both sides")
        picks = _picks(rng, len(a_blocks))
        values = _resampled_percentiles(a_blocks, picks, qs) / _resampled_percentiles(b_blocks, picks, qs)
        rounds = len(a_blocks)
    else:
        a_blocks, b_blocks = _resampleable(a_blocks), _resampleable(b_blocks)
        values = _resampled_percentiles(a_blocks, _picks(rng, len(a_blocks)), qs) / _resampled_percentiles(
            b_blocks, _picks(rng, len(b_blocks)), qs
        )
        rounds = min(len(a_blocks), len(b_blocks))
    return [_interval(values[i], estimates[i], rounds, confidence) for i in range(len(qs))]


def ratio_interval(a: Rounds, b: Rounds, q: float, seed: int = 0, confidence: float = CONFIDENCE) -> list[float]:
    """Interval of percentile_q(a) / percentile_q(b), resampling the rounds of each side independently."""
    return ratio_intervals(a, b, [q], seed, confidence)[0]


def paired_ratio_interval(a: Rounds, b: Rounds, q: float, seed: int = 0, confidence: float = CONFIDENCE) -> list[float]:
    """As ratio_interval, for two models measured interleaved (see ratio_intervals)."""
    return ratio_intervals(a, b, [q], seed, confidence, paired=True)[0]


def can_pair(a: Rounds, b: Rounds) -> bool:
    """Round i of a can stand beside round i of b: as many rounds, of the same sizes, at least two."""
    a_sizes, b_sizes = [x.size for x in _blocks(a)], [x.size for x in _blocks(b)]
    return a_sizes == b_sizes and len(a_sizes) > 1


def _round_medians(rounds: Rounds) -> np.ndarray:
    return np.array([np.median(block) for block in _blocks(rounds)])


def slower_p_value(current: Rounds, baseline: Rounds, alternative: str = "greater") -> float:
    """Mann-Whitney U p-value on round medians (default one-sided: current's are larger)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(
            sps.mannwhitneyu(_round_medians(current), _round_medians(baseline), alternative=alternative).pvalue
        )


def paired_slower_p_value(current: Rounds, baseline: Rounds, alternative: str = "greater") -> float:
    """Wilcoxon signed-rank p-value on the log ratios of round medians, round by round (default
    one-sided: current's exceed baseline's)."""
    diff = np.log(_round_medians(current)) - np.log(_round_medians(baseline))
    if not np.any(diff):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(sps.wilcoxon(diff, alternative=alternative).pvalue)


def smallest_p_value(a_rounds: int, b_rounds: int, paired: bool) -> float:
    """The smallest two-sided p-value the round-median test can reach with this many rounds: below some
    round count no difference, however large, can reach a small alpha (Wilcoxon needs 8 rounds for 0.01)."""
    if paired:
        return 2.0 / 2.0**a_rounds if a_rounds > 0 else 1.0
    return min(1.0, 2.0 / math.comb(a_rounds + b_rounds, a_rounds)) if a_rounds and b_rounds else 1.0
