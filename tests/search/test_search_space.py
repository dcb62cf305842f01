"""Search space expansion, selection policies and halving schedules, without training anything."""

from __future__ import annotations

import numpy as np
import pytest

from edgeport.benchmarks import cpu_fingerprint
from edgeport.config import RunConfig
from edgeport.core.paired import pack_outcomes, unpack_outcomes
from edgeport.errors import ConfigError
from edgeport.search.halving import rung_epochs
from edgeport.search.objective import choose, pareto_front, violations
from edgeport.search.settings import SearchSettings, parse_duration, searchable_parameters
from edgeport.search.space import expand

CPU = cpu_fingerprint()


def settings(space, **kw) -> SearchSettings:
    return SearchSettings.model_validate({"space": space, **kw})


def test_grid_expands_every_combination_and_merges_options_the_backend_ignores():
    space = {
        "student.model.width": [1, 2],
        "quantize.backend": ["none", "ort-static"],
        "quantize.per_channel": [True, False],
    }
    candidates, info = expand(settings(space), RunConfig(), CPU)
    assert info["space_size"] == 8
    # "none" ignores per_channel: its two points per width collapse into one
    assert info["merged_duplicates"] == 2 and len(candidates) == 6
    none = [c for c in candidates if c.params["quantize.backend"] == "none"]
    assert all(c.params["quantize.per_channel"] is None and c.quant_config is None for c in none)
    assert {c.config.student.model for c in candidates} == {"cnn:depth=2,width=1", "cnn:depth=2,width=2"}
    per_tensor = [c for c in candidates if c.params["quantize.per_channel"] is False]
    assert all(c.quant_config.per_channel is False for c in per_tensor)
    assert len({c.id for c in candidates}) == len(candidates)


def test_random_strategy_draws_n_iter_distinct_candidates_reproducibly():
    space = {"student.temperature": [1.0, 2.0, 4.0, 8.0], "student.alpha": [0.5, 0.7, 0.9]}
    first, _ = expand(settings(space, strategy="random", n_iter=5, seed=3), RunConfig(), CPU)
    again, _ = expand(settings(space, strategy="random", n_iter=5, seed=3), RunConfig(), CPU)
    other, _ = expand(settings(space, strategy="random", n_iter=5, seed=4), RunConfig(), CPU)
    assert [c.id for c in first] == [c.id for c in again]
    assert len({c.id for c in first}) == 5 and [c.id for c in first] != [c.id for c in other]


def test_sub_grids_and_a_backend_option_combination_that_is_not_supported():
    space = [
        {"quantize.backend": ["ort-static"], "quantize.calibration_method": ["minmax", "entropy"]},
        {"quantize.backend": ["ort-dynamic"]},
    ]
    candidates, _ = expand(settings(space), RunConfig(), CPU)
    assert sorted((c.params["quantize.backend"], c.params.get("quantize.calibration_method")) for c in candidates) == [
        ("ort-dynamic", None),
        ("ort-static", "entropy"),
        ("ort-static", "minmax"),
    ]


@pytest.mark.parametrize(
    "space, message",
    [
        ({}, "search.space is empty"),
        ({"teacher.colour": [1]}, "unknown parameter"),
        ({"student.model.width": [[1]]}, "not a number"),
        ({"student.model.depthh": [2]}, "unknown option"),
        ({"bench.threads": [0]}, "bench.threads"),
    ],
)
def test_bad_spaces_are_refused(space, message):
    with pytest.raises(ConfigError, match=message):
        expand(settings(space), RunConfig(), CPU)


def _trial(tid, acc, p90, fp32=None, teacher=99.0, position=0, status="ok"):
    return {
        "id": tid,
        "position": position,
        "status": status,
        "metrics": {
            "val_accuracy": acc,
            "fp32_val_accuracy": fp32 if fp32 is not None else acc,
            "teacher_val_accuracy": teacher,
            "latency": {"p90_ms": p90, "p50_ms": p90 / 2},
        },
    }


SELECTION = {
    "policy": "max-accuracy",
    "latency_metric": "p90",
    "latency_budget_ms": None,
    "max_accuracy_drop": None,
    "accuracy_reference": "student",
    "accuracy_floor": None,
    "latency_weight": 1.0,
}


def test_pareto_front_keeps_only_undominated_trials():
    trials = [
        _trial("a", 98, 0.3),
        _trial("b", 97, 0.2),
        _trial("c", 96, 0.25),
        _trial("d", 98, 0.4),
        _trial("e", 99, 0.9),
        _trial("f", 50, 0.1, status="failed"),
    ]
    assert pareto_front(trials, "p90") == ["a", "b", "e"]


def test_policies_choose_as_documented():
    trials = [
        _trial("fast", 95, 0.1, fp32=97, position=0),
        _trial("mid", 97, 0.3, fp32=97.5, position=1),
        _trial("slow", 99, 0.9, fp32=99, position=2),
    ]
    assert choose(trials, SELECTION)[0] == "slow"
    assert choose(trials, {**SELECTION, "latency_budget_ms": 0.5})[0] == "mid"
    # "fast" lost 2 points to quantization: out with max_accuracy_drop 1
    assert violations(trials[0], {**SELECTION, "max_accuracy_drop": 1.0})
    assert choose(trials, {**SELECTION, "max_accuracy_drop": 1.0, "latency_budget_ms": 0.2})[0] is None
    assert choose(trials, {**SELECTION, "max_accuracy_drop": 2.0, "accuracy_reference": "teacher"})[0] == "slow"
    assert choose(trials, {**SELECTION, "policy": "min-latency", "accuracy_floor": 96.0})[0] == "mid"
    assert choose(trials, {**SELECTION, "policy": "weighted", "latency_weight": 5.0})[0] == "mid"
    assert choose(trials, {**SELECTION, "policy": "weighted", "latency_weight": 1.0})[0] == "slow"


