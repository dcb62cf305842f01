"""Within one auto or fallback run (backends/ort_reuse.py) a model is pre-processed once and calibrated
once per calibration setting: a later quantization of it finds both, and gives the very model it would
have made from scratch; other samples or settings calibrate again; outside a run nothing is kept."""

from __future__ import annotations

import numpy as np

from edgeport.quantize import quant_config, quantize
from edgeport.quantize.backends import ort_reuse
from edgeport.quantize.backends.ort_reuse import reuse
from tests.quantize.test_calibration_memory import calibration, conv_model, initializers


def _config(**options):
    return quant_config(backend="ort-static", reduce_range=True, **options)


def _count_pre_processing(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = ort_reuse.pre_process

    def counted(fp32_path, prepared):
        calls.append(str(fp32_path))
        return real(fp32_path, prepared)

    monkeypatch.setattr(ort_reuse, "pre_process", counted)
    return calls


def test_a_later_quantization_reuses_the_preparation_and_ranges_and_makes_the_same_model(tmp_path, monkeypatch):
    model, calib = conv_model(tmp_path / "m.onnx"), calibration(24)
    fresh = quantize(model, calib, _config(), tmp_path / "fresh.onnx")
    assert not fresh.report.get("calibration_reused")
    calls = _count_pre_processing(monkeypatch)
    with reuse(tmp_path / "reuse"):
        first = quantize(model, calib, _config(per_channel=False), tmp_path / "first.onnx")
        again = quantize(model, calib, _config(), tmp_path / "again.onnx")
    assert len(calls) == 1  # the second quantization copied the prepared model
    assert not first.report.get("calibration_reused") and again.report["calibration_reused"]
    made, expected = initializers(tmp_path / "again.onnx"), initializers(tmp_path / "fresh.onnx")
    assert made.keys() == expected.keys() and len(made) > 5
    for name, value in expected.items():
        assert np.array_equal(value, made[name]), name


def test_other_samples_or_another_method_calibrate_again(tmp_path):
    model = conv_model(tmp_path / "m.onnx")
    with reuse(tmp_path / "reuse"):
        quantize(model, calibration(24), _config(), tmp_path / "a.onnx")
        other_samples = quantize(model, calibration(24, seed=5), _config(), tmp_path / "b.onnx")
        other_method = quantize(model, calibration(24), _config(calibration_method="entropy"), tmp_path / "c.onnx")
        same = quantize(model, calibration(24), _config(calibration_method="entropy"), tmp_path / "d.onnx")
    assert not other_samples.report.get("calibration_reused")
    assert not other_method.report.get("calibration_reused")
    assert same.report["calibration_reused"]


def test_outside_a_run_nothing_is_kept(tmp_path, monkeypatch):
    model, calib = conv_model(tmp_path / "m.onnx"), calibration(24)
    calls = _count_pre_processing(monkeypatch)
    for name in ("a", "b"):
        report = quantize(model, calib, _config(calibration_method="entropy"), tmp_path / f"{name}.onnx").report
        assert not report.get("calibration_reused")
    assert len(calls) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.onnx", "b.onnx", "m.onnx"]


def test_nested_runs_share_the_outer_folder(tmp_path):
    model, calib = conv_model(tmp_path / "m.onnx"), calibration(24)
    with reuse(tmp_path / "outer"):
        quantize(model, calib, _config(), tmp_path / "a.onnx")
        with reuse(tmp_path / "inner"):  # a fallback inside auto
            inner = quantize(model, calib, _config(), tmp_path / "b.onnx")
    assert inner.report["calibration_reused"]
    assert not (tmp_path / "inner").exists()


def test_weights_quantized_earlier_in_the_run_are_found_again_and_identical(tmp_path):
    """onnxruntime's per-channel weight quantization (a Python loop per channel) is remembered within a run:
    a second quantization computes no weight again, and its int8 model is the one made from scratch."""
    import onnxruntime.quantization.base_quantizer as base_quantizer
    import onnxruntime.quantization.quant_utils as quant_utils

    from edgeport.quantize.backends.ort_weight_memo import memo_stats

    model, calib = conv_model(tmp_path / "m.onnx"), calibration(24)
    for backend in ("ort-dynamic", "ort-static"):
        config = quant_config(backend=backend, per_channel=True, reduce_range=True)
        fresh = initializers(quantize(model, calib, config, tmp_path / f"{backend}-fresh.onnx").path)
        with reuse(tmp_path / f"reuse-{backend}"):
            quantize(model, calib, config, tmp_path / f"{backend}-first.onnx")
            stats = memo_stats()
            assert stats is not None and stats.misses > 0 and stats.hits == 0
            misses = stats.misses
            again = initializers(quantize(model, calib, config, tmp_path / f"{backend}-again.onnx").path)
            assert stats.misses == misses and stats.hits >= misses  # every weight found again
        assert memo_stats() is None
        assert base_quantizer.quantize_data is quant_utils.quantize_data  # onnxruntime's own function back
        assert fresh.keys() == again.keys()
        for name, value in fresh.items():
            assert np.array_equal(value, again[name]), (backend, name)
