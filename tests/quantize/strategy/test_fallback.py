import json
import math

import numpy as np
import pytest

from edgeport.cli import main
from edgeport.core.progress import SILENT
from edgeport.errors import ConfigError
from edgeport.exporter import onnx_predict
from edgeport.quantize import ModelSource, quant_config, quantize
from edgeport.quantize.guard.judge import Validation
from edgeport.quantize.strategy.fallback import (
    FallbackReport,
    Tolerance,
    _fewest_in_float,
    layer_candidates,
    quantize_with_fallback,
)
from tests.helpers import plant_outlier_channel

PER_TENSOR = quant_config(per_channel=False, reduce_range=True)


@pytest.fixture(scope="module")
def damaged(tmp_path_factory, fp32_onnx, digits16):
    path = tmp_path_factory.mktemp("damaged") / "damaged.onnx"
    layers = plant_outlier_channel(fp32_onnx, path)
    # the fp32 function is unchanged...
    assert np.allclose(onnx_predict(path, digits16.val.x), onnx_predict(fp32_onnx, digits16.val.x), atol=1e-3)
    return path, layers


def _accuracy(path, splits):
    return float((onnx_predict(path, splits.val.x).argmax(1) == splits.val.y).mean() * 100)


def test_fallback_finds_and_excludes_the_damaged_layers(tmp_path, damaged, digits16):
    path, (first, second) = damaged
    calib, val = {"input": digits16.train.x[:128]}, {"input": digits16.val.x}
    fp32 = _accuracy(path, digits16)
    # ...but plain per-tensor int8 collapses
    quantize(path, calib, PER_TENSOR, tmp_path / "plain.onnx")
    assert _accuracy(tmp_path / "plain.onnx", digits16) < fp32 - 20
    result, report = quantize_with_fallback(
        ModelSource(path),
        calib,
        PER_TENSOR,
        tmp_path / "fb.onnx",
        Validation(val, digits16.val.y, Tolerance(max_drop=1.0)),
    )
    assert report.within_tolerance
    assert first in report.excluded
    assert report.steps[0]["excluded"] == [] and report.steps[0]["top1_accuracy"] < fp32 - 20
    assert report.excluded in [step["excluded"] for step in report.steps]
    layers = layer_candidates(ModelSource(path), "onnx")
    assert len(report.sensitivity) == len(layers)
    # sensitivity in one pass, then the search: the full quantization plus about 2 log2(k) + 1 more
    assert report.quantizations == len(report.steps) <= 2 + 2 * math.ceil(math.log2(len(report.excluded)))
    sqnr = [row["sqnr_db"] for row in report.tensors if row["sqnr_db"] is not None]  # None: exact
    assert sqnr and sqnr == sorted(sqnr)  # the whole ranking, worst first
    assert _accuracy(tmp_path / "fb.onnx", digits16) >= fp32 - 1.0
    assert result.report["fallback_excluded"] == report.excluded
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_fallback_on_output_fidelity_without_labels(tmp_path, damaged, digits16):
    path, (first, _) = damaged
    _, report = quantize_with_fallback(
        ModelSource(path),
        {"input": digits16.train.x[:128]},
        PER_TENSOR,
        tmp_path / "fb.onnx",
        Validation({"input": digits16.val.x}, None, Tolerance(min_cosine=0.99)),
    )
    assert report.metric == "mean_cosine" and report.within_tolerance
    chosen = next(step for step in report.steps if step["excluded"] == report.excluded)
    assert report.steps[0]["mean_cosine"] < 0.99 <= chosen["mean_cosine"]
    assert first in report.excluded


def test_fallback_that_cannot_reach_tolerance_says_so(tmp_path, damaged, digits16, capsys):
    path, (first, _) = damaged
    np.savez(tmp_path / "calib.npz", x=digits16.train.x[:128])
    np.savez(tmp_path / "val.npz", x=digits16.val.x, y=digits16.val.y)
    args = [
        "quantize",
        str(path),
        "--calib",
        str(tmp_path / "calib.npz"),
        "--val",
        str(tmp_path / "val.npz"),
        "--per-tensor",
        "--reduce-range",
        "true",
        "--max-accuracy-drop",
        "1",
        "--json",
        "--quiet",
        "-o",
        str(tmp_path / "out.onnx"),
        "--fallback-layer",
        first,
    ]  # the second conv, also damaged, may not fall back
    assert main(args) == 1
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["fallback"]["within_tolerance"] is False
    assert manifest["fallback"]["excluded"] == [first]
    assert any("misses the tolerance" in w for w in manifest["warnings"])
    # the model is still written (never as out.onnx: it does not ship), with the verdict beside it
    assert (tmp_path / "out.rejected.onnx").exists() and not (tmp_path / "out.onnx").exists()


