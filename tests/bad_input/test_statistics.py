"""Statistics that look precise but are not: A/A intervals that exclude 1.0, a fixed margin that
hides it, and iteration counts that are not the ones asked for.

The coverage test simulates what a shared machine does to an interleaved `bench A --vs A`: a drift
shared by both models round by round, a level shift per model and round (a neighbour's burst lands
on one model's half of a round), and AR(1) heavy-tailed noise with spikes within a round. Runs of
consecutive samples are then far from independent, which is what made the single-sample bootstrap
report 1.018 [1.017, 1.019] for a file compared with itself.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.signal import lfilter

from edgeport.benchmarks.compare import compare
from edgeport.benchmarks.rounds import rounds_of, split_counts, split_rounds
from edgeport.benchmarks.stats import summarize
from tests.bad_input.conftest import one_line_error, run_cli

ROUNDS, PER_ROUND = 10, 20
SETTINGS = {"round_sizes": [PER_ROUND] * ROUNDS}


def bursty_pair(rng: np.random.Generator, effect: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved A and B samples (ms) of one simulated `bench --vs`; A is ``effect`` times B's true latency."""
    drift = np.cumsum(rng.normal(0, 0.03, ROUNDS))  # the machine's state, shared by both halves of a round
    out = []
    for scale in (effect, 1.0):
        level = drift + rng.normal(0, 0.03, ROUNDS) + np.where(rng.random(ROUNDS) < 0.15, np.log(1.25), 0.0)
        # AR(1) within each round, x[j] = 0.7 x[j-1] + e[j], with Student-t(3) innovations
        noise = lfilter([1.0], [1.0, -0.7], 0.02 * rng.standard_t(3, (ROUNDS, PER_ROUND)), axis=1)
        spikes = (rng.random((ROUNDS, PER_ROUND)) < 0.03) * rng.exponential(0.5, (ROUNDS, PER_ROUND))
        out.append(scale * np.exp(level[:, None] + noise + spikes).ravel())
    return out[0], out[1]


def sample_level_interval(a: np.ndarray, b: np.ndarray, seed: int) -> tuple[float, float]:
    """The method compare() used before: single samples of a and b resampled as if independent."""
    rng = np.random.default_rng(seed)
    ratios = np.percentile(a[rng.integers(0, a.size, (500, a.size))], 50, axis=1) / np.percentile(
        b[rng.integers(0, b.size, (500, b.size))], 50, axis=1
    )
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


def test_a_a_interval_contains_one_about_95_percent_of_the_time_under_bursty_noise():
    rng = np.random.default_rng(2024)
    new_hits = old_hits = false_alarms = 0
    for i in range(200):
        a, b = bursty_pair(rng)
        result = compare(a, b, SETTINGS, seed=i)
        low, high = result["p50_ratio_ci"]
        new_hits += low <= 1.0 <= high
        false_alarms += result["verdict"] != "no detectable difference"
        low, high = sample_level_interval(a, b, i)
        old_hits += low <= 1.0 <= high
    assert 176 <= new_hits <= 198, new_hits  # 88%-99% of 200 for a 95% interval
    assert old_hits <= 150, old_hits  # the sample-level interval is far too narrow for bursts
    assert false_alarms <= 6, false_alarms  # the test at alpha 0.01 AND the interval, without any margin


def test_a_real_2x_slowdown_is_slower_and_a_speedup_faster():
    rng = np.random.default_rng(5)
    for i in range(10):
        slow, base = bursty_pair(rng, effect=2.0)
        result = compare(slow, base, SETTINGS, seed=i)
        assert result["verdict"] == "slower" and result["p50_ratio_ci"][0] > 1.2, result
        assert result["test"] == "wilcoxon-paired-rounds" and result["p_value"] < result["alpha"]
        fast, base = bursty_pair(rng, effect=0.5)
        assert compare(fast, base, SETTINGS, seed=i)["verdict"] == "faster"


def test_margin_is_honoured_and_recorded():
    rng = np.random.default_rng(11)
    base = rng.lognormal(0, 0.01, ROUNDS * PER_ROUND)
    slower = base * 1.05 * rng.lognormal(0, 0.01, base.size)  # a clear, 5% slowdown
    plain = compare(slower, base, SETTINGS)
    assert plain["verdict"] == "slower" and plain["margin"] == 0.0
    assert compare(slower, base, SETTINGS, margin=0.02)["verdict"] == "slower"
    wide = compare(slower, base, SETTINGS, margin=0.10)
    assert wide["verdict"] == "no detectable difference" and wide["margin"] == 0.10


