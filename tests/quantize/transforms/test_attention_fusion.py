"""Attention fused into onnxruntime's MultiHeadAttention before onnxruntime quantizes: on a real dynamo
export of a BERT encoder, checked against the unfused model, dropped when it computes otherwise."""

from collections import Counter

import numpy as np
import onnx
import pytest

from edgeport.quantize import ModelSource, quant_config, quantize
from edgeport.quantize.backends.ort_prepare import has_external_data
from edgeport.quantize.guard.verify import int8_coverage
from edgeport.quantize.inputs.run import ort_session
from edgeport.quantize.transforms import attention_fusion
from edgeport.quantize.transforms.attention_fusion import NOTE, fused_model
from edgeport.quantize.transforms.layernorm_unfused import MARGIN, ROWS, kernel_times_us
from tests.models.encoders import export_bert_encoder, save_padded_sentences

LAYERS, HIDDEN, LENGTH, VOCAB = 2, 32, 16, 100


def _ops(path):
    return Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dynamo-encoder")
    path = export_bert_encoder(
        folder / "encoder.onnx",
        vocab=VOCAB,
        hidden=HIDDEN,
        layers=LAYERS,
        heads=4,
        intermediate=64,
        length=LENGTH,
        dynamo=True,
    )
    save_padded_sentences(folder / "sentences.npz", 24, LENGTH, VOCAB, np.random.default_rng(0))
    return path, dict(np.load(folder / "sentences.npz"))


def _outputs(path, feeds):
    return ort_session(path).run(None, feeds)[0]


def test_a_dynamo_export_gets_one_multi_head_attention_a_layer_computing_the_same(tmp_path, encoder):
    path, sentences = encoder
    fused, notes = fused_model(path, tmp_path, sentences, has_external_data(path))
    assert fused == tmp_path / path.name
    assert notes[NOTE]["multi_head_attention"] == LAYERS, notes
    ops = _ops(fused)
    assert ops["MultiHeadAttention"] == LAYERS and "Softmax" not in ops
    assert (tmp_path / (path.name + ".data")).exists()  # the export's external data, written beside it
    # every padded sentence, not only the four it was checked on: the padding mask reaches the fused op
    expected, got = _outputs(path, sentences), _outputs(fused, sentences)
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()


def test_weights_in_an_external_file_of_any_name_are_carried_over(tmp_path, encoder):
    path, sentences = encoder
    source = tmp_path / "source" / "model.onnx"
    source.parent.mkdir()
    onnx.save(onnx.load(str(path)), str(source), save_as_external_data=True, location="weights.bin")
    fused, notes = fused_model(source, tmp_path, sentences, has_external_data(source))
    assert fused == tmp_path / "model.onnx" and (tmp_path / "model.onnx.data").exists(), notes
    (source.parent / "weights.bin").unlink()  # the fused model reads its own weights only
    np.testing.assert_allclose(_outputs(fused, sentences), _outputs(path, sentences), rtol=1e-4, atol=1e-5)


def test_a_fusion_that_computes_otherwise_is_dropped(tmp_path, encoder, monkeypatch):
    path, sentences = encoder
    real = attention_fusion._fuse

    def wrong(source, target, external):  # the rules' output with one weight changed: a rule that matched wrongly
        counts = real(source, target, external)
        model = onnx.load(str(target))
        weight = next(t for t in model.graph.initializer if len(t.dims) == 2 and t.data_type == onnx.TensorProto.FLOAT)
        values = onnx.numpy_helper.to_array(weight) * 3.0
        weight.CopyFrom(onnx.numpy_helper.from_array(values, weight.name))
        onnx.save(model, str(target))
        return counts

    monkeypatch.setattr(attention_fusion, "_fuse", wrong)
    fused, notes = fused_model(path, tmp_path, sentences, has_external_data(path))
    assert fused is None
    assert notes[NOTE].startswith("not applied: the fused fp32 model did not compute the same (output "), notes


def test_a_graph_without_attention_and_a_run_without_samples_are_left_alone(tmp_path, encoder, fp32_onnx):
    path, _ = encoder
    assert fused_model(fp32_onnx, tmp_path, {"input": np.zeros((1, 1, 8, 8), np.float32)}, False) == (None, {})
    fused, notes = fused_model(path, tmp_path, None, True)
    assert fused is None and notes[NOTE].startswith("not tried: no calibration samples")
    assert not list(tmp_path.iterdir())


def test_onnxruntime_quantizes_the_fused_encoder_and_keeps_layernorm_apart_where_that_is_faster(tmp_path, encoder):
    path, sentences = encoder
    calibration = {k: v[:16] for k, v in sentences.items()}
    out = tmp_path / "int8.onnx"
    result = quantize(ModelSource(path), calibration, quant_config(backend="ort-dynamic"), out)
    assert result.report[NOTE]["multi_head_attention"] == LAYERS
    ops = _ops(out)
    assert ops["MultiHeadAttention"] == LAYERS and ops["MatMulInteger"] >= 4 * LAYERS
    fused, apart = kernel_times_us(HIDDEN)  # what the backend measured (once per process and width)
    kept_apart = apart <= MARGIN * fused
    assert ("written as Sum" in result.report["layernorm_unfused"]) == kept_apart, (result.report, fused, apart)
    assert f"({ROWS}x{HIDDEN})" in result.report["layernorm_unfused"]
    if kept_apart:  # the embeddings' LayerNorm and two per layer
        assert ops["Sum"] == 1 + 2 * LAYERS
    # the int8 file still computes the encoder: pooled over the real tokens, close to fp32
    expected, got = _outputs(path, sentences), _outputs(out, sentences)
    mask = sentences["attention_mask"][..., None]
    pooled = [(x * mask).sum(1) / mask.sum(1) for x in (expected, got)]
    cosine = (pooled[0] * pooled[1]).sum(1) / np.linalg.norm(pooled[0], axis=1) / np.linalg.norm(pooled[1], axis=1)
    assert cosine.min() > 0.98, cosine
    # the attention MatMuls inside MultiHeadAttention are float compute, and the coverage says so
    coverage = int8_coverage(out)
    assert sum("(MultiHeadAttention)" in layer for layer in coverage["unfused"]) == LAYERS, coverage
