"""Every output judged: labels add a check to the guard and never replace its others; options that
cannot apply are refused; onnxruntime's own log lines never precede edgeport's one error line.

The models are built here, node by node, so that what quantization does to each output is known:
a classifier head that int8 keeps, and a second head whose weights hold one huge value, so that its
per-tensor weight scale rounds every other weight to zero (the branch is destroyed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper, save

from tests.bad_input.conftest import one_line_error, run_cli

FEATURES, CLASSES, EMBEDDING = 16, 4, 8
SILENT_FEATURE = FEATURES - 1  # always 0 in the data: the huge weight it meets changes no fp32 output


def _gemm_model(path: Path, heads: dict[str, tuple[np.ndarray, np.ndarray]], features: int | str = "features"):
    """x [batch, features] -> one Gemm output per head (name -> (weights [FEATURES, out], bias))."""
    nodes, initializers, outputs = [], [], []
    for name, (weights, bias) in heads.items():
        initializers += [numpy_helper.from_array(weights, f"{name}_w"), numpy_helper.from_array(bias, f"{name}_b")]
        nodes.append(helper.make_node("Gemm", ["x", f"{name}_w", f"{name}_b"], [name], name=f"{name}_gemm"))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", weights.shape[1]]))
    graph = helper.make_graph(
        nodes,
        "heads",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", features])],
        outputs,
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(path))


def _samples(rng, count: int) -> np.ndarray:
    x = rng.standard_normal((count, FEATURES)).astype(np.float32)
    x[:, SILENT_FEATURE] = 0.0
    return x


@pytest.fixture(scope="module")
def two_heads(tmp_path_factory) -> Path:
    """model.onnx with a classifier output ``logits`` (first) and an ``embedding`` output that int8
    destroys; calib.npz (x), val.npz (x, y: the fp32 model's own, clear-margin predictions), and
    val_unlabelled.npz (the same x, no y)."""
    folder = tmp_path_factory.mktemp("two-heads")
    rng = np.random.default_rng(0)
    classifier = (rng.standard_normal((FEATURES, CLASSES)).astype(np.float32), np.zeros(CLASSES, np.float32))
    embedding_w = rng.standard_normal((FEATURES, EMBEDDING)).astype(np.float32)
    embedding_w[SILENT_FEATURE] = 1000.0  # sets the per-tensor weight scale: every other weight rounds to 0
    embedding = (embedding_w, np.full(EMBEDDING, 0.5, np.float32))
    _gemm_model(folder / "model.onnx", {"logits": classifier, "embedding": embedding})
    np.savez(folder / "calib.npz", x=_samples(rng, 64))
    pool = _samples(rng, 2000)
    logits = pool @ classifier[0]
    top2 = np.sort(logits, axis=1)[:, -2:]
    val = pool[top2[:, 1] - top2[:, 0] > 1.0][:200]  # no label a rounding error can flip
    np.savez(folder / "val.npz", x=val, y=(val @ classifier[0]).argmax(1))
    np.savez(folder / "val_unlabelled.npz", x=val)
    return folder


def _quantize(capsys, folder: Path, out: Path, *extra):
    return run_cli(
        capsys,
        "quantize",
        folder / "model.onnx",
        "--calib",
        folder / "calib.npz",
        "--backend",
        "ort-static",
        "--per-tensor",
        "--quiet",
        "--json",
        "-o",
        out,
        *extra,
    )


# --- 2. labels add the top-1 check; every other output is still judged ---------------------------


def test_destroyed_second_output_fails_without_labels(two_heads, tmp_path, capsys):
    import json

    code, out, err = _quantize(capsys, two_heads, tmp_path / "out.onnx", "--val", two_heads / "val_unlabelled.npz")
    assert code == 1, err
    guard = json.loads(out)["guard"]
    assert guard["failed"] == ["mean_cosine (output 'embedding')"], guard


def test_labels_do_not_hide_a_destroyed_second_output(two_heads, tmp_path, capsys):
    import json

    code, out, err = _quantize(capsys, two_heads, tmp_path / "out.onnx", "--val", two_heads / "val.npz")
    assert code == 1, err
    guard = json.loads(out)["guard"]
    checks = {c["metric"]: c for c in guard["checks"]}
    assert checks["top1_accuracy"]["output"] == "logits" and checks["top1_accuracy"]["passed"], guard
    assert checks["mean_cosine"]["output"] == "embedding" and not checks["mean_cosine"]["passed"], guard
    assert checks["mean_cosine"]["value"] < 0.5 and checks["mean_cosine"]["required"] == 0.99, guard
    assert guard["failed"] == ["mean_cosine (output 'embedding')"]
    assert json.loads(out)["verdict"].startswith("OUTSIDE TOLERANCE"), out


def test_max_accuracy_drop_and_min_cosine_combine(two_heads, tmp_path, capsys):
    """Both given: top-1 on the labelled output within the drop, every other output at the cosine."""
    import json

    val = two_heads / "val.npz"
    code, out, err = _quantize(
        capsys, two_heads, tmp_path / "out.onnx", "--val", val, "--max-accuracy-drop", 5, "--min-cosine", 0.05
    )
    assert code == 0, err
    checks = {c["metric"]: c for c in json.loads(out)["guard"]["checks"]}
    assert checks["top1_accuracy"]["required"] == pytest.approx(95.0) and checks["mean_cosine"]["required"] == 0.05


def test_fallback_with_labels_keeps_the_destroyed_output_in_float(two_heads, tmp_path, capsys):
    """The accuracy-aware fallback is driven by the same judge: with labels it must still bring the
    embedding within tolerance, which only keeping its layer in float does."""
    import json

    code, out, err = _quantize(
        capsys, two_heads, tmp_path / "out.onnx", "--val", two_heads / "val.npz", "--max-accuracy-drop", 1
    )
    assert code == 0, err
    manifest = json.loads(out)
    assert manifest["fallback"]["excluded"] == ["embedding_gemm"], manifest["fallback"]
    assert manifest["guard"]["within_tolerance"], manifest["guard"]


def test_the_stage_and_the_search_use_the_same_judge():
    """`edgeport run` and every search trial judge through ``quantize_verified`` -> ``verify_and_judge``
    -> ``judge``, the functions the CLI cases above exercise; a plain ``max_drop`` tolerance judges other
    outputs too."""
    from edgeport.quantize import job, verified
    from edgeport.quantize.guard import judge as guard
    from edgeport.stages import quantize as stage

    assert stage.quantize_verified is verified.quantize_verified is job.quantize_verified
    assert verified.verify_and_judge is guard.verify_and_judge
    rng = np.random.default_rng(1)
    labels = np.arange(20) % 4
    logits, embedding = np.eye(4)[labels] * 5.0, rng.standard_normal((20, 8))
    report = guard.judge(
        {"logits": logits, "embedding": embedding},
        {"logits": logits, "embedding": rng.standard_normal((20, 8))},
        labels,
        guard.Tolerance(max_drop=guard.DEFAULT_MAX_DROP),
        "val",
    )
    assert not report.within_tolerance and report.failed == ["mean_cosine (output 'embedding')"]


# --- 12. --min-sequence-agreement on a model without a sequence output ---------------------------


def test_min_sequence_agreement_without_a_sequence_output_is_refused(two_heads, tmp_path, capsys):
    out = tmp_path / "out.onnx"
    code, _, err = _quantize(capsys, two_heads, out, "--val", two_heads / "val.npz", "--min-sequence-agreement", 0.9)
    assert code == 2, err
    line = one_line_error(err)
    assert "--min-sequence-agreement" in line and "no sequence output" in line and "model.onnx" in line, line
    assert list(tmp_path.iterdir()) == [], "refused before any work: nothing written"


# --- 16. onnxruntime's own log line before edgeport's error ---------------------------------------


def test_a_model_that_fails_on_the_inputs_prints_only_edgeports_line(tmp_path, capfd):
    """The input's feature axis is dynamic, so 12 features pass edgeport's shape checks; the Gemm
    needs 16, so onnxruntime fails while running, and used to log its own coloured line first."""
    from edgeport.cli import main

    rng = np.random.default_rng(2)
    heads = {"logits": (rng.standard_normal((FEATURES, CLASSES)).astype(np.float32), np.zeros(CLASSES, np.float32))}
    _gemm_model(tmp_path / "model.onnx", heads)
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((8, 12)).astype(np.float32))
    code = main(["quantize", str(tmp_path / "model.onnx"), "--calib", str(tmp_path / "calib.npz"), "--quiet"])
    err = capfd.readouterr().err  # file-descriptor level: onnxruntime writes to fd 2 from C++
    assert code == 2, err
    assert "\x1b" not in err, repr(err)
    assert err.count("\n") == 1 and err.startswith("error: ") and "does not run on the given inputs" in err, repr(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib.npz", "model.onnx"]
