"""Whether one of two classifiers is more accurate than the other beyond chance, on the same samples.

Two accuracies on one validation split differ by a sample or two by chance alone (270 digits: one image
is 0.37 points), and a decision resting on one image flips with the seed. Both models saw the same
samples, so the question is paired: of the samples where exactly one of them is right, does one model
win clearly more than half? That is the exact McNemar test, a two-sided binomial test with p = 1/2 on
the discordant samples; the samples both get right or both get wrong say nothing about which is better.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

import numpy as np

from edgeport.errors import ConfigError

ALPHA = 0.05  # a difference counts when chance alone would show one at least as large less than 5% of the time


@dataclass(frozen=True)
class PairedComparison:
    """A and B judged on the same samples."""

    a_only: int  # samples A got right and B got wrong
    b_only: int  # samples B got right and A got wrong
    samples: int

    @property
    def p_value(self) -> float:
        """Two-sided exact McNemar p: twice the binomial tail of the smaller count, at most 1."""
        n, low = self.a_only + self.b_only, min(self.a_only, self.b_only)
        if n == 0:
            return 1.0
        return min(1.0, 2 * sum(comb(n, k) for k in range(low + 1)) / 2**n)  # exact in integers

    @property
    def a_better(self) -> bool:
        return self.a_only > self.b_only and self.p_value < ALPHA

    @property
    def b_better(self) -> bool:
        return self.b_only > self.a_only and self.p_value < ALPHA

    def text(self, a: str, b: str) -> str:
        """e.g. "exact McNemar test on the 3 of 270 samples where they differ (2 for A, 1 for B): p = 1.00"."""
        return (
            f"exact McNemar test on the {self.a_only + self.b_only} of {self.samples} samples where they differ "
            f"({self.a_only} for {a}, {self.b_only} for {b}): p = {self.p_value:.2g}"
        )

    def describe(self) -> dict:
        return {
            "test": "exact McNemar (two-sided)",
            "samples": self.samples,
            "a_only": self.a_only,
            "b_only": self.b_only,
            "p_value": round(self.p_value, 6),
            "alpha": ALPHA,
        }


def compare_paired(a_correct: np.ndarray, b_correct: np.ndarray) -> PairedComparison:
    """``a_correct``/``b_correct``: whether each model got each sample right, in the same order."""
    a, b = np.asarray(a_correct, dtype=bool).ravel(), np.asarray(b_correct, dtype=bool).ravel()
    if a.shape != b.shape:
        raise ConfigError(f"a paired comparison needs the same samples: {a.size} outcomes against {b.size}")
    return PairedComparison(int(np.sum(a & ~b)), int(np.sum(b & ~a)), int(a.size))


def pack_outcomes(correct: np.ndarray) -> str:
    """Per-sample outcomes in a short text a JSON record can keep: "COUNT:HEX" of the packed bits."""
    correct = np.asarray(correct, dtype=bool).ravel()
    return f"{correct.size}:{np.packbits(correct).tobytes().hex()}"


def unpack_outcomes(text: str) -> np.ndarray:
    count, _, packed = text.partition(":")
    return np.unpackbits(np.frombuffer(bytes.fromhex(packed), dtype=np.uint8))[: int(count)].astype(bool)


__all__ = ["ALPHA", "PairedComparison", "compare_paired", "pack_outcomes", "unpack_outcomes"]
