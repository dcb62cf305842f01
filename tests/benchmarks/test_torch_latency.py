"""PyTorch latency with the onnxruntime runner's statistics (edgeport/benchmarks/torch_latency.py)."""

from edgeport.benchmarks import BenchSettings
from edgeport.benchmarks.torch_latency import measure_torch


def test_pytorch_runner_measures_fp32_and_quantized_models(tmp_path, trained_cnn, digits16):
    from edgeport.quantize import ModelSource, quant_config, quantize

    settings = BenchSettings(warmup=3, iterations=50, rounds=5)
    x = digits16.val.x[:1]
    fp32 = measure_torch(trained_cnn, x, settings, label="fp32")
    result = quantize(
        ModelSource(None, trained_cnn),
        {"input": digits16.train.x[:32]},
        quant_config(backend="torch-fx", engine="fbgemm", reduce_range=True),
        tmp_path / "q.onnx",
    )
    int8 = measure_torch(result.torch_model, x, settings, engine="fbgemm", label="torch-fx int8")
    for measured in (fp32, int8):
        assert len(measured.samples_ms) == 50 and measured.stats["p50_ms"] > 0
        assert measured.environment["torch"]
    assert int8.settings["engine"] == "fbgemm" and int8.settings["provider"] == "pytorch-cpu"