def test_unknown_fallback_layer_is_refused(tmp_path, damaged, digits16):
    path, _ = damaged
    with pytest.raises(ConfigError, match="fallback layer\\(s\\) conv9 not found"):
        quantize_with_fallback(
            ModelSource(path),
            {"input": digits16.train.x[:8]},
            PER_TENSOR,
            tmp_path / "o.onnx",
            Validation({"input": digits16.val.x}, digits16.val.y, Tolerance(max_drop=1)),
            allowed=["conv9"],
        )


def test_tolerance_validation():
    with pytest.raises(ConfigError, match="at least one"):
        Tolerance()
    with pytest.raises(ConfigError, match="max_accuracy_drop must be between 0 and 100"):
        Tolerance(max_drop=-1)
    with pytest.raises(ConfigError, match="min_cosine"):
        Tolerance(min_cosine=2)


@pytest.mark.parametrize("layers", [1, 2, 7, 49])
def test_the_search_finds_the_fewest_layers_in_few_steps(layers):
    ranked = [f"layer{i}" for i in range(layers)]
    for needed in range(1, layers + 1):  # within tolerance from ``needed`` layers in float on (monotone)
        probes = []

        def attempt(excluded, name, needed=needed, probes=probes):
            probes.append(len(excluded))
            within = len(excluded) >= needed
            return float(within), within, f"model-{len(excluded)}", []

        report = FallbackReport("mean_cosine", 1.0, 0.99)
        within, model = _fewest_in_float(ranked, attempt, report, SILENT)
        assert within and model == f"model-{needed}" and report.excluded == ranked[:needed]
        # exponential then bisection: 2 log2(k) + 1 at most, so one layer takes one step
        assert len(probes) <= 2 * math.ceil(math.log2(needed)) + 1, (needed, probes)


def _full_step(report: FallbackReport, quality: float) -> FallbackReport:
    report.steps.append({"excluded": [], report.metric: quality, "within_tolerance": False, "failed": []})
    return report


def test_the_search_ends_at_every_layer_when_none_is_enough():
    ranked = [f"layer{i}" for i in range(10)]
    report = _full_step(FallbackReport("mean_cosine", 1.0, 0.99), 0.45)
    within, model = _fewest_in_float(ranked, lambda excluded, name: (0.45, False, len(excluded), []), report, SILENT)
    assert not within and model == 10 and report.excluded == ranked
    # the two worst layers in float closed none of the gap: every layer in float is tried third, and misses
    assert [len(step["excluded"]) for step in report.steps[1:]] == [1, 2, 10]


def test_the_far_end_is_tried_early_only_while_the_worst_layers_barely_help():
    ranked = [f"layer{i}" for i in range(64)]

    def search(first: float, quality) -> tuple[list[int], int]:
        report = _full_step(FallbackReport("mean_cosine", 1.0, 0.99), first)

        def attempt(excluded, name):
            value = quality(len(excluded))
            return value, value >= 0.99, len(excluded), []

        _fewest_in_float(ranked, attempt, report, SILENT)
        return [len(step["excluded"]) for step in report.steps[1:]], len(report.excluded)

    # two layers closed more than half of the gap (0.90 -> 0.952 of 0.99): no early far end
    steady, needed = search(0.90, lambda k: 0.995 if k >= 10 else 0.95 + 0.001 * k)
    assert needed == 10 and 64 not in steady and steady[:4] == [1, 2, 4, 8]
    # barely any progress, yet 20 layers reach it: the far end, then the search below it, one step dearer
    slow, needed = search(0.90, lambda k: 0.995 if k >= 20 else 0.90 + 0.0001 * k)
    assert needed == 20 and slow[:4] == [1, 2, 64, 4]
    assert len(slow) <= 2 * math.ceil(math.log2(20)) + 2
    # no progress and no number of layers is enough: three steps instead of seven
    assert search(0.45, lambda k: 0.45) == ([1, 2, 64], 64)
