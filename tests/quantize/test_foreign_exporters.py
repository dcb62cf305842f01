"""Models from a non-torch converter (paddle2onnx-style stand-ins, opset 12, dynamic H/W) quantize with the
defaults: never a usage error (exit 2) for a valid model; within tolerance (exit 0), or outside it (exit 1)
with the failed metric named; the opset upgrade and the shape-inference fallback recorded.

Speed is not asserted here: whether int8 pays is measured on the machine at hand (perf/), not in tests.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgeport.cli import main
from edgeport.quantize.guard.heads import sequence_outputs
from tests.models.foreign_onnx import build_detector, build_recognizer, text_images, text_lines

pytestmark = pytest.mark.slow  # each case quantizes a conv net (several recipes) and verifies it: 10-30 s

DETECTOR_SIZE = 128  # a multiple of 32, as DBNet needs; the graph itself takes any H and W
RECOGNIZER_WIDTH = 160


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("foreign")
    build_detector(folder / "det.onnx")
    build_recognizer(folder / "rec.onnx")
    # calibration images unlike the ones the stand-ins were fitted on (other seeds)
    np.savez(folder / "det_calib.npz", x=text_images(40, DETECTOR_SIZE, DETECTOR_SIZE, seed=11)[0])
    np.savez(folder / "rec_calib.npz", x=text_lines(64, RECOGNIZER_WIDTH, seed=12)[0])
    return folder


def _quantize(capsys, model, calib, out, *options):
    code = main(["quantize", str(model), "--calib", str(calib), "-o", str(out), "--quiet", *options])
    captured = capsys.readouterr()
    manifest_path = out.with_name(out.name.removesuffix(".onnx") + ".manifest.json")
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else None
    return code, captured.err, manifest


def _assert_verdict_stated(code: int, err: str, manifest: dict | None) -> dict:
    """Exit 0 within tolerance, or 1 with the metric that failed named; never 2 (a usage error)."""
    assert code in (0, 1), err
    assert manifest is not None, err
    guard = manifest["guard"]
    assert guard["within_tolerance"] == (code == 0)
    if code == 0:
        assert manifest["verdict"].startswith("within tolerance") and not guard["failed"]
    else:
        assert manifest["verdict"].startswith("OUTSIDE TOLERANCE") and guard["failed"]
        assert manifest["verdict"].split(":")[1].split()[0] == guard["metric"]  # the reason, first
    return guard


def test_the_stand_ins_have_the_converters_habits(models):
    detector, recognizer = onnx.load(str(models / "det.onnx")), onnx.load(str(models / "rec.onnx"))
    for model in (detector, recognizer):
        assert model.opset_import[0].version == 12
        dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim if d.dim_param]
        assert dims and all(d.startswith("p2o.DynamicDimension.") for d in dims)
        assert "BatchNormalization" in {n.op_type for n in model.graph.node}  # not folded by the converter
    ops = {n.op_type for n in detector.graph.node}
    assert {"HardSigmoid", "Clip", "Resize", "Shape", "Slice", "Concat", "ConvTranspose", "Sigmoid"} <= ops
    squeeze = next(n for n in recognizer.graph.node if n.op_type == "Squeeze")
    assert [a.name for a in squeeze.attribute] == ["axes"]  # opset 12: an attribute, not an input
    # dynamic H and W really run; the recognizer's output is [N, W / 8, classes], summing to 1 per step
    det = ort.InferenceSession(str(models / "det.onnx"), providers=["CPUExecutionProvider"])
    for height, width in ((64, 96), (160, 128)):
        (probability,) = det.run(None, {"x": text_images(2, height, width, seed=3)[0]})
        assert probability.shape == (2, 1, height, width)
    rec = ort.InferenceSession(str(models / "rec.onnx"), providers=["CPUExecutionProvider"])
    (scores,) = rec.run(None, {"x": text_lines(2, 96, seed=3)[0]})
    assert scores.shape == (2, 12, 97) and np.allclose(scores.sum(-1), 1.0, atol=1e-4)
    assert sequence_outputs(recognizer) == {recognizer.graph.output[0].name}
    assert sequence_outputs(detector) == set()  # a probability map is not a sequence


def test_an_opset_12_detector_quantizes_with_the_defaults(tmp_path, capsys, models):
    out = tmp_path / "det.int8.onnx"
    code, err, manifest = _quantize(capsys, models / "det.onnx", models / "det_calib.npz", out)
    guard = _assert_verdict_stated(code, err, manifest)
    assert manifest is not None and guard["metric"] in ("mean_cosine", "sequence_agreement")
    report = manifest["lineage"]["quantization"]["report"]
    assert report["opset_upgraded"] == "12 -> 13"
    # ORT's symbolic shape inference cannot prove 2 * floor(H / 32) == floor(H / 16) where the FPN adds an
    # upsampled map to the next one; ONNX's shape inference is used instead, and the manifest says so
    assert "ONNX shape inference used" in report["symbolic_shape_inference"]
    assert manifest["verification"]["coverage"]["share"] == 1.0
    assert out.is_file()


def test_a_ctc_recognizer_quantizes_with_the_defaults(tmp_path, capsys, models):
    out = tmp_path / "rec.int8.onnx"
    code, err, manifest = _quantize(capsys, models / "rec.onnx", models / "rec_calib.npz", out)
    _assert_verdict_stated(code, err, manifest)
    assert manifest is not None
    assert manifest["lineage"]["quantization"]["report"]["opset_upgraded"] == "12 -> 13"


def test_a_forced_backend_judges_the_recognizer_by_its_decoded_text(tmp_path, capsys, models):
    """``--backend ort-static`` goes through ``verify_and_judge``, which reads the sequence outputs off
    the fp32 graph: the decoded sequence is judged, and a miss says so in the verdict."""
    out = tmp_path / "rec.static.onnx"
    code, err, manifest = _quantize(
        capsys, models / "rec.onnx", models / "rec_calib.npz", out, "--backend", "ort-static"
    )
    guard = _assert_verdict_stated(code, err, manifest)
    assert manifest is not None
    (output,) = [o["name"] for o in guard["outputs"]]
    sequence = [c for c in guard["checks"] if c["metric"] == "sequence_agreement"]
    assert [c["output"] for c in sequence] == [output] and sequence[0]["required"] == 0.95
    if not sequence[0]["passed"]:
        assert (
            "sequence_agreement" in manifest["verdict"]
            and f"sequence_agreement (output {output!r})" in (guard["failed"])
        )


def test_the_default_route_judges_the_decoded_text_too(tmp_path, capsys, models):
    out = tmp_path / "rec.int8.onnx"
    code, err, manifest = _quantize(capsys, models / "rec.onnx", models / "rec_calib.npz", out)
    guard = _assert_verdict_stated(code, err, manifest)
    assert manifest is not None
    assert any(c["metric"] == "sequence_agreement" for c in guard["checks"])
    assert "sequence_agreement" in manifest["verification"]["vs_fp32"]
    auto = manifest["auto"]
    for attempt in auto["attempts"]:  # every recipe was judged on the decoded text, not on cosine alone
        assert attempt["error"] or attempt["metric"] in ("mean_cosine", "sequence_agreement")
    missed = [a for a in auto["attempts"] if not a["within_tolerance"] and not a["error"]]
    if len(missed) == len(auto["attempts"]) - 1 and auto["attempts"][-1]["recipe"].endswith("+fallback"):
        # no recipe was faithful: the most faithful one was retried with its sensitive layers in float
        assert auto["attempts"][-1]["fallback"]["quantizations"] <= 9  # the first one plus at most 8
    # the chosen model was measured against fp32, so a slower int8 model is said to be slower
    assert auto["fp32_p50_ms"] is None or auto["fp32_p50_ms"] > 0


def test_the_sequence_requirement_can_be_set(tmp_path, capsys, models):
    out = tmp_path / "rec.lenient.onnx"
    args = ("--backend", "ort-static", "--min-sequence-agreement", "0")
    code, err, manifest = _quantize(capsys, models / "rec.onnx", models / "rec_calib.npz", out, *args)
    assert manifest is not None, err
    (sequence,) = [c for c in manifest["guard"]["checks"] if c["metric"] == "sequence_agreement"]
    assert sequence["required"] == 0 and sequence["passed"]
