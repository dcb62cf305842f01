"""`edgeport quantize` and `edgeport bench` on a model whose inputs are not batch-first: a streaming
voice-activity detector with input [batch, 512], state [2, batch, 128] and a rank-0 int64 sample rate,
fed per-sample .npz files (each slice along the first axis one complete model input)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from edgeport.cli import main
from edgeport.quantize.guard.verify import ort_session, run_all_outputs

SAMPLES = 64


class Vad(nn.Module):
    """A GRU-like update of a two-layer state from one 512-sample frame, scaled by the sample rate."""

    def __init__(self) -> None:
        super().__init__()
        self.encode = nn.Linear(512, 128)
        self.update = nn.Linear(256, 128)
        self.gate = nn.Linear(256, 128)
        self.head = nn.Linear(128, 1)

    def forward(self, input, state, sr):
        x = torch.relu(self.encode(input * (sr.float() / 16000)))
        both = torch.cat([x, state[0]], dim=1)
        z = torch.sigmoid(self.gate(both))
        hidden = z * state[0] + (1 - z) * torch.tanh(self.update(both))
        return torch.sigmoid(self.head(hidden)), torch.stack([hidden, state[1]])


def _feeds(rng, state_shape=(2, 1, 128)) -> dict[str, np.ndarray]:
    return {
        "input": rng.standard_normal((SAMPLES, 1, 512)).astype(np.float32),
        "state": (0.5 * rng.standard_normal((SAMPLES, *state_shape))).astype(np.float32),
        "sr": np.full(SAMPLES, 16000, np.int64),
    }


@pytest.fixture(scope="module")
def vad(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("vad")
    model = Vad().eval()
    example = (torch.randn(1, 512), torch.randn(2, 1, 128), torch.tensor(16000, dtype=torch.int64))
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice: it is the one used here
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            example,
            str(folder / "vad.onnx"),
            dynamo=False,
            opset_version=17,
            input_names=["input", "state", "sr"],
            output_names=["prob", "new_state"],
            dynamic_axes={"input": {0: "batch"}, "state": {1: "batch"}},
        )
    rng = np.random.default_rng(0)
    np.savez(folder / "calib.npz", **_feeds(rng))
    np.savez(folder / "mixed.npz", **_feeds(rng, state_shape=(2, 128)))  # state batch-first, the rest not
    return folder, model


def _run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _manifest(path):
    return json.loads(path.with_name(path.name.removesuffix(".onnx") + ".manifest.json").read_text())


def test_per_sample_outputs_are_the_torch_model_sample_by_sample(vad):
    folder, model = vad
    feeds = dict(np.load(folder / "calib.npz"))
    outputs = run_all_outputs(ort_session(folder / "vad.onnx"), feeds)
    assert outputs["prob"].shape == (SAMPLES, 1, 1) and outputs["new_state"].shape == (SAMPLES, 2, 1, 128)
    with torch.no_grad():
        prob, state = model(
            torch.from_numpy(feeds["input"][5]), torch.from_numpy(feeds["state"][5]), torch.tensor(16000)
        )
    assert np.allclose(outputs["prob"][5], prob.numpy(), atol=1e-5)
    assert np.allclose(outputs["new_state"][5], state.numpy(), atol=1e-5)


def test_static_int8_calibrated_on_per_sample_feeds(vad, tmp_path, capsys):
    folder, _ = vad
    out = tmp_path / "vad.int8.onnx"
    code, _, err = _run(
        capsys, "quantize", folder / "vad.onnx", "--calib", folder / "calib.npz", "--backend", "ort-static",
        "--explain", "--quiet", "-o", out,
    )  # fmt: skip
    assert code == 0, err
    manifest = _manifest(out)
    report = manifest["lineage"]["quantization"]["report"]
    assert report["calibration_layout"] == "per-sample" and report["calibration_batch"] == 1
    assert report["calibration_samples"] == 48  # 16 of the 64 held back to judge fidelity
    verification = manifest["verification"]
    assert verification["samples"] == 16 and verification["coverage"]["share"] == 1.0
    assert verification["reference_runtime"]["samples"] == 4, verification["reference_runtime"]
    guard = manifest["guard"]
    assert guard["within_tolerance"] and {o["name"] for o in guard["outputs"]} == {"prob", "new_state"}
    # --explain ran the exposed QDQ model on per-sample feeds: every activation pair has a measured SQNR
    sensitivity = {row["tensor"]: row for row in manifest["sensitivity"]}
    assert {"input", "/head/Gemm_output_0", "head.weight"} <= set(sensitivity)
    assert sensitivity["input"]["sqnr_db"] > 30 and sensitivity["head.weight"]["sqnr_db"] > 30


def test_dynamic_int8_and_bench_with_per_sample_feeds(vad, tmp_path, capsys):
    folder, _ = vad
    out = tmp_path / "vad.dyn.onnx"
    args = ["--calib", folder / "calib.npz", "--backend", "ort-dynamic", "--quiet", "-o", out]
    code, _, err = _run(capsys, "quantize", folder / "vad.onnx", *args)
    assert code == 0, err
    assert _manifest(out)["guard"]["within_tolerance"]
    bench = ["--inputs", folder / "calib.npz", "--iterations", 20, "--json"]
    code, stdout, err = _run(capsys, "bench", folder / "vad.onnx", "--vs", out, *bench)
    assert code == 0, err
    results = json.loads(stdout)["results"]
    assert [r["settings"]["batch"] for r in results] == [1, 1]
    assert all(r["settings"]["inputs"] == "given" and len(r["samples_ms"]) == 20 for r in results)


def test_a_mixed_layout_file_exits_2_naming_the_input(vad, tmp_path, capsys):
    folder, _ = vad
    code, _, err = _run(
        capsys, "quantize", folder / "vad.onnx", "--calib", folder / "mixed.npz", "-o", tmp_path / "q.onnx"
    )
    assert code == 2 and err.count("\n") == 1, err
    assert "mixed.npz: calibration input 'state' has shape (64, 2, 128)" in err and "per-sample feeds" in err
    assert not (tmp_path / "q.onnx").exists()
    code, _, err = _run(capsys, "bench", folder / "vad.onnx", "--inputs", folder / "mixed.npz", "--iterations", 5)
    assert code == 2 and err.count("\n") == 1 and "benchmark input 'state'" in err, err


def test_the_default_auto_recipe_takes_per_sample_feeds(vad, tmp_path, capsys):
    folder, _ = vad
    out = tmp_path / "vad.auto.onnx"
    code, _, err = _run(capsys, "quantize", folder / "vad.onnx", "--calib", folder / "calib.npz", "--quiet", "-o", out)
    assert code == 0, err
    auto = _manifest(out)["auto"]
    chosen = next(a for a in auto["attempts"] if a["recipe"] == auto["chosen"])
    assert chosen["within_tolerance"] and not [a for a in auto["attempts"] if a["error"]]
    # several faithful recipes are ranked by latency on one per-sample feed
    faithful = [a for a in auto["attempts"] if a["within_tolerance"]]
    assert len(faithful) < 2 or all(a["p50_ms"] for a in faithful)
