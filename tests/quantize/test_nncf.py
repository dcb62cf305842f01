"""`--backend nncf`: NNCF's post-training int8 through edgeport, as a user runs it (real nncf, real
onnxruntime): a conv net and a BERT-style encoder come out verified, the model type follows the graph,
excluded nodes stay in float, a fixed batch size is met, and without the extra the command says what to
install (exit 2)."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeport.cli import main
from edgeport.quantize import quant_config
from edgeport.quantize.backends.nncf_onnx import (
    MAX_CALIBRATION_BATCH,
    _advanced,
    batchwise_statistics,
    calibration_batch,
    calibration_items,
    is_transformer,
)
from tests.models.encoders import export_bert_encoder, save_padded_sentences
from tests.quantize.test_calibration_memory import calibration, conv_model

pytest.importorskip("nncf")  # a dev extra: installed by `make test`


def _quantize(capsys, *args) -> tuple[int, dict | None, str]:
    code = main(["quantize", "--quiet", "--json", "--backend", "nncf", *map(str, args)])
    captured = capsys.readouterr()
    manifest = json.loads(captured.out) if code in (0, 1) else None
    return code, manifest, captured.err


def _quantize_with(capsys, folder, model, output: str, *options) -> tuple[int, dict | None, str]:
    """``_quantize`` with ``folder``'s calib.npz and val.npz, writing ``folder / output``."""
    files = ["--calib", folder / "calib.npz", "--val", folder / "val.npz", "-o", folder / output]
    return _quantize(capsys, model, *files, *options)


def _float_inputs(path) -> set[str]:
    """The nodes whose every float input is read straight, not through a DequantizeLinear."""
    model = onnx.load(str(path))
    dequantized = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return {n.name for n in model.graph.node if n.op_type == "Conv" and n.input[0] not in dequantized}


def _activation_zero_point_types(path) -> set[str]:
    """The element types of the zero points of every QuantizeLinear of a computed tensor."""
    model = onnx.load(str(path))
    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {
        str(values[n.input[2]].dtype)
        for n in model.graph.node
        if n.op_type == "QuantizeLinear" and n.input[0] not in values
    }


def _concat_model(path):
    """x -> two convolutions (signed outputs, no activation) -> Concat -> Conv -> pool -> y [batch, 4]."""
    rng = np.random.default_rng(0)

    def weight(name, *shape):
        values = rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
        return numpy_helper.from_array(values.astype(np.float32), name)

    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "wa"], ["a"], pads=[1, 1, 1, 1], name="conv_a"),
            helper.make_node("Conv", ["x", "wb"], ["b"], pads=[1, 1, 1, 1], name="conv_b"),
            helper.make_node("Concat", ["a", "b"], ["ab"], axis=1, name="concat"),
            helper.make_node("Conv", ["ab", "wc"], ["c"], pads=[1, 1, 1, 1], name="conv_c"),
            helper.make_node("GlobalAveragePool", ["c"], ["p"], name="pool"),
            helper.make_node("Flatten", ["p"], ["y"], name="flatten"),
        ],
        "concat_net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [weight("wa", 8, 3, 3, 3), weight("wb", 8, 3, 3, 3), weight("wc", 4, 16, 3, 3)],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def _named_conv_model(path):
    model = onnx.load(str(conv_model(path)))
    for index, node in enumerate(model.graph.node):
        node.name = f"{node.op_type.lower()}_{index}"
    onnx.save(model, str(path))
    return path