def test_few_rounds_say_that_no_difference_can_be_declared():
    rng = np.random.default_rng(3)
    a, b = rng.lognormal(0, 0.1, 500), rng.lognormal(np.log(2), 0.1, 500)  # A twice as fast
    settings = {"round_sizes": [100] * 5}
    result = compare(a, b, settings)
    # 5 paired rounds cannot reach p < 0.01 (at best 2/2^5): say so, never "faster" on too little evidence
    assert result["verdict"] == "no detectable difference" and "cannot reach" in result["note"]
    assert compare(a, b, {"round_sizes": [50] * 10})["note"] is None


def test_rounds_are_cut_at_their_real_boundaries():
    sizes = split_counts(23, 10)
    assert sizes == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2] and split_counts(1, 10) == [1] and split_counts(7, 10) == [1] * 7
    samples = np.repeat(np.arange(10.0) + 1, sizes)  # every round has its own value
    blocks = split_rounds(samples, {"round_sizes": sizes})
    assert [b.size for b in blocks] == sizes and all(np.all(b == i + 1) for i, b in enumerate(blocks))
    rect = rounds_of(samples, {"round_sizes": sizes})  # the gate's rectangle: the extra samples go
    assert rect.shape == (10, 2) and np.all(rect == (np.arange(10.0) + 1)[:, None])
    # A result that recorded no round_sizes (remote runner, older edgeport) is cut by iterations and rounds.
    assert [b.size for b in split_rounds(samples, {"iterations": 23, "rounds": 10})] == sizes
    # compare() uses every sample of uneven rounds (the ragged bootstrap) and pairs them round by round.
    result = compare(samples, samples * 2, {"round_sizes": sizes})
    assert result["p50_ratio"] == pytest.approx(0.5) and result["p50_ratio_ci"] == pytest.approx([0.5, 0.5])
    assert result["verdict"] == "faster" and result["rounds"] == [10, 10]


def test_one_sample_summarizes_without_intervals():
    stats = summarize([4.0])
    assert stats["p50_ms"] == 4.0 and stats["p50_ci_ms"] is None and stats["p90_ci_ms"] is None
    assert stats["std_ms"] == 0.0 and stats["unsupported"] == ["p90", "p95", "p99"]
    rounded = summarize([4.0], round_sizes=[1])
    assert rounded["p50_ms"] == 4.0 and rounded["p50_ci_ms"] is None


def test_round_intervals_in_summarize_are_wider_than_single_sample_ones_under_bursts():
    a, _ = bursty_pair(np.random.default_rng(8))
    by_rounds = summarize(a, round_sizes=SETTINGS["round_sizes"])["p50_ci_ms"]
    by_samples = summarize(a)["p50_ci_ms"]
    assert by_rounds[1] - by_rounds[0] > 1.5 * (by_samples[1] - by_samples[0])


