from collections import Counter

import numpy as np
import onnx
import pytest

from edgeport.errors import ConfigError, QuantizationError
from edgeport.exporter import onnx_predict
from edgeport.quant_backends import QuantConfig, list_backends, quantize
from edgeport.quant_backends.target import needs_reduce_range


def _ops(path):
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


@pytest.mark.parametrize("backend", list_backends())
def test_backend_writes_a_faithful_int8_model(tmp_path, fp32_onnx, digits16, backend):
    out = tmp_path / "int8.onnx"
    calib = {"input": digits16.train.x[:128]}
    result = quantize(fp32_onnx, calib, QuantConfig(backend=backend, reduce_range=True), out)
    assert result.path == out and out.exists()
    onnx.checker.check_model(str(out))
    ops = _ops(out)
    convs = _ops(fp32_onnx)["Conv"]
    assert ops["QuantizeLinear"] >= convs and ops["DequantizeLinear"] >= convs
    assert result.report["calibration_samples"] == 128
    fp32 = onnx_predict(fp32_onnx, digits16.val.x)
    int8 = onnx_predict(out, digits16.val.x)
    assert (fp32.argmax(1) == int8.argmax(1)).mean() > 0.97
    assert out.stat().st_size < fp32_onnx.stat().st_size
    assert not list(tmp_path.glob(".quant-*"))  # temporary files are cleaned up


def test_qoperator_format_uses_integer_kernels(tmp_path, fp32_onnx, digits16):
    out = tmp_path / "qop.onnx"
    quantize(fp32_onnx, {"input": digits16.train.x[:64]}, QuantConfig(format="qoperator", reduce_range=True), out)
    assert _ops(out)["QLinearConv"] == _ops(fp32_onnx)["Conv"]


def test_per_channel_gives_one_scale_per_output_channel(tmp_path, fp32_onnx, digits16):
    calib = {"input": digits16.train.x[:64]}
    per_channel, per_tensor = tmp_path / "pc.onnx", tmp_path / "pt.onnx"
    quantize(fp32_onnx, calib, QuantConfig(per_channel=True, reduce_range=True), per_channel)
    quantize(fp32_onnx, calib, QuantConfig(per_channel=False, reduce_range=True), per_tensor)

    def largest_scale(path):
        inits = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
        return max(inits[n.input[1]].size for n in onnx.load(str(path)).graph.node if n.op_type == "DequantizeLinear")

    assert largest_scale(per_channel) > 1 and largest_scale(per_tensor) == 1


def test_calibration_samples_and_exclusions_are_honoured(tmp_path, fp32_onnx, digits16):
    out = tmp_path / "x.onnx"
    result = quantize(fp32_onnx, {"input": digits16.train.x[:100]},
                      QuantConfig(calibration_samples=10, exclude_op_types=("Gemm",), reduce_range=True), out)
    assert result.report["calibration_samples"] == 10
    graph = onnx.load(str(out)).graph
    float_weights = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    gemms = [n for n in graph.node if n.op_type == "Gemm"]
    assert gemms and all(n.input[1] in float_weights for n in gemms)  # Gemm weights stay fp32
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert convs and all(n.input[1] not in float_weights for n in convs)  # conv weights are quantized


def test_input_mismatch_is_a_quantization_error(tmp_path, fp32_onnx, digits16):
    with pytest.raises(QuantizationError, match="do not match the model's inputs"):
        quantize(fp32_onnx, {"images": digits16.train.x[:8]}, QuantConfig(), tmp_path / "o.onnx")
    with pytest.raises(QuantizationError, match="rank"):
        quantize(fp32_onnx, {"input": digits16.train.x[:8, 0]}, QuantConfig(), tmp_path / "o.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(QuantizationError, match="junk.onnx"):
        quantize(tmp_path / "junk.onnx", {"input": digits16.train.x[:8]}, QuantConfig(), tmp_path / "o.onnx")
    assert not (tmp_path / "o.onnx").exists()


@pytest.mark.parametrize("field, value", [("backend", "tflite"), ("format", "int4"), ("activation_type", "fp8"),
                                          ("calibration_method", "magic"), ("calibration_samples", 0),
                                          ("percentile", 20.0), ("per_channel", "yes")])
def test_quant_config_validates(field, value):
    with pytest.raises(ConfigError, match=field):
        QuantConfig(**{field: value})


def test_reduce_range_default_follows_the_cpu():
    assert needs_reduce_range({"machine": "x86_64", "isa": ["avx2"]})
    assert not needs_reduce_range({"machine": "x86_64", "isa": ["avx2", "avx512f", "avx512_vnni"]})
    assert not needs_reduce_range({"machine": "x86_64", "isa": ["avx2", "avx_vnni"]})
    assert not needs_reduce_range({"machine": "aarch64", "isa": ["neon", "dotprod"]})