def test_a_conv_net_is_quantized_verified_and_its_excluded_node_stays_float(tmp_path, capsys):
    model = _named_conv_model(tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", x=calibration(32)["x"])
    np.savez(tmp_path / "val.npz", x=calibration(16, seed=3)["x"])
    convs = [n.name for n in onnx.load(str(model)).graph.node if n.op_type == "Conv"]
    assert convs and all(convs)
    code, manifest, err = _quantize(
        capsys, model, "--calib", tmp_path / "calib.npz", "--val", tmp_path / "val.npz", "-o", tmp_path / "q.onnx"
    )
    assert code == 0, err
    assert manifest["lineage"]["quantization"]["backend"] == "nncf"
    report = manifest["quantization"] if "quantization" in manifest else manifest
    text = json.dumps(report)
    assert '"model_type": "default"' in text and '"calibration_runs": 2' in text and '"calibration_batch": 16' in text
    assert manifest["guard"]["within_tolerance"]
    assert not _float_inputs(tmp_path / "q.onnx")  # every conv reads int8 activations
    assert _activation_zero_point_types(tmp_path / "q.onnx") == {"uint8"}  # NNCF's signed input rewritten
    assert manifest["lineage"]["quantization"]["report"]["activations_to_uint8"] >= 1

    code, manifest, err = _quantize_with(capsys, tmp_path, model, "kept.onnx", "--exclude-node", convs[0])
    assert code == 0, err
    assert _float_inputs(tmp_path / "kept.onnx") == {convs[0]}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed")
def test_a_convolution_of_concatenated_activations_is_faithful_as_openvino_runs_it(tmp_path, capsys):
    # NNCF's int8 (signed) activations into a Concat -> Conv: OpenVINO clamped them to [-128, 127] in
    # real units (mean cosine 0.85 here); the file's uint8 activations are computed right
    model = _concat_model(tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", x=calibration(32)["x"])
    np.savez(tmp_path / "val.npz", x=calibration(16, seed=3)["x"])
    code, manifest, err = _quantize_with(capsys, tmp_path, model, "q.onnx", "--runtime", "openvino")
    assert code in (0, 1), err  # exit 1: faithful but not faster than fp32 on this CPU
    assert manifest["verification"]["judged_on_runtime"].startswith("openvino")
    assert manifest["guard"]["within_tolerance"], manifest["guard"]


def test_an_encoder_is_quantized_as_a_transformer(tmp_path, capsys):
    model = export_bert_encoder(
        tmp_path / "bert.onnx", vocab=64, hidden=32, layers=2, heads=2, intermediate=64, length=16
    )
    assert is_transformer(onnx.load(str(model)))
    rng = np.random.default_rng(0)
    save_padded_sentences(tmp_path / "calib.npz", 24, 16, 64, rng)
    save_padded_sentences(tmp_path / "val.npz", 12, 16, 64, rng)
    code, manifest, err = _quantize(
        capsys, model, "--calib", tmp_path / "calib.npz", "--val", tmp_path / "val.npz", "-o", tmp_path / "q.onnx"
    )
    assert code in (0, 1), err  # random weights: judged honestly either way
    assert '"model_type": "transformer"' in json.dumps(manifest) and '"preset": "mixed"' in json.dumps(manifest)
    assert manifest["verification"]["coverage"]["share"] > 0


def test_a_fixed_batch_is_met_with_padding_and_per_sample_feeds_stay_whole(tmp_path):
    fixed = onnx.load(str(conv_model(tmp_path / "f.onnx", batch=4)))
    items, layout = calibration_items(fixed, calibration(10), "f.onnx")
    assert layout == "batch-first" and [len(i["x"]) for i in items] == [4, 4, 4]
    assert np.array_equal(items[-1]["x"][2], items[-1]["x"][3])  # the last batch padded with its last sample
    open_batch = onnx.load(str(conv_model(tmp_path / "o.onnx")))
    items, _ = calibration_items(open_batch, calibration(5), "o.onnx")
    assert [len(i["x"]) for i in items] == [1] * 5
    items, _ = calibration_items(open_batch, calibration(10), "o.onnx", batch=4)
    assert [len(i["x"]) for i in items] == [4, 4, 2]  # an open batch axis: the last run short, not padded


def test_nncf_reads_several_samples_a_run_where_the_batch_axis_is_open(tmp_path):
    path = conv_model(tmp_path / "o.onnx")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    batch = calibration_batch(path, onnx.load(str(path)), calibration(40), scratch)
    assert batch == MAX_CALIBRATION_BATCH  # a small model: as many as a run may hold
    assert not list(scratch.iterdir()) and sorted(p.name for p in tmp_path.iterdir()) == ["o.onnx", "scratch"]
    fixed = conv_model(tmp_path / "f.onnx", batch=4)
    assert calibration_batch(fixed, onnx.load(str(fixed)), calibration(40), scratch) == 1  # padded runs of 4
    model = onnx.load(str(path))
    assert batchwise_statistics(model, transformer=False) is True  # a conv net: each sample reduced alone
    assert batchwise_statistics(model, transformer=True) is False  # NNCF's advice for transformers
    assert _advanced(quant_config(backend="nncf"), False).batchwise_statistics is False


def test_reduce_range_is_nncfs_overflow_fix():
    from nncf.quantization.advanced_parameters import OverflowFix

    assert _advanced(quant_config(backend="nncf", reduce_range=True)).overflow_fix == OverflowFix.ENABLE
    assert _advanced(quant_config(backend="nncf", reduce_range=False)).overflow_fix == OverflowFix.DISABLE


def test_without_the_extra_the_command_names_the_install(tmp_path, capsys, monkeypatch):
    model = conv_model(tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", x=calibration(8)["x"])
    monkeypatch.setitem(sys.modules, "nncf", None)  # `import nncf` raises ImportError
    code, _, err = _quantize(capsys, model, "--calib", tmp_path / "calib.npz", "-o", tmp_path / "q.onnx")
    assert code == 2
    assert "pip install 'edgeport[nncf]'" in err and "Traceback" not in err
    assert not (tmp_path / "q.onnx").exists()


def test_nncf_options_belong_to_nncf():
    with pytest.raises(Exception, match="preset"):
        quant_config(backend="ort-static", preset="mixed")
    assert quant_config(backend="nncf", preset="mixed", model_type="transformer").preset == "mixed"


def test_nncf_reports_no_telemetry_when_edgeport_loads_it():
    """Outside pytest (which NNCF itself detects) NNCF would report each call to Google Analytics: edgeport
    loads it with its telemetry off."""
    import os
    import subprocess

    stubbed = "from nncf.telemetry import wrapper; print(isinstance(wrapper.telemetry, wrapper.NNCFTelemetryStub))"
    env = {k: v for k, v in os.environ.items() if k not in ("NNCF_CI", "NNCF_DEV")}

    def probe(code: str) -> str:
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout

    assert probe(stubbed) == "False\n"  # nncf alone: its telemetry is on (the premise)
    assert probe(f"from edgeport.quantize.backends.nncf_onnx import _nncf; _nncf(); {stubbed}") == "True\n"