def _outcomes(wrong: list[int], samples: int = 270) -> str:
    correct = np.ones(samples, dtype=bool)
    correct[wrong] = False
    return pack_outcomes(correct)


def test_max_accuracy_takes_the_fastest_of_the_trials_within_noise_of_the_most_accurate():
    # "slow" gets one image more right than "fast" (98.89% against 98.52% of 270): within noise
    slow, fast = _trial("slow", 98.89, 0.9, position=0), _trial("fast", 98.52, 0.3, position=1)
    slow["metrics"]["val_outcomes"], fast["metrics"]["val_outcomes"] = _outcomes([0, 1, 2]), _outcomes([0, 1, 2, 3])
    worse = _trial("worse", 94.07, 0.1, position=2)  # 16 images fewer: beyond chance (p < 0.001)
    worse["metrics"]["val_outcomes"] = _outcomes(list(range(16)))
    chosen, reason = choose([slow, fast, worse], SELECTION)
    assert chosen == "fast" and "within noise of the highest (98.89%, trial slow" in reason
    # without per-sample outcomes (an older cache entry) the higher accuracy wins as before
    del fast["metrics"]["val_outcomes"]
    assert choose([slow, fast, worse], SELECTION)[0] == "slow"


def test_outcomes_survive_the_record():
    correct = np.arange(13) % 3 == 0
    assert np.array_equal(unpack_outcomes(pack_outcomes(correct)), correct)


def _twin(trial: dict, kind: str, export: str) -> dict:
    trial["metrics"].update(kind=kind, latency_batch=1, latency_threads=1)
    trial["artifacts"] = {"stage_keys": {"export": export}}
    return trial


def test_an_int8_trial_no_faster_than_its_own_fp32_is_no_answer():
    fp32 = _twin(_trial("fp32", 98, 0.30, position=0), "onnx-fp32", "student-a")
    slow_int8 = _twin(_trial("int8", 98, 0.29, position=1), "onnx-int8", "student-a")  # 0.97x: noise, no pay
    other = _twin(_trial("other-int8", 98, 0.20, position=2), "onnx-int8", "student-b")  # no twin measured
    trials = [fp32, slow_int8, other]
    why = violations(slow_int8, SELECTION, trials)
    assert why and "int8 at 0.97x the p90 of its own fp32 (trial fp32)" in why[0]
    assert not violations(other, SELECTION, trials) and not violations(slow_int8, SELECTION)
    assert choose(trials, {**SELECTION, "policy": "min-latency", "accuracy_floor": 90.0})[0] == "other-int8"
    fast_int8 = _twin(_trial("int8", 98, 0.2, position=1), "onnx-int8", "student-a")  # 0.67x: pays
    assert not violations(fast_int8, SELECTION, [fp32, fast_int8])
    # 0.67x by its p90, but the two trials' intervals overlap: not faster beyond noise
    fp32["metrics"]["latency"]["p90_ci_ms"] = [0.18, 0.40]
    fast_int8["metrics"]["latency"]["p90_ci_ms"] = [0.15, 0.26]
    why = violations(fast_int8, SELECTION, [fp32, fast_int8])
    assert why and "not faster beyond noise: its interval's top over fp32's bottom is 1.44x" in why[0]
    fast_int8["metrics"]["latency"]["p90_ci_ms"] = [0.15, 0.17]  # wholly below fp32's: it pays
    assert not violations(fast_int8, SELECTION, [fp32, fast_int8])


def test_an_fp32_trial_outside_its_tolerance_on_its_runtime_is_neither_chosen_nor_a_baseline():
    """fp32 at bf16 on OpenVINO, judged as OpenVINO runs it and found 3 points below fp32 on onnxruntime: not
    feasible, and an int8 trial need not beat it (quantize's rule: the fastest *faithful* fp32)."""
    bf16 = _twin(_trial("bf16", 95, 0.10, position=0), "onnx-fp32", "student-a")
    bf16["metrics"]["within_tolerance"] = False
    bf16["metrics"]["judged_on_runtime"] = {"runtime": "openvino/bf16", "within_tolerance": False}
    int8 = _twin(_trial("int8", 98, 0.20, position=1), "onnx-int8", "student-a")
    why = violations(bf16, SELECTION, [bf16, int8])
    assert why == ["fp32 outside its tolerance (the guard's verdict on val, as openvino/bf16 runs it)"]
    assert not violations(int8, SELECTION, [bf16, int8])  # 2x bf16's latency, but bf16 is no answer
    assert choose([bf16, int8], {**SELECTION, "policy": "min-latency", "accuracy_floor": 90.0})[0] == "int8"
    bf16["metrics"]["within_tolerance"] = True  # faithful: now int8 must beat it, and does not
    assert violations(int8, SELECTION, [bf16, int8])


def test_halving_schedule():
    assert rung_epochs(9, 1, 3, 9) == [1, 3]
    assert rung_epochs(9, 1, 3, 3) == [3]
    assert rung_epochs(3, 1, 3, 3) == [1]
    assert rung_epochs(12, 1, 2, 4) == [3, 6]
    assert rung_epochs(2, 2, 3, 9) == [] and rung_epochs(9, 1, 3, 1) == []


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("1h30m", 5400), (45, 45), ("1.5h", 5400)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_bad_duration():
    with pytest.raises(ConfigError, match="not a duration"):
        parse_duration("tomorrow")


def test_the_tolerance_is_searchable_under_its_own_key_only():
    # RunConfig reads it from [run.quantize] max_accuracy_drop: a bare name is no parameter
    names = searchable_parameters()
    assert "quantize.max_accuracy_drop" in names
    assert "max_accuracy_drop" not in names