# --- through the command line, on a tiny ONNX model ---------------------------------------------------


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    """Two MatMuls and a Relu, built with onnx.helper: nothing to train, microseconds per run."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((32, 32)).astype(np.float32), f"w{i}") for i in range(2)]
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w0"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("MatMul", ["r", "w1"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("iterations", [1, 7, 23])
def test_bench_records_exactly_the_iterations_asked_for(tiny_onnx, capsys, iterations):
    code, out, err = run_cli(capsys, "bench", tiny_onnx, "--iterations", iterations, "--warmup", 2, "--json", "--quiet")
    assert code == 0, err
    result = json.loads(out)["results"][0]
    settings = result["settings"]
    assert len(result["samples_ms"]) == iterations and result["stats"]["count"] == iterations
    assert sum(settings["round_sizes"]) == iterations and settings["rounds_run"] == min(iterations, 10)
    assert max(settings["round_sizes"]) - min(settings["round_sizes"]) <= 1
    assert settings["fresh_session_per_round"] is False  # one model: nothing to compare a session with
    assert result["stats"]["p50_ms"] == pytest.approx(float(np.median(result["samples_ms"])))
    if iterations == 1:
        assert result["stats"]["p50_ci_ms"] is None


def test_remote_runner_records_exactly_the_iterations_asked_for(tiny_onnx, tmp_path):
    from edgeport.benchmarks import remote_runner
    from edgeport.benchmarks.latency import BenchSettings

    np.savez(tmp_path / "inputs.npz", x=np.zeros((1, 32), np.float32))
    for iterations in (1, 23):
        settings = BenchSettings(iterations=iterations, warmup=1).to_dict()  # as remote.py uploads them
        data = remote_runner.run(str(tiny_onnx), settings, str(tmp_path / "inputs.npz"))
        assert len(data["samples_ms"]) == iterations
        assert data["round_sizes"] == split_counts(iterations, 10)  # the host finds these boundaries again


def test_bench_vs_prints_and_records_the_margin(tiny_onnx, capsys):
    args = ("bench", tiny_onnx, "--vs", tiny_onnx, "--iterations", 200, "--warmup", 5, "--quiet", "--margin", 0.02)
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    text = " ".join(out.split())  # rich may wrap the line
    assert "(margin 2%)" in text and "Wilcoxon signed-rank on paired round medians" in text, text
    code, out, err = run_cli(capsys, *args, "--json")
    report = json.loads(out)
    comparison = report["comparisons"][0]
    # a session's memory placement must vary between rounds, or it biases the whole comparison
    assert all(r["settings"]["fresh_session_per_round"] for r in report["results"])
    assert comparison["margin"] == 0.02 and comparison["test"] == "wilcoxon-paired-rounds"
    assert 0 <= comparison["p_value"] <= 1 and comparison["rounds"] == [10, 10]
    low, high = comparison["p50_ratio_ci"]
    assert low <= comparison["p50_ratio"] <= high and "mann_whitney_p" not in comparison


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--margin", "-0.01"], "--margin must be a finite fraction"),
        (["--margin", "1"], "--margin must be a finite fraction"),
        (["--margin", "nan"], "'--margin': expected a finite number"),
        (["--margin", "inf"], "'--margin': expected a finite number"),
        (["--iterations", "5"], "needs at least 10 iterations"),
    ],
)
def test_bad_comparison_settings_exit_2_before_measuring(tiny_onnx, capsys, extra, message):
    code, _, err = run_cli(capsys, "bench", tiny_onnx, "--vs", tiny_onnx, "--quiet", *extra)
    assert code == 2 and message in one_line_error(err), err


def test_margin_without_vs_is_refused(tiny_onnx, capsys):
    code, _, err = run_cli(capsys, "bench", tiny_onnx, "--margin", "0.02", "--quiet")
    assert code == 2 and "--vs" in one_line_error(err)


def test_gate_on_a_single_sample_refuses_cleanly(tiny_onnx, tmp_path, capsys):
    code, _, err = run_cli(
        capsys, "bench", tiny_onnx, "--iterations", 1, "--warmup", 1, "--quiet", "-o", tmp_path / "one.json"
    )
    assert code == 0, err
    budget = tmp_path / "budgets.toml"
    budget.write_text("[targets.cpu]\np50_ms = 1000.0\n")
    code, _, err = run_cli(capsys, "gate", "--budget", budget, "--result", tmp_path / "one.json", "--quiet")
    assert code == 2 and "1 samples cannot support a p50 budget" in one_line_error(err)
    # Two samples, two rounds of one: a p50 budget far above the latency passes, nothing divides by zero.
    code, _, err = run_cli(
        capsys, "bench", tiny_onnx, "--iterations", 2, "--warmup", 1, "--quiet", "-o", tmp_path / "two.json"
    )
    code, out, err = run_cli(capsys, "gate", "--budget", budget, "--result", tmp_path / "two.json", "--json")
    check = json.loads(out)["checks"][0]
    assert code == 0 and check["verdict"] == "pass" and all(math.isfinite(v) for v in check["interval"]), out
    # A regression check measured from one sample per side cannot bound a ratio: one line, exit 2.
    budget.write_text("[targets.cpu]\nmax_regression = 0.1\n")
    code, _, err = run_cli(
        capsys,
        "gate",
        "--budget",
        budget,
        "--artifact",
        tiny_onnx,
        "--baseline-artifact",
        tiny_onnx,
        "--iterations",
        1,
        "--quiet",
    )
    assert code == 2 and "cannot bound a ratio" in one_line_error(err)
