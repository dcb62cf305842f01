"""onnxruntime latency on this machine (edgeport/benchmarks/latency.py): raw samples, rounds, interleaving."""

import json

import numpy as np
import pytest

from edgeport.benchmarks import BenchSettings, measure_interleaved, measure_latency
from edgeport.benchmarks.latency import create_session, synthesize_inputs
from edgeport.errors import BenchmarkError, ConfigError


def test_latency_keeps_raw_samples_and_fingerprint(fp32_onnx):
    settings = BenchSettings(warmup=5, iterations=40, rounds=4)
    result = measure_latency(fp32_onnx, settings)
    assert len(result.samples_ms) == 40 and all(s > 0 for s in result.samples_ms)
    assert result.stats["p50_ms"] == pytest.approx(float(np.percentile(result.samples_ms, 50)))
    assert result.environment["onnxruntime"] and "CPUExecutionProvider" in result.environment["providers"]
    assert result.settings["threads"] == 1 and result.settings["batch"] == 1
    # the runtime recorded as result files have always stored it: two flat fields
    assert result.settings["runtime"] == "ort" and result.settings["precision"] is None
    data = json.loads(json.dumps(result.to_dict()))
    assert data["schema_version"] == 1 and len(data["model_sha256"]) == 64


def test_interleaved_measures_each_model(fp32_onnx, digits16):
    settings = BenchSettings(warmup=2, iterations=30, rounds=3)
    rounds = []
    results = measure_interleaved(
        {"a": fp32_onnx, "b": fp32_onnx}, settings, {"input": digits16.val.x[:1]}, on_round=rounds.append
    )
    assert set(results) == {"a", "b"} and len(rounds) == 3
    assert all(len(r.samples_ms) == 30 and r.settings["round_sizes"] == [10, 10, 10] for r in results.values())


def test_synthesized_inputs_follow_the_signature(fp32_onnx):
    session = create_session(fp32_onnx, BenchSettings())
    feeds = synthesize_inputs(session, batch=4, seed=1)
    assert feeds["input"].shape == (4, 1, 16, 16) and feeds["input"].dtype == np.float32
    assert np.array_equal(feeds["input"], synthesize_inputs(session, 4, 1)["input"])


def test_bad_model_and_settings(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(BenchmarkError, match="junk.onnx"):
        measure_latency(tmp_path / "junk.onnx", BenchSettings(iterations=1, rounds=1))
    with pytest.raises(ConfigError, match="iterations"):
        BenchSettings(iterations=0)
    with pytest.raises(ConfigError, match="optimization_level"):
        BenchSettings(optimization_level="max")


def _fails_when_run(path):
    """A model onnxruntime loads but cannot run on a 1x1x16x16 input: 256 values reshaped into rows of 7 (its batch
    axis left open, so that loading it cannot tell)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Reshape", ["input", "shape"], ["out"])],
        "bad",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 16, 16])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        [helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 7])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_models_that_cannot_be_loaded_or_run_are_refused_with_why_and_the_rest_measured(fp32_onnx, digits16, tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    models = {"good": fp32_onnx, "junk": tmp_path / "junk.onnx", "bad": _fails_when_run(tmp_path / "bad.onnx")}
    settings, feeds = BenchSettings(warmup=1, iterations=6, rounds=3), {"input": digits16.val.x[:1]}
    refused: dict[str, str] = {}
    results = measure_interleaved(models, settings, feeds, refused=refused)
    assert set(results) == {"good"} and results["good"].settings["round_sizes"] == [2, 2, 2]
    assert set(refused) == {"junk", "bad"}
    assert refused["junk"].startswith("BenchmarkError: ") and "junk.onnx" in refused["junk"]
    assert refused["bad"].startswith("BenchmarkError: inference failed while benchmarking")
    with pytest.raises(BenchmarkError, match="inference failed"):  # without a place for them: the measurement fails
        measure_interleaved({"good": fp32_onnx, "bad": models["bad"]}, settings, feeds)


def test_a_model_stopped_early_keeps_the_rounds_it_ran_and_the_others_run_every_round(fp32_onnx, digits16):
    settings = BenchSettings(warmup=2, iterations=50, rounds=5)
    asked = []

    def stop_early(samples, sizes):
        asked.append((sorted(samples), list(sizes)))
        return ["b"] if len(sizes) == 2 else []

    models = {"a": fp32_onnx, "b": fp32_onnx, "c": fp32_onnx}
    results = measure_interleaved(models, settings, {"input": digits16.val.x[:1]}, stop_early=stop_early)
    assert results["b"].settings["round_sizes"] == [10, 10] and len(results["b"].samples_ms) == 20
    assert results["b"].settings["rounds_run"] == 2 and results["b"].stats["p50_ms"] > 0
    assert results["b"].settings["stopped_early"] is True and results["a"].settings["stopped_early"] is False
    for label in ("a", "c"):
        assert results[label].settings["round_sizes"] == [10] * 5 and results[label].settings["rounds_run"] == 5
    # asked after every round but the last, with those still measured only
    assert asked == [
        (["a", "b", "c"], [10]),
        (["a", "b", "c"], [10, 10]),
        (["a", "c"], [10, 10, 10]),
        (["a", "c"], [10, 10, 10, 10]),
    ]


def test_a_measurement_by_duration_is_never_stopped_early(fp32_onnx, digits16):
    settings = BenchSettings(warmup=1, iterations=4, rounds=2, duration_s=0.05)

    def stop_early(samples, sizes):
        raise AssertionError("asked")

    results = measure_interleaved(
        {"a": fp32_onnx, "b": fp32_onnx}, settings, {"input": digits16.val.x[:1]}, stop_early=stop_early
    )
    assert len(results["a"].settings["round_sizes"]) == len(results["b"].settings["round_sizes"]) >= 1
