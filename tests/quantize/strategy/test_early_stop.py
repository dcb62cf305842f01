"""The runtime choice stops measuring an option once a faithful option of its kind is clearly faster."""

from __future__ import annotations

import numpy as np

from edgeport.quantize.strategy.early_stop import MIN_ROUNDS, clearly_faster, stop_when_beaten


def _samples(medians: list[float], seed: int, per_round: int = 10) -> list[float]:
    rng = np.random.default_rng(seed)
    return np.concatenate([m * (1 + 0.01 * rng.standard_normal(per_round)) for m in medians]).tolist()


SIZES = [10, 10]


def test_clearly_faster_needs_the_margin_and_an_interval_below_one():
    fast = _samples([8.0, 8.0], seed=0)
    assert clearly_faster(fast, _samples([10.0, 10.0], seed=1), SIZES)  # 0.8x in both rounds
    assert not clearly_faster(fast, _samples([8.5, 8.5], seed=1), SIZES)  # 0.94x: not by the margin
    # 0.8x in one round, 1.25x in the other (a slow session): the margin is met on the p50, not beyond noise
    assert not clearly_faster(_samples([8.0, 12.5], seed=0), _samples([10.0, 10.0], seed=1), SIZES)


def test_only_a_faithful_option_stops_the_slower_ones_of_its_kind():
    samples = {
        "fp32 on ort": _samples([10.0, 10.0], seed=0),
        "fp32 on openvino": _samples([20.0, 20.0], seed=1),
        "int8 on ort": _samples([3.0, 3.0], seed=2),  # fastest, not faithful
        "int8 on openvino": _samples([5.0, 5.0], seed=3),  # faithful
        "int8 (other) on ort": _samples([9.0, 9.0], seed=4),
        "int8 (other) on openvino": _samples([5.2, 5.2], seed=5),  # as fast as the faithful one: kept
    }
    kinds = {label: label.split(" ")[0] for label in samples}
    judged = []

    def faithful(label):
        judged.append(label)
        return label != "int8 on ort"

    stop = stop_when_beaten(kinds, faithful)
    assert sorted(stop(samples, SIZES)) == ["fp32 on openvino", "int8 (other) on ort"]
    # judged fastest first, each kind only until a faithful one is found: the slower ones need no verdict
    assert judged == ["fp32 on ort", "int8 on ort", "int8 on openvino"]


def test_nothing_stops_before_the_second_round_and_the_reference_never_stops():
    samples = {"fp32 on ort": _samples([10.0, 10.0], seed=0), "fp32 on openvino/f32": _samples([5.0, 5.0], seed=1)}
    kinds = dict.fromkeys(samples, "fp32")
    stop = stop_when_beaten(kinds, lambda label: True)
    assert stop(samples, SIZES) == ["fp32 on ort"]
    first = {label: s[:10] for label, s in samples.items()}
    assert MIN_ROUNDS == 2 and stop(first, [10]) == []
    assert stop_when_beaten(kinds, lambda label: True, keep={"fp32 on ort"})(samples, SIZES) == []
