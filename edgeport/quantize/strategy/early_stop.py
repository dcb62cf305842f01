"""Stop measuring an option once a faithful option of its kind is clearly faster.

The runtime choice measures every option (fp32 and each int8 file, on each installed runtime) side by side
for as many rounds as the ship decision takes, though only the fastest faithful option of each kind can
matter: the fastest faithful fp32 is the baseline, the fastest faithful int8 what ships. On all-MiniLM-L6-v2
(Intel Xeon, AVX-512 VNNI, 2 cores) seven options took 10 s of a 43 s quantization, four of them at 1.1-1.3x
the p50 of NNCF's int8 on OpenVINO from the first rounds on. So after each round (from the second on), the
fastest option of each kind whose verdict is not known yet is judged (its verdict is needed anyway), and an
option that the fastest faithful one of its kind beats clearly, by a margin and beyond the noise of the
rounds so far, is measured no more. Its figures are those of the rounds it ran.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

import numpy as np

from edgeport.benchmarks.latency import StopEarly
from edgeport.benchmarks.speedup import paired_speedup
from edgeport.quantize.strategy.timing import SHIP_CONFIDENCE

# The faithful option's p50 over the other's, at most: stricter than the ship rule's 0.95x, since the
# rounds so far are fewer than the decision's.
STOP_BELOW = 0.9
MIN_ROUNDS = 2  # rounds every option runs before any is stopped

Judge = Callable[[str], bool]  # an option's label -> faithful (judging it when its verdict is not known yet)


def clearly_faster(fast: list[float], slow: list[float], sizes: list[int]) -> bool:
    """``fast``'s p50 at most STOP_BELOW times ``slow``'s, the interval of that ratio (rounds paired, at the
    ship decision's confidence) wholly below 1. Both ran the rounds of ``sizes`` side by side."""
    if np.percentile(fast, 50) > STOP_BELOW * np.percentile(slow, 50):  # no margin: no interval to compute
        return False
    interval = paired_speedup(fast, slow, sizes, confidence=SHIP_CONFIDENCE).ratio_ci
    return interval is not None and interval[1] < 1.0  # None: too few samples to bound it, not clear yet


def stop_when_beaten(kinds: Mapping[str, str], faithful: Judge, keep: Collection[str] = ()) -> StopEarly:
    """A ``stop_early`` for measure_interleaved: ``kinds`` maps each label to its kind (options of one kind
    compete: "fp32", "int8"); ``faithful`` gives an option's verdict; ``keep``: labels measured every round
    whatever (the reference the options' ratios are read against)."""

    def stop(samples: Mapping[str, list[float]], sizes: list[int]) -> list[str]:
        if len(sizes) < MIN_ROUNDS:
            return []
        stopped: list[str] = []
        for kind in dict.fromkeys(kinds.values()):
            ranked = sorted((label for label in samples if kinds[label] == kind), key=lambda x: np.median(samples[x]))
            best = next((label for label in ranked if faithful(label)), None)
            if best is None:
                continue
            stopped += [
                label
                for label in ranked[ranked.index(best) + 1 :]
                if label not in keep and clearly_faster(samples[best], samples[label], sizes)
            ]
        return stopped

    return stop


__all__ = ["MIN_ROUNDS", "STOP_BELOW", "clearly_faster", "stop_when_beaten"]
