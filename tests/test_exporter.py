import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from edgeport.distill import predict_logits
from edgeport.errors import ExportError
from edgeport.exporter import export_onnx, onnx_predict, read_metadata, write_metadata


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_export_has_dynamic_batch_and_matches_pytorch(tmp_path, trained_cnn, digits16, exporter):
    path = tmp_path / f"{exporter}.onnx"
    result = export_onnx(trained_cnn, digits16.train.x[:2], path, exporter, parity_inputs=digits16.val.x)
    onnx.checker.check_model(str(path))
    assert result.max_abs_diff < 1e-3
    assert result.top1_agreement >= 99.0
    assert result.parity_samples == len(digits16.val.y)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 7):
        x = digits16.val.x[:batch]
        out = session.run(None, {"input": x})[0]
        assert out.shape == (batch, 10)
        assert np.allclose(out, predict_logits(trained_cnn, x), atol=1e-4)


def test_export_failure_is_an_export_error(tmp_path, digits16):
    class Unexportable(nn.Module):
        def forward(self, x):
            return torch.from_numpy(x.numpy() * 2)  # leaves the traced graph

    with pytest.raises(ExportError, match="bad.onnx"):
        export_onnx(Unexportable(), digits16.train.x[:2], tmp_path / "bad.onnx", "torchscript")
    assert not (tmp_path / "bad.onnx").exists()
    with pytest.raises(ExportError, match="exporter 'tflite'"):
        export_onnx(Unexportable(), digits16.train.x[:2], tmp_path / "bad.onnx", "tflite")


def test_metadata_roundtrip_keeps_the_model_working(tmp_path, fp32_onnx, digits16):
    copy = tmp_path / "m.onnx"
    copy.write_bytes(fp32_onnx.read_bytes())
    before = onnx_predict(copy, digits16.val.x[:5])
    write_metadata(copy, {"seed": "7", "kind": "onnx-fp32"})
    write_metadata(copy, {"seed": "8"})  # rewriting replaces, never duplicates
    assert read_metadata(copy) == {"seed": "8"}
    assert np.array_equal(before, onnx_predict(copy, digits16.val.x[:5]))
