"""Control flow through quantization: If/Loop bodies that read outer-scope values come out valid and
loadable, bodies kept in float (static) or quantized (dynamic) and said so, the main graph still int8.

Found on the Silero VAD model: onnxruntime's quantizer sorted the main graph by listed inputs only, put an
If before what its branches read, and the int8 file failed onnx's checker (exit 2 for a valid model).
The model here has the same shape of trouble: the If's condition is a graph input, ready before anything
its branches read, and its branches and a Loop's body read convolution, Relu and MatMul outputs.
Also here: a third-party exception anywhere inside quantize is one QuantizationError line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeport.errors import QuantizationError
from edgeport.quantize import quant_config, quantize
from edgeport.quantize.inputs.graph import iter_nodes
from edgeport.quantize.transforms.subgraphs import (
    finish_file,
    node_outer_reads,
    rename_outer_reads,
    restore_outer_reads,
    shield_outer_reads,
    sort_graph,
    unresolved_outer_reads,
)
from tests.bad_input.conftest import refused, run_cli

SAMPLES = 16


def _weights(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) * 0.3).astype(np.float32)


def control_flow_model(path: Path, seed: int = 0) -> Path:
    """x [N, 3, 8, 8] and a rank-0 bool ``flag``. conv1 -> relu1 -> conv2 in the main graph; an If on
    ``flag`` whose then branch convolves relu1's output and whose else branch multiplies conv1's output
    by a matrix (both outer-scope reads), both adding relu3's output, which only they read (QDQ form
    folds relu3 into its conv's quantization, as on Silero's encoder); a Loop whose body multiplies a
    main-graph MatMul output by an outer initializer; everything summed into y [N, 5]."""
    rng = np.random.default_rng(seed)
    initializers = [
        numpy_helper.from_array(array, name)
        for name, array in {
            "w1": _weights(rng, 8, 3, 3, 3),
            "b1": _weights(rng, 8),
            "w2": _weights(rng, 8, 8, 3, 3),
            "w3": _weights(rng, 8, 3, 3, 3),
            "b2": _weights(rng, 8),
            "wt": _weights(rng, 8, 8, 3, 3),
            "we": _weights(rng, 8, 8),
            "wm": _weights(rng, 8, 8),
            "wl": _weights(rng, 8, 8),
            "wfc": _weights(rng, 8, 5),
            "trips": np.array(2, np.int64),
        }.items()
    ]
    then_branch = helper.make_graph(
        [
            helper.make_node("Conv", ["r1", "wt"], ["t_conv"], pads=[1, 1, 1, 1], name="then_conv"),
            helper.make_node("Add", ["t_conv", "r3"], ["t_out"], name="then_add"),
        ],
        "then",
        [],
        [helper.make_tensor_value_info("t_out", TensorProto.FLOAT, None)],
    )
    else_branch = helper.make_graph(
        [
            helper.make_node("Transpose", ["c1"], ["e_t"], perm=[0, 2, 3, 1], name="else_nhwc"),
            helper.make_node("MatMul", ["e_t", "we"], ["e_m"], name="else_matmul"),
            helper.make_node("Transpose", ["e_m"], ["e_back"], perm=[0, 3, 1, 2], name="else_nchw"),
            helper.make_node("Add", ["e_back", "r3"], ["e_out"], name="else_add"),
        ],
        "else",
        [],
        [helper.make_tensor_value_info("e_out", TensorProto.FLOAT, None)],
    )
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"], name="loop_cond"),
            helper.make_node("MatMul", ["m", "wl"], ["s"], name="loop_matmul"),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, None),
        ],
    )
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["x", "w3"], ["c3"], pads=[1, 1, 1, 1], name="conv3"),
        helper.make_node("Relu", ["c3"], ["r3"], name="relu3"),
        helper.make_node("If", ["flag"], ["branch"], then_branch=then_branch, else_branch=else_branch, name="if"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Add", ["c2", "branch"], ["sum"], name="add"),
        helper.make_node("GlobalAveragePool", ["sum"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["feat"], name="flatten"),
        helper.make_node("MatMul", ["feat", "wm"], ["m"], name="matmul_m"),
        helper.make_node("Loop", ["trips", ""], ["steps"], body=body, name="loop"),
        helper.make_node("ReduceMean", ["steps"], ["step_mean"], axes=[0], keepdims=0, name="step_mean"),
        helper.make_node("Add", ["feat", "step_mean"], ["feat2"], name="add2"),
        helper.make_node("MatMul", ["feat2", "wfc"], ["y"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "control_flow",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8]),
            helper.make_tensor_value_info("flag", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def feeds(seed: int, count: int = SAMPLES) -> dict[str, np.ndarray]:
    """Per-sample feeds (the rank-0 flag allows no other layout): both branches, alternately."""
    rng = np.random.default_rng(seed)
    return {
        "x": rng.random((count, 1, 3, 8, 8)).astype(np.float32),
        "flag": (np.arange(count) % 2 == 0),
    }


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return control_flow_model(tmp_path_factory.mktemp("control-flow") / "model.onnx")


def _outputs(path: Path, arrays: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    count = len(next(iter(arrays.values())))
    return np.stack([session.run(None, {k: np.asarray(v[i, ...]) for k, v in arrays.items()})[0] for i in range(count)])


def assert_valid_and_faithful(int8: Path, fp32: Path) -> None:
    """onnx's full check passes, onnxruntime runs it, and its outputs follow fp32's on both branches."""
    onnx.checker.check_model(onnx.load(str(int8)), full_check=True)
    arrays = feeds(seed=7)
    reference, got = _outputs(fp32, arrays), _outputs(int8, arrays)
    for branch in (arrays["flag"], ~arrays["flag"]):
        a, b = reference[branch].ravel(), got[branch].ravel()
        cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        assert cosine > 0.99, cosine
        assert np.abs(a - b).max() < 0.15 * np.abs(a).max(), (np.abs(a - b).max(), np.abs(a).max())


def _main_ops(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in onnx.load(str(path)).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def _quantized_main_convs(path: Path) -> int:
    """Main-graph convolutions that run int8: QDQ Convs whose weight is dequantized, QLinearConv, ConvInteger."""
    graph = onnx.load(str(path)).graph
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    qdq = sum(1 for n in graph.node if n.op_type == "Conv" and n.input[1] in dequantized)
    ops = _main_ops(path)
    return qdq + ops.get("QLinearConv", 0) + ops.get("ConvInteger", 0)


def test_the_fp32_model_trips_the_quantizers_order(model):
    """The premise: an order by listed inputs alone puts the If before conv1, which its branches read."""
    graph = onnx.load(str(model)).graph
    reads = {n.name: node_outer_reads(n) for n in graph.node}
    assert {"c1", "r1", "r3"} <= reads["if"] and "m" in reads["loop"]
    assert list(graph.node[4].input) == ["flag"]  # ready before conv1: nothing listed ties it to conv1


@pytest.mark.parametrize(
    "settings,bodies",
    [
        ({"backend": "ort-static"}, "kept in float"),
        ({"backend": "ort-static", "format": "qoperator"}, "kept in float"),
        ({"backend": "ort-dynamic"}, "quantized"),
    ],
    ids=["static-qdq", "static-qoperator", "dynamic"],
)
def test_backends_give_a_valid_int8_model_that_follows_fp32(model, tmp_path, settings, bodies):
    out = tmp_path / "int8.onnx"
    result = quantize(model, feeds(seed=1), quant_config(**settings, reduce_range=True), out)
    assert_valid_and_faithful(out, model)
    assert _quantized_main_convs(out) == 3  # the values the bodies read did not keep their producers in float
    control = result.report["control_flow"]
    assert control["bodies"] == bodies
    assert control["control_flow_nodes"] == ["if (If)", "loop (Loop)"]
    assert control["outer_scope_values"] == ["c1", "m", "r1", "r3"]
    int8 = onnx.load(str(out))
    assert not unresolved_outer_reads(int8.graph)
    shields = [n for n, _ in iter_nodes(int8.graph) if n.op_type == "Identity" and n.name.startswith("edgeport_outer_")]
    assert not shields
    inner = [n.op_type for n, depth in iter_nodes(int8.graph) if depth > 0]
    if bodies == "kept in float":
        assert "then_conv" in {n.name for n, _ in iter_nodes(int8.graph)} and "QuantizeLinear" not in inner
    else:
        assert {"ConvInteger", "MatMulInteger"} <= set(inner)


def _auto(capsys, model: Path, folder: Path, out: Path) -> tuple[int, str, str]:
    """``edgeport quantize`` with the default backend (auto) on the calib.npz and val.npz in ``folder``."""
    return run_cli(
        capsys, "quantize", model, "--calib", folder / "calib.npz", "--val", folder / "val.npz", "-o", out, "--quiet"
    )


def test_auto_gives_a_valid_int8_model_and_says_what_stayed_float(model, tmp_path, capsys):
    np.savez(tmp_path / "calib.npz", **feeds(seed=1))
    np.savez(tmp_path / "val.npz", **feeds(seed=2))
    out = tmp_path / "model.int8.onnx"
    code, _, err = _auto(capsys, model, tmp_path, out)
    assert code == 0, err
    assert_valid_and_faithful(out, model)
    manifest = json.loads(out.with_name("model.int8.manifest.json").read_text())
    control = manifest["lineage"]["quantization"]["report"]["control_flow"]
    assert control["outer_scope_values"] == ["c1", "m", "r1", "r3"]
    attempts = manifest["auto"]["attempts"] if manifest.get("auto") else []
    assert all(a["error"] is None for a in attempts), attempts


def test_sort_graph_counts_what_bodies_read(model):
    """The repair on its own: the If moved first (where onnxruntime's sort left it) fails onnx's check;
    sort_graph puts it after conv1 and relu1 and keeps every other node where it was."""
    broken = onnx.load(str(model))
    nodes = list(broken.graph.node)
    order = [nodes[4], *nodes[:4], *nodes[5:]]
    del broken.graph.node[:]
    broken.graph.node.extend(order)
    with pytest.raises(onnx.checker.ValidationError, match="topologically sorted"):
        onnx.checker.check_model(broken, full_check=True)
    assert sort_graph(broken.graph)
    assert [n.name for n in broken.graph.node] == [n.name for n in nodes]
    onnx.checker.check_model(broken, full_check=True)
    assert not sort_graph(broken.graph)  # already sorted: nothing changes


def test_shields_make_outer_reads_explicit_and_go_again(model):
    shielded = onnx.load(str(model))
    shields = shield_outer_reads(shielded)
    assert sorted(s.value for s in shields) == ["c1", "m", "r1", "r3"]
    explicit = {n.input[0] for n in shielded.graph.node if n.op_type == "Identity"}
    assert explicit == {"c1", "m", "r1", "r3"}
    assert not {"c1", "m", "r1", "r3"} & set().union(*(node_outer_reads(n) for n in shielded.graph.node))
    onnx.checker.check_model(shielded, full_check=True)
    restore_outer_reads(shielded, shields)
    assert shielded.SerializeToString() == onnx.load(str(model)).SerializeToString()


# --- third-party failures inside quantize: one line naming the model and the backend ----------------------


class FakeOrtFail(RuntimeError):
    """What onnxruntime raises from type inference (its own exception type, a multi-line message)."""


def test_a_quantizer_exception_is_one_line_naming_model_and_backend(model, tmp_path, capsys, monkeypatch):
    import onnxruntime.quantization

    def broken(*args, **kwargs):
        raise FakeOrtFail(
            "[ONNXRuntimeError] : 1 : FAIL : Node (/Transpose) Op (Transpose) [TypeInferenceError]\n"
            "Invalid attribute perm {0, 2, 3, 1}, input shape = {36}\n"
        )

    monkeypatch.setattr(onnxruntime.quantization, "quantize_static", broken)
    np.savez(tmp_path / "calib.npz", **feeds(seed=1))
    code, _, err = run_cli(
        capsys,
        "quantize",
        model,
        "--calib",
        tmp_path / "calib.npz",
        "--backend",
        "ort-static",
        "-o",
        tmp_path / "out.onnx",
        "--quiet",
    )
    line = refused(code, err, str(model), "'ort-static'", "FakeOrtFail", "Invalid attribute perm {0, 2, 3, 1}")
    assert "[ONNXRuntimeError]" not in line


def test_an_exception_after_the_backend_is_wrapped_once(model, tmp_path, monkeypatch):
    """onnx's checker (or any other library) failing after the backend wrote its file: a QuantizationError."""

    def broken(path):
        raise onnx.checker.ValidationError("Field 'shape' of 'type' is required\n\n==> Context: Bad node")

    monkeypatch.setattr("edgeport.quantize.apply.repair_quant_params", broken)
    with pytest.raises(QuantizationError) as caught:
        quantize(model, feeds(seed=1), quant_config(backend="ort-dynamic", reduce_range=True), tmp_path / "o.onnx")
    message = str(caught.value)
    assert "\n" not in message and str(model) in message and "'ort-dynamic'" in message
    assert "ValidationError: Field 'shape' of 'type' is required ==> Context: Bad node" in message
    assert isinstance(caught.value.__cause__, onnx.checker.ValidationError)


def test_auto_records_a_failing_recipe_and_goes_on(model, tmp_path, capsys, monkeypatch):
    import onnxruntime.quantization

    def broken(*args, **kwargs):
        raise FakeOrtFail("type inference failed\nsecond line")

    monkeypatch.setattr(onnxruntime.quantization, "quantize_static", broken)
    np.savez(tmp_path / "calib.npz", **feeds(seed=1))
    np.savez(tmp_path / "val.npz", **feeds(seed=2))
    out = tmp_path / "model.int8.onnx"
    code, _, err = _auto(capsys, model, tmp_path, out)
    assert code == 0 and "Traceback" not in err, err
    manifest = json.loads(out.with_name("model.int8.manifest.json").read_text())
    assert manifest["lineage"]["quantization"]["backend"] == "ort-dynamic"
    failed = [a for a in manifest["auto"]["attempts"] if a["error"]]
    assert failed and all(a["backend"] == "ort-static" for a in failed)
    assert all("'ort-static'" in a["error"] and "type inference failed second line" in a["error"] for a in failed)


def test_a_value_lost_by_the_quantizer_is_named(model, tmp_path):
    """A quantizer that renamed a value a body reads (what QOperator form did before the shields): one
    line naming the value and the node whose body reads it, not an invalid int8 file."""
    lost = onnx.load(str(model))
    branch = next(n for n in lost.graph.node if n.op_type == "If")
    for attribute in branch.attribute:
        rename_outer_reads(attribute.g, "c1", "c1_quantized")
    onnx.save(lost, str(tmp_path / "int8.onnx"))
    with pytest.raises(QuantizationError, match=r"model\.onnx: quantization lost 'c1_quantized'.*node 'if'"):
        finish_file(tmp_path / "int8.onnx", [], str(model))
