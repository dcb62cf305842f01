"""`edgeport quantize` never succeeds outside tolerance, and its default (auto) finds a faithful model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgeport.cli import main
from tests.helpers import assert_chosen_by_the_tie_rule, plant_outlier_channel
from tests.models.encoders import export_bert_encoder, save_padded_sentences


def _run(capsys, *args):
    code = main(["quantize", *(str(a) for a in args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _manifest(path):
    return json.loads(path.with_name(path.name.removesuffix(".onnx") + ".manifest.json").read_text())


def test_a_collapsed_model_is_never_a_success(tmp_path, capsys, fp32_onnx, digits16):
    damaged = tmp_path / "damaged.onnx"
    plant_outlier_channel(fp32_onnx, damaged)  # fp32 unchanged; per-tensor ranges ruined by one channel
    np.savez(tmp_path / "calib.npz", x=digits16.train.x[:128], y=digits16.train.y[:128])
    np.savez(tmp_path / "val.npz", x=digits16.val.x, y=digits16.val.y)
    out = tmp_path / "q.onnx"
    args = [damaged, "--calib", tmp_path / "calib.npz", "--val", tmp_path / "val.npz", "--quiet", "-o", out]
    code, stdout, err = _run(capsys, *args, "--per-tensor", "--reduce-range", "true")  # no tolerance given
    assert code == 1, err
    manifest = _manifest(out)
    assert next(iter(manifest)) == "verdict" and manifest["verdict"].startswith("OUTSIDE TOLERANCE")
    guard = manifest["guard"]
    assert guard["metric"] == "top1_accuracy" and not guard["within_tolerance"]
    assert guard["required"] == pytest.approx(manifest["verification"]["accuracy"]["fp32"] - 1.0)
    # written to be inspected, under a name no one ships by mistake
    assert "OUTSIDE TOLERANCE" in stdout and not out.exists() and (tmp_path / "q.rejected.onnx").is_file()
    assert manifest["ships"] is False and manifest["artifact"]["path"] == "q.rejected.onnx"


def test_without_val_fidelity_is_judged_on_held_back_samples(tmp_path, capsys, fp32_onnx, digits16):
    np.savez(tmp_path / "calib.npz", x=digits16.train.x[:40])
    out = tmp_path / "q.onnx"
    code, _, err = _run(capsys, fp32_onnx, "--calib", tmp_path / "calib.npz", "--quiet", "-o", out)
    assert code == 0, err
    manifest = _manifest(out)
    assert manifest["guard"]["judged_on"] == "the last 10 of 40 samples of " + str(tmp_path / "calib.npz") + (
        ", held back from calibration"
    )
    assert manifest["guard"]["metric"] == "mean_cosine" and manifest["guard"]["required"] == 0.99
    assert manifest["verification"]["samples"] == 10
    auto = manifest["auto"]
    assert auto["graph"]["kind"] == "conv-dominant"
    # both static recipes are faithful here, so both were measured and the faster one kept (of the two tied on
    # speed, the more faithful); dynamic is not tried
    measured = {a["recipe"]: a["p50_ms"] for a in auto["attempts"]}
    assert set(measured) == {"static-per-channel", "static-float-classifier"} and all(measured.values())
    assert_chosen_by_the_tie_rule(measured, auto["chosen"], {a["recipe"]: a["value"] for a in auto["attempts"]})
    assert "dynamic" in auto["skipped"]


def test_an_opset_11_graph_is_upgraded_before_per_channel_int8(tmp_path, capsys, trained_cnn, digits16):
    old = tmp_path / "old.onnx"
    torch.onnx.export(
        trained_cnn.eval(),
        torch.from_numpy(digits16.train.x[:1]),
        str(old),
        dynamo=False,
        opset_version=11,
        input_names=["input"],
        dynamic_axes={"input": {0: "batch"}},
    )
    np.savez(tmp_path / "calib.npz", x=digits16.train.x[:64])
    np.savez(tmp_path / "val.npz", x=digits16.val.x[:64])
    out = tmp_path / "q.onnx"
    args = [old, "--calib", tmp_path / "calib.npz", "--val", tmp_path / "val.npz", "--quiet", "-o", out]
    code, _, err = _run(capsys, *args)
    assert code == 0, err
    assert _manifest(out)["lineage"]["quantization"]["report"]["opset_upgraded"] == "11 -> 13"


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    """A 2-layer BERT-style encoder with random weights: three int64 inputs, a hidden-state output."""
    folder = tmp_path_factory.mktemp("encoder")
    sizes = {"hidden": 64, "layers": 2, "heads": 4, "intermediate": 128}
    export_bert_encoder(folder / "encoder.onnx", vocab=200, length=16, **sizes)
    rng = np.random.default_rng(0)
    for name, count in (("calib", 24), ("val", 12)):
        save_padded_sentences(folder / f"{name}.npz", count, 16, 200, rng)
    return folder


def test_auto_finds_a_faithful_int8_encoder_without_flags(tmp_path, capsys, encoder):
    out = tmp_path / "encoder.int8.onnx"
    args = [encoder / "encoder.onnx", "--calib", encoder / "calib.npz", "--val", encoder / "val.npz", "-o", out]
    code, _, err = _run(capsys, *args, "--quiet")
    assert code == 0, err
    manifest = _manifest(out)
    auto = manifest["auto"]
    assert auto["graph"]["kind"] == "matmul-dominant" and auto["graph"]["integer_inputs"] == 3
    tried = {a["recipe"]: a for a in auto["attempts"]}
    assert set(tried) == {"static-weight-matmuls", "dynamic", "static-per-channel"}
    chosen = tried[auto["chosen"]]
    assert chosen["within_tolerance"] and chosen["value"] >= 0.99
    faithful = [a for a in tried.values() if a["within_tolerance"]]
    # the fastest of the faithful ones; of those tied on speed, the most faithful
    fidelity = {a["recipe"]: a["value"] for a in faithful}
    assert_chosen_by_the_tie_rule({a["recipe"]: a["p50_ms"] for a in faithful}, auto["chosen"], fidelity)
    guard = manifest["guard"]
    assert guard["metric"] == "mean_cosine" and guard["within_tolerance"]
    assert "top1_agreement" not in manifest["verification"]["vs_fp32"]  # a hidden state has no argmax
    # the quantizer's own warnings are kept in the manifest, not printed: one summary line at most
    assert "out-of-range" not in err and "invalid value" not in err
    assert all("third-party" not in line or line.startswith("note: ") for line in err.splitlines())


def test_forcing_a_backend_still_runs_the_guard(tmp_path, capsys, encoder):
    out = tmp_path / "encoder.int8.onnx"
    args = [encoder / "encoder.onnx", "--calib", encoder / "calib.npz", "--val", encoder / "val.npz", "-o", out]
    code, _, err = _run(capsys, *args, "--backend", "ort-dynamic", "--quiet")
    assert code == 0, err
    manifest = _manifest(out)
    assert manifest["auto"] is None and manifest["guard"]["within_tolerance"]
    code, _, _ = _run(capsys, *args, "--backend", "ort-dynamic", "--min-cosine", "1.0", "--quiet")
    assert code == 1 and _manifest(out)["verdict"].startswith("OUTSIDE TOLERANCE")


def test_explain_ranks_every_quantized_tensor(tmp_path, capsys, encoder):
    out = tmp_path / "encoder.int8.onnx"
    args = [encoder / "encoder.onnx", "--calib", encoder / "calib.npz", "--val", encoder / "val.npz", "-o", out]
    code, stdout, err = _run(capsys, *args, "--backend", "ort-static", "--explain", "--quiet")
    assert code == 0, err
    ranking = _manifest(out)["sensitivity"]
    assert len(ranking) > 10 and {row["kind"] for row in ranking} == {"activation", "weight"}
    sqnr = [row["sqnr_db"] for row in ranking if row["sqnr_db"] is not None]
    assert sqnr == sorted(sqnr)  # worst first
    assert "the 10 worst of" in stdout and "SQNR" in stdout
