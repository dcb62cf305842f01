import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from edgeport.distill import predict_logits
from edgeport.errors import ExportError
from edgeport.exporter import OnnxLineage, export_onnx, onnx_predict, read_metadata, write_metadata


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
    write_metadata(copy, OnnxLineage(kind="onnx-fp32", seed=7, student="cnn"))
    write_metadata(copy, OnnxLineage(kind="onnx-fp32", seed=8))  # rewriting replaces, never duplicates
    assert read_metadata(copy) == {"kind": "onnx-fp32", "seed": "8"}
    assert np.array_equal(before, onnx_predict(copy, digits16.val.x[:5]))


def _debug_entries(model: onnx.ModelProto) -> list[str]:
    """Every doc_string and metadata_props entry below the model level (what scrubbing must remove)."""
    found = []

    def walk(graph, where):
        found.extend(f"{where}: {p.key}" for p in graph.metadata_props)
        found.extend([f"{where}: doc_string"] if graph.doc_string else [])
        for value in (*graph.input, *graph.output, *graph.value_info, *graph.initializer):
            found.extend(f"{where}/{value.name}: {p.key}" for p in value.metadata_props)
            found.extend([f"{where}/{value.name}: doc_string"] if value.doc_string else [])
        for node in graph.node:
            found.extend(f"{where}/{node.name}: {p.key}" for p in node.metadata_props)
            found.extend([f"{where}/{node.name}: doc_string"] if node.doc_string else [])
            for attr in node.attribute:
                if attr.HasField("g"):
                    walk(attr.g, f"{where}/{node.name}/{attr.name}")

    walk(model.graph, "graph")
    for function in model.functions:
        found.extend(f"function {function.name}: {p.key}" for p in function.metadata_props)
        for node in function.node:
            found.extend(f"function {function.name}/{node.name}: {p.key}" for p in node.metadata_props)
            found.extend([f"function {function.name}/{node.name}: doc_string"] if node.doc_string else [])
    return found


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_export_carries_no_debug_metadata_or_paths(tmp_path, trained_cnn, digits16, exporter):
    import sys
    from pathlib import Path

    import edgeport

    path = tmp_path / f"{exporter}.onnx"
    export_onnx(trained_cnn, digits16.train.x[:2], path, exporter, parity_inputs=digits16.val.x[:16])
    model = onnx.load(str(path))
    assert _debug_entries(model) == []
    assert not [p.key for p in model.metadata_props if p.key.startswith(("pkg.", "namespace"))]
    data = path.read_bytes()
    for needle in (tmp_path, Path(edgeport.__file__).parent, Path(torch.__file__).parent, sys.prefix, os.getcwd()):
        if len(str(needle)) > 4:
            assert str(needle).encode() not in data, needle


def _annotated_model() -> onnx.ModelProto:
    """A small model with debug annotations everywhere the exporters and ORT put them, plus model-level props."""
    from onnx import TensorProto, helper

    def annotate(proto, where):
        proto.doc_string = f'File "/home/alice/src/{where}.py", line 1'
        proto.metadata_props.add(key="pkg.torch.onnx.stack_trace", value=f'File "/home/alice/venv/{where}.py"')
        proto.metadata_props.add(key="namespace", value=f"model/{where}")

    then_node = helper.make_node("Identity", ["x"], ["t"], name="then_id")
    annotate(then_node, "then")
    then = helper.make_graph([then_node], "then", [], [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1])])
    else_node = helper.make_node("Neg", ["x"], ["e"], name="else_neg")
    orelse = helper.make_graph([else_node], "else", [], [helper.make_tensor_value_info("e", TensorProto.FLOAT, [1])])
    cond = helper.make_node("Greater", ["x", "zero"], ["c"], name="gt")
    annotate(cond, "gt")
    branch = helper.make_node("If", ["c"], ["y0"], name="if", then_branch=then, else_branch=orelse)
    call = helper.make_node("Double", ["y0"], ["y"], name="call", domain="local")
    annotate(call, "call")
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])
    annotate(zero, "zero")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    annotate(x, "x")
    graph = helper.make_graph(
        [cond, branch, call],
        "g",
        [x],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [zero],
        doc_string="graph doc /home/alice/project/model.py",
    )
    graph.metadata_props.add(key="pkg.torch.export.ExportedProgram.graph_signature", value="x: USER_INPUT")
    graph.value_info.append(helper.make_tensor_value_info("y0", TensorProto.FLOAT, [1]))
    annotate(graph.value_info[0], "y0")
    add = helper.make_node("Add", ["a", "a"], ["b"], name="add_in_function")
    annotate(add, "function")
    function = helper.make_function("local", "Double", ["a"], ["b"], [add], [helper.make_opsetid("", 18)])
    function.doc_string = "/home/alice/src/function.py"
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("local", 1)],
        functions=[function],
        doc_string="A tiny test model.",
    )
    model.ir_version = 10
    for key, value in [
        ("edgeport.kind", "onnx-fp32"),
        ("license", "MIT, see https://example.com/license/x"),
        ("pkg.torch.onnx.exporter", "dynamo"),
        ("source", "/home/alice/project/model.py"),
        ("windows", r"built in C:\Users\alice\proj"),
        ("uri", "file:///home/alice/m.onnx"),
        ("home", "~/models/m.onnx"),
        ("onnx.infer", "onnxruntime.quant"),
    ]:
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    return model


def test_scrub_rule_drops_debug_entries_everywhere_and_keeps_meaningful_model_props(tmp_path):
    from edgeport.exporter import scrub_onnx

    path = tmp_path / "annotated.onnx"
    onnx.save(_annotated_model(), str(path))
    assert b"/home/alice" in path.read_bytes()
    x = np.array([2.0], dtype=np.float32)
    before = onnx_predict(path, x)
    assert scrub_onnx(path) > 0
    model = onnx.load(str(path))
    assert _debug_entries(model) == []
    assert model.functions[0].doc_string == ""
    assert model.doc_string == "A tiny test model."
    assert [(p.key, p.value) for p in model.metadata_props] == [
        ("edgeport.kind", "onnx-fp32"),
        ("license", "MIT, see https://example.com/license/x"),
        ("onnx.infer", "onnxruntime.quant"),
    ]
    assert b"/home/alice" not in path.read_bytes() and b"alice" not in path.read_bytes()
    onnx.checker.check_model(str(path), full_check=True)
    assert np.array_equal(before, onnx_predict(path, x)) and before[0] == 4.0
    # Idempotent: a clean file is left alone, byte for byte.
    data = path.read_bytes()
    assert scrub_onnx(path) == 0 and path.read_bytes() == data
    assert not [p for p in tmp_path.iterdir() if p.name != "annotated.onnx"]  # no temporary files left
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # a normal file, not mkstemp's 0600


def test_write_metadata_scrubs_files_other_tools_wrote(tmp_path):
    path = tmp_path / "annotated.onnx"
    onnx.save(_annotated_model(), str(path))
    write_metadata(path, OnnxLineage(kind="onnx-int8"))
    model = onnx.load(str(path))
    assert _debug_entries(model) == []
    assert read_metadata(path) == {"kind": "onnx-int8"}
    assert b"/home/alice" not in path.read_bytes()
