"""int8 pays only when faster by the margin and beyond the measurement's noise (paired round intervals)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeport.benchmarks.records import BenchResult
from edgeport.benchmarks.speedup import Speedup, fastest_beyond_noise, speedup_of
from edgeport.core.bench_defaults import PAYS_BELOW
from edgeport.quantize.strategy.timing import EXTRA_LOOKS, SHIP_CONFIDENCE, conclusive


def _result(rounds: list[np.ndarray]) -> BenchResult:
    samples = np.concatenate(rounds).tolist()
    settings = {"batch": 1, "rounds_run": len(rounds), "round_sizes": [len(r) for r in rounds]}
    return BenchResult("m.onnx", "0" * 64, settings, {}, samples)


def _rounds(medians: list[float], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [median * (1 + 0.01 * rng.standard_normal(40)) for median in medians]


def test_a_steady_gain_pays_and_its_interval_lies_below_one():
    fp32 = _rounds([10.0, 10.5, 9.8, 10.2, 10.1, 9.9], seed=0)
    int8 = _rounds([8.0, 8.4, 7.8, 8.2, 8.1, 7.9], seed=1)  # 0.8x in every round, whatever the drift
    speedup = speedup_of(_result(int8), _result(fp32))
    assert speedup.ratio == pytest.approx(0.8, abs=0.02)
    assert speedup.ratio_ci is not None and speedup.ratio_ci[0] <= speedup.ratio <= speedup.ratio_ci[1] < 1.0
    assert speedup.pays and speedup.why_not() == ""


def test_a_gain_that_comes_and_goes_between_rounds_does_not_pay():
    fp32 = _rounds([10.0] * 6, seed=0)
    int8 = _rounds([6.0, 12.0, 6.5, 11.5, 7.0, 8.0], seed=1)  # median below fp32's, rounds on both sides
    speedup = speedup_of(_result(int8), _result(fp32))
    assert speedup.ratio <= PAYS_BELOW
    assert speedup.ratio_ci is not None and speedup.ratio_ci[1] >= 1.0
    assert not speedup.pays and "beyond noise" in speedup.why_not()


def test_the_margin_decides_before_the_interval():
    assert not Speedup(10.0, 9.7, (0.96, 0.98)).pays  # beyond noise, but a 3 % win: within the margin
    assert "pays from 0.95x" in Speedup(10.0, 9.7, (0.96, 0.98)).why_not()
    assert Speedup(10.0, 9.0, None).pays  # no interval (too few rounds): the point ratio alone
    assert Speedup(10.0, 9.0, (0.85, 0.95)).text() == "0.90x [0.85, 0.95]"
    assert Speedup(1.0, 0.952, None).text() == "0.952x"  # not "0.95x": the threshold it missed


def test_a_tie_keeps_the_preferred_option_and_only_a_clear_winner_replaces_it():
    preferred = _result(_rounds([10.0] * 6, seed=0))
    for seed in range(5):  # a later option at the same speed: whichever p50 came out lower, the first stays
        tied = _result(_rounds([10.0] * 6, seed=seed + 1))
        assert fastest_beyond_noise(["first", "tied"], {"first": preferred, "tied": tied}) == "first"
    results = {
        "first": preferred,
        "slightly": _result(_rounds([9.7] * 6, seed=7)),  # 0.97x: faster beyond noise, within the margin
        "clearly": _result(_rounds([8.0] * 6, seed=8)),
    }
    assert fastest_beyond_noise(["first", "slightly", "clearly"], results) == "clearly"
    del results["clearly"]
    assert fastest_beyond_noise(["first", "slightly"], results) == "first"
    # the first of the others that the fastest does not clearly beat: a tie with it keeps the earlier one
    results = {"first": preferred, "a": _result(_rounds([8.0] * 6, seed=9)), "b": _result(_rounds([8.0] * 6, seed=10))}
    assert fastest_beyond_noise(["first", "a", "b"], results) == "a"
    assert fastest_beyond_noise(["first", "b", "a"], results) == "b"


def test_rounds_that_cannot_be_paired_give_no_interval():
    int8 = _rounds([8.0] * 6, seed=1)
    int8[0] = int8[0][:30]  # round 0 of int8 was cut short: round i no longer stands beside round i
    speedup = speedup_of(_result(int8), _result(_rounds([10.0] * 6, seed=0)))
    assert speedup.ratio_ci is None and speedup.pays


def test_a_measurement_followed_by_another_keeps_every_round():
    first, more = _result(_rounds([10.0] * 5, seed=0)), _result(_rounds([11.0] * 3, seed=1))
    joined = first.followed_by(more)
    assert joined.samples_ms == first.samples_ms + more.samples_ms
    assert joined.settings["round_sizes"] == [40] * 8 and joined.settings["rounds_run"] == 8
    assert first.stats["p50_ms"] < joined.stats["p50_ms"] < more.stats["p50_ms"]


def test_an_open_verdict_is_measured_again_until_it_is_decided():
    """Four rounds at 0.8x and one at 1.2x (a slow session): the point ratio pays, the interval reaches
    1.0. Measured again, steady rounds at 0.8x decide it: it pays, at the confidence split over the looks."""
    fp32 = _result(_rounds([10.0] * 5, seed=0))
    int8 = _result(_rounds([8.0, 8.0, 12.0, 8.0, 8.0], seed=1))
    assert speedup_of(int8, fp32, confidence=SHIP_CONFIDENCE).open
    calls = []

    def again():
        calls.append(1)
        return _result(_rounds([8.0] * 5, seed=2 + len(calls))), _result(_rounds([10.0] * 5, seed=9 + len(calls)))

    speedup, looks = conclusive(int8, fp32, again)
    assert looks == len(calls) >= 1 and speedup.pays and not speedup.open
    assert speedup.confidence == SHIP_CONFIDENCE and "98.3%" in Speedup(10, 9.4, (0.9, 1.1), SHIP_CONFIDENCE).why_not()


def test_a_decided_verdict_is_not_measured_again_and_an_open_one_at_most_extra_looks_times():
    fp32 = _result(_rounds([10.0] * 5, seed=0))
    never = lambda: pytest.fail("measured again")  # noqa: E731
    assert conclusive(_result(_rounds([8.0] * 5, seed=1)), fp32, never)[1] == 0  # pays
    assert conclusive(_result(_rounds([9.9] * 5, seed=1)), fp32, never)[1] == 0  # within the margin: does not pay
    noisy = _rounds([7.0, 12.0, 7.5, 11.5, 8.0], seed=1)  # open, and every look as open again
    speedup, looks = conclusive(_result(noisy), fp32, lambda: (_result(noisy), fp32))
    assert looks == EXTRA_LOOKS and speedup.open and not speedup.pays


def test_one_stopped_early_is_compared_on_the_rounds_both_ran():
    """b stopped after two rounds (measure_interleaved's stop_early); a ran three more, on a machine that got
    twice as slow. The ratio and its interval come from the two rounds that ran side by side."""
    a = _result(_rounds([10.0, 10.0, 20.0, 20.0, 20.0], seed=0))
    b = _result(_rounds([12.5, 12.5], seed=1))
    b.settings["stopped_early"] = True  # as measure_interleaved records it
    speedup = speedup_of(a, b)
    assert speedup.ratio == pytest.approx(0.8, abs=0.02)
    assert speedup.fp32_p50_ms == pytest.approx(12.5, rel=0.02) and speedup.int8_p50_ms == pytest.approx(10, rel=0.02)
    assert speedup.ratio_ci is not None and speedup.ratio_ci[1] < 1.0
    # and the other way round
    assert speedup_of(b, a).ratio == pytest.approx(1.25, abs=0.03)
    # measured again and joined, its rounds no longer line up with a's first ones: each read whole, unpaired
    joined = b.followed_by(_result(_rounds([25.0] * 3, seed=2)))
    assert joined.settings["stopped_early"] is False
    unpaired = speedup_of(a.followed_by(_result(_rounds([20.0] * 3, seed=3))), joined)
    assert unpaired.ratio_ci is None and unpaired.ratio == pytest.approx(20 / 25, abs=0.03)
