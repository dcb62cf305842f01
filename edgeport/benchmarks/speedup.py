"""Whether int8 pays against its fp32 source: the p50 ratio of two models measured interleaved, with
its interval, and the one rule edgeport ships by.

A point ratio alone decided before, and decisions near the threshold flipped between runs: the
PP-OCRv4 recognizer's int8 model shipped at 0.94x fp32's p50 in one run and measured 1.01x in the next
(AMD EPYC Zen 1, 2 cores). int8 now pays when its p50 ratio is at most ``PAYS_BELOW`` and the 95 %
interval of that ratio (paired bootstrap over the measurement's rounds, benchmarks/rounds.py: round i
of int8 ran beside round i of fp32) lies wholly below 1: faster by a clear margin, and faster beyond
this measurement's noise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edgeport.benchmarks.records import BenchResult
from edgeport.benchmarks.rounds import CONFIDENCE, can_pair, ratio_intervals, round_sizes, split_rounds
from edgeport.core.bench_defaults import PAYS_BELOW
from edgeport.errors import BenchmarkError


@dataclass(frozen=True)
class Speedup:
    """int8's p50 over fp32's, from one interleaved measurement of the two."""

    fp32_p50_ms: float
    int8_p50_ms: float
    ratio_ci: tuple[float, float] | None = None  # None: too few samples or rounds to bound it
    confidence: float = CONFIDENCE  # of ratio_ci

    @property
    def ratio(self) -> float:
        return self.int8_p50_ms / self.fp32_p50_ms

    @property
    def pays(self) -> bool:
        return self.ratio <= PAYS_BELOW and (self.ratio_ci is None or self.ratio_ci[1] < 1.0)

    def text(self) -> str:
        """``0.94x [0.88, 1.03]``: the ratio and, where known, its interval; three decimals next to the
        threshold, where two would print 0.952 as the very figure it missed."""
        point = f"{self.ratio:.3f}x" if abs(self.ratio - PAYS_BELOW) < 0.005 else f"{self.ratio:.2f}x"
        if self.ratio_ci is None:
            return point
        return f"{point} [{self.ratio_ci[0]:.2f}, {self.ratio_ci[1]:.2f}]"

    def why_not(self) -> str:
        """Why int8 does not pay ("" when it does)."""
        if self.pays:
            return ""
        if self.ratio > PAYS_BELOW:
            return f"it pays from {PAYS_BELOW:.2f}x"
        return f"not faster beyond noise: the {percent(self.confidence)} interval reaches 1.0"

    @property
    def open(self) -> bool:
        """The point ratio pays but the interval reaches 1.0: more rounds may decide it either way."""
        return self.ratio <= PAYS_BELOW and not self.pays


def percent(fraction: float) -> str:
    """0.95 as "95%", 0.98333 as "98.3%": a confidence split over several looks keeps its decimal."""
    return f"{fraction * 100:.1f}".rstrip("0").rstrip(".") + "%"


def speedup_of(int8: BenchResult, fp32: BenchResult, seed: int = 0, confidence: float = CONFIDENCE) -> Speedup:
    """int8 against fp32, two results of one ``measure_interleaved`` call (or of several, joined round by
    round: ``BenchResult.followed_by``); the interval pairs their rounds."""
    sizes = _common_rounds(int8, fp32)
    if sizes is not None:  # one stopped early (measure_interleaved's stop_early): the rounds both ran, side by side
        ran = sum(sizes)
        return paired_speedup(int8.samples_ms[:ran], fp32.samples_ms[:ran], sizes, seed, confidence)
    interval = _paired_interval(
        split_rounds(int8.samples_ms, int8.settings), split_rounds(fp32.samples_ms, fp32.settings), seed, confidence
    )
    return Speedup(float(fp32.stats["p50_ms"]), float(int8.stats["p50_ms"]), interval, confidence)


def paired_speedup(
    int8: Sequence[float], fp32: Sequence[float], sizes: list[int], seed: int = 0, confidence: float = CONFIDENCE
) -> Speedup:
    """int8 against fp32 from their raw samples, taken side by side in rounds of ``sizes`` runs each."""
    interval = _paired_interval(
        split_rounds(int8, {"round_sizes": sizes}), split_rounds(fp32, {"round_sizes": sizes}), seed, confidence
    )
    return Speedup(float(np.percentile(fp32, 50)), float(np.percentile(int8, 50)), interval, confidence)


def _paired_interval(
    int8_rounds: list[np.ndarray], fp32_rounds: list[np.ndarray], seed: int, confidence: float
) -> tuple[float, float] | None:
    """The interval of int8's p50 over fp32's, their rounds paired; None where they cannot be paired or are too
    few to bound it (the point ratio decides alone then)."""
    if not can_pair(int8_rounds, fp32_rounds):
        return None
    try:
        low, high = ratio_intervals(int8_rounds, fp32_rounds, [50], seed, confidence, paired=True)[0]
    except BenchmarkError:
        return None
    return float(low), float(high)


def _common_rounds(a: BenchResult, b: BenchResult) -> list[int] | None:
    """Where one of two results of one measurement stopped early (measure_interleaved's ``stop_early``), the
    sizes of the rounds both ran (the first ones, which ran side by side); else None. A result joined with
    another measurement (``followed_by``) is never cut: its rounds no longer line up."""
    a_sizes = round_sizes(a.settings, len(a.samples_ms))
    b_sizes = round_sizes(b.settings, len(b.samples_ms))
    shared = min(len(a_sizes), len(b_sizes))
    shorter = a if len(a_sizes) < len(b_sizes) else b
    if (
        len(a_sizes) == len(b_sizes)
        or not shorter.settings.get("stopped_early")
        or a_sizes[:shared] != b_sizes[:shared]
    ):
        return None
    return a_sizes[:shared]


def tied_with_fastest(
    preferred: Sequence[str], results: Mapping[str, BenchResult], confidence: float = CONFIDENCE
) -> list[str]:
    """Those of ``preferred`` (names in ``results``, one interleaved measurement) that the point-fastest does
    not beat by the ship rule (``Speedup.pays``: a clear margin, beyond noise), in the order given; the
    point-fastest among them. Ranking by the point p50 alone made ties coin tosses: two same-seed runs of a
    small CNN shipped different int8 files (static per-channel against the classifier head in float, both
    about 0.03 ms), so the caller breaks a tie by what does not change between runs."""
    fastest = min(preferred, key=lambda name: results[name].stats["p50_ms"])
    return [
        name
        for name in preferred
        if name == fastest or not speedup_of(results[fastest], results[name], confidence=confidence).pays
    ]


def fastest_beyond_noise(
    preferred: Sequence[str], results: Mapping[str, BenchResult], confidence: float = CONFIDENCE
) -> str:
    """The first of ``preferred`` (most preferred first) that the point-fastest does not beat clearly."""
    return tied_with_fastest(preferred, results, confidence)[0]


__all__ = ["Speedup", "fastest_beyond_noise", "paired_speedup", "percent", "speedup_of", "tied_with_fastest"]
