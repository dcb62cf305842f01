import json
import subprocess
import sys

import numpy as np
import pytest

from edgeport.benchmarks import (
    BenchSettings,
    cpu_fingerprint,
    environment_fingerprint,
    measure_interleaved,
    measure_latency,
    summarize,
)
from edgeport.benchmarks.latency import create_session, synthesize_inputs
from edgeport.errors import BenchmarkError, ConfigError

# As on an edge board without torch: any import of torch fails like a missing package.
BLOCK_TORCH = (
    "import sys, importlib.abc\n"
    "class NoTorch(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'torch' or name.startswith('torch.'):\n"
    "            raise ModuleNotFoundError(\"No module named 'torch'\")\n"
    "sys.meta_path.insert(0, NoTorch())\n"
)


def test_benchmarks_import_without_torch():
    code = (
        BLOCK_TORCH + "import edgeport.benchmarks, edgeport.benchmarks.latency, edgeport.benchmarks.compare\n"
        "import edgeport.benchmarks.rounds, edgeport.benchmarks.remote_runner, edgeport.benchmarks.remote\n"
        "import edgeport.benchmarks.records, edgeport.benchmarks.session, edgeport.core.bench_defaults\n"
        "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules)\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_summarize_matches_numpy():
    samples = np.arange(1, 101, dtype=float)
    stats = summarize(samples)
    assert stats["count"] == 100 and stats["min_ms"] == 1 and stats["max_ms"] == 100
    assert stats["p50_ms"] == pytest.approx(np.percentile(samples, 50))
    assert stats["p99_ms"] == pytest.approx(np.percentile(samples, 99))
    assert stats["mean_ms"] == pytest.approx(50.5)
    with pytest.raises(ValueError):
        summarize([])


def test_latency_keeps_raw_samples_and_fingerprint(fp32_onnx):
    settings = BenchSettings(warmup=5, iterations=40, rounds=4)
    result = measure_latency(fp32_onnx, settings)
    assert len(result.samples_ms) == 40 and all(s > 0 for s in result.samples_ms)
    assert result.stats["p50_ms"] == pytest.approx(float(np.percentile(result.samples_ms, 50)))
    assert result.environment["onnxruntime"] and "CPUExecutionProvider" in result.environment["providers"]
    assert result.settings["threads"] == 1 and result.settings["batch"] == 1
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


def test_cpu_fingerprint_reads_the_host():
    cpu = cpu_fingerprint()
    assert cpu["logical_cores"] >= 1 and cpu["machine"]
    assert isinstance(cpu["isa"], list)
    assert environment_fingerprint()["cpu"] == cpu
