"""edgeport.report.run_report: report.md of a run folder, rendered from its manifest alone (no run here)."""

from __future__ import annotations

import re

import pytest

from edgeport.core.manifest import check_manifest
from edgeport.report.run_report import describe_quantization, latency_verdict, render_run_report
from tests.report.manifests import (
    OPENVINO_ROWS,
    ORT_ROWS,
    VERDICT_MISS,
    VERDICT_OK,
    fallback_report,
    ort_static,
    run_manifest,
    stats,
)


def section(report: str, title: str) -> str:
    """The text of one ``## title`` section, up to the next heading."""
    start = report.index(f"## {title}")
    following = report.find("\n## ", start + 1)
    return report[start : following if following >= 0 else None]


def table_row(report: str, first_cell: str) -> list[str]:
    """The cells of the Markdown table row that starts with ``first_cell``."""
    (line,) = [line for line in report.splitlines() if line.startswith(f"| {first_cell} |")]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_the_builder_is_a_manifest_the_schema_accepts():
    """The report tests' manifest is one edgeport itself would write and read back."""
    manifest = run_manifest()
    assert check_manifest(manifest, "run/manifest.json") is manifest


def test_report_opens_with_the_run_id_and_the_guards_verdict():
    lines = render_run_report(run_manifest()).splitlines()
    assert lines[0] == "# edgeport run 20261129-090223-fe1fd909"
    assert lines[2] == f"**int8 {VERDICT_OK}**"  # before anything else: whether the model may ship


def test_a_model_outside_tolerance_says_so_in_the_headline():
    manifest = run_manifest()
    manifest["verdict"] = VERDICT_MISS
    report = render_run_report(manifest)
    assert (
        report.splitlines()[2]
        == "**int8 OUTSIDE TOLERANCE: top1_accuracy 80.37%, required >= 94.2% (the validation split)**"
    )
    assert "within tolerance" not in report


def test_a_manifest_without_a_verdict_has_no_verdict_line():
    """Manifests written before the guard existed carry no verdict: no empty bold line, no 'None'."""
    manifest = run_manifest()
    del manifest["verdict"]
    lines = render_run_report(manifest).splitlines()
    assert lines[2].startswith("Dataset **digits**")
    assert "**int8" not in "\n".join(lines)


def test_dataset_line_names_the_data_its_splits_and_the_seed():
    report = render_run_report(run_manifest())
    assert (
        "Dataset **digits** (1797 images, shape [1, 16, 16], 10 classes; split train/val/test 1257/270/270), seed 7."
        in report
    )


def test_accuracy_table_has_one_row_per_model_with_val_and_test_to_two_decimals():
    report = render_run_report(run_manifest())
    assert table_row(report, "Teacher (PyTorch)") == ["Teacher (PyTorch)", "97.04", "96.30"]
    assert table_row(report, "Student, distilled (PyTorch)") == ["Student, distilled (PyTorch)", "95.56", "95.93"]
    assert table_row(report, "Student fp32 ONNX") == ["Student fp32 ONNX", "95.56", "95.93"]
    assert table_row(report, "Student int8 ONNX") == ["Student int8 ONNX", "95.19", "95.56"]
    assert "Student, no KD" not in report  # no baseline trained: no row for it


def test_accuracy_rows_keep_the_fixed_order_whatever_the_manifests_key_order():
    manifest = run_manifest()
    accuracy = manifest["metrics"]["accuracy"]
    accuracy["student_no_kd"] = {"val": 94.07, "test": 94.44}
    manifest["metrics"]["accuracy"] = dict(reversed(list(accuracy.items())))
    lines = section(render_run_report(manifest), "Accuracy").splitlines()
    labels = [line.split("|")[1].strip() for line in lines if line.startswith(("| Teacher", "| Student"))]
    assert labels == [
        "Teacher (PyTorch)",
        "Student, distilled (PyTorch)",
        "Student, no KD (PyTorch)",
        "Student fp32 ONNX",
        "Student int8 ONNX",
    ]


def test_kd_gain_of_one_seed_is_signed_and_compared_with_plain_cross_entropy():
    manifest = run_manifest()
    manifest["metrics"]["kd_gain_points"] = 1.48
    report = render_run_report(manifest)
    assert "Distillation changed the student's test accuracy by +1.48 points versus the same student" in report
    manifest["metrics"]["kd_gain_points"] = -0.37
    assert "by -0.37 points versus" in render_run_report(manifest)


def test_kd_gain_over_seeds_gives_the_mean_the_interval_and_this_runs_seed():
    manifest = run_manifest()
    manifest["metrics"]["kd_gain_points"] = 1.48
    manifest["metrics"]["kd_gain_over_seeds"] = {
        "seeds": 3,
        "mean_test_points": 0.62,
        "interval95_test_points": [-0.5, 1.74],
        "per_seed": [],
    }
    report = render_run_report(manifest)
    assert "by +0.62 points on average over 3 seeds (95% interval -0.50 to +1.74;" in report
    assert "this run's seed: +1.48)" in report
    assert "versus the same student trained with plain cross-entropy (same seed)" not in report  # one line, not two


def test_no_kd_gain_at_all_prints_no_distillation_line():
    report = render_run_report(run_manifest())
    assert "Distillation changed" not in report


@pytest.mark.parametrize(
    "exported, says",
    [("student_no_kd", "Exported the no-KD student: "), ("student", "Exported the distilled student: ")],
)
def test_the_student_choice_names_which_student_shipped_and_why(exported, says):
    manifest = run_manifest()
    reason = "distillation made this student worse: validation accuracy 93.70% with KD against 95.19% without"
    manifest["lineage"]["student_choice"] = {"exported": exported, "reason": reason}
    assert f"{says}{reason}." in render_run_report(manifest)


def test_quantization_paragraph_gives_the_int8_delta_agreement_sqnr_and_export_parity():
    report = render_run_report(run_manifest())
    assert (
        "Quantization: ort-static QDQ, uint8 activations, int8 per-channel weights, minmax calibration; "
        "calibration on 256 training images."
    ) in report
    assert "int8 versus fp32 ONNX on test: -0.37 points;" in report  # 95.56 - 95.93
    assert "agrees with fp32 on 98.52% of top-1 predictions (SQNR 27.3 dB)" in report
    assert "max abs diff 1.25e-06." in report


def test_equal_int8_and_fp32_accuracy_is_plus_zero_never_minus_zero():
    """95.93 - 95.93 can round to -0.00: the report says +0.00."""
    manifest = run_manifest()
    manifest["metrics"]["accuracy"]["int8_onnx"]["test"] = 95.93
    manifest["metrics"]["accuracy"]["fp32_onnx"]["test"] = 95.93 + 1e-12
    report = render_run_report(manifest)
    assert "on test: +0.00 points" in report and "-0.00" not in report


def test_coverage_counts_integer_kernels_and_names_the_layers_left_in_float():
    report = render_run_report(run_manifest())
    assert (
        "4 of 5 compute layers (Conv/Gemm/MatMul/LSTM/GRU/RNN) run as integer kernels "
        "(ConvInteger x3, MatMulInteger x1). "
        "Left in float: /head/Gemm (Gemm)."
    ) in report


def test_full_coverage_and_no_integer_ops_read_cleanly():
    manifest = run_manifest()
    manifest["verification"]["coverage"].update(integer_kernels=0, float_kernels=5, integer_ops={}, unfused=[])
    report = render_run_report(manifest)
    assert "0 of 5 compute layers (Conv/Gemm/MatMul/LSTM/GRU/RNN) run as integer kernels (none)." in report
    assert "Left in float" not in report


def test_second_runtime_agreement_or_the_reason_it_could_not_run():
    report = render_run_report(run_manifest())
    assert (
        "A second runtime (onnx.reference) agrees with onnxruntime on 100% of top-1 predictions for 64 samples "
        "(max abs diff 0.00123)."
    ) in report
    manifest = run_manifest()
    manifest["verification"]["reference_runtime"] = {"samples": 0, "error": "NotImplementedError: ConvInteger"}
    report = render_run_report(manifest)
    assert "The second runtime (onnx.reference) could not run the file: NotImplementedError: ConvInteger." in report
    assert "agrees with onnxruntime" not in report


def test_no_fallback_and_no_warnings_add_nothing():
    report = render_run_report(run_manifest())
    assert "fallback" not in report.lower() and "Warning" not in report
    assert "None" not in report


def test_fallback_lists_the_layers_kept_in_float_and_every_bisection_step():
    manifest = run_manifest()
    manifest["fallback"] = fallback_report()
    report = render_run_report(manifest)
    assert (
        "Accuracy-aware fallback (tolerance 94.56% val top-1): layers kept in float: /conv1/Conv, /head/Gemm; "
        "0 excluded -> 90.37; 1 excluded -> 93.70; 2 excluded -> 94.81."
    ) in report


def test_fallback_that_kept_nothing_in_float_says_none():
    manifest = run_manifest()
    fallback = fallback_report()
    fallback.update(excluded=[], steps=fallback["steps"][:1])
    fallback["steps"][0]["top1_accuracy"] = 95.19
    manifest["fallback"] = fallback
    assert "layers kept in float: none; 0 excluded -> 95.19." in render_run_report(manifest)


def test_each_warning_is_its_own_bold_paragraph():
    manifest = run_manifest()
    manifest["warnings"] = ["labels 1, 2 are not 0..1; they were mapped", "this x86 CPU has no VNNI"]
    lines = render_run_report(manifest).splitlines()
    first = lines.index("**Warning:** labels 1, 2 are not 0..1; they were mapped")
    assert lines[first + 1 : first + 3] == ["", "**Warning:** this x86 CPU has no VNNI"]


def test_latency_section_states_the_settings_and_the_cpu():
    latency = section(render_run_report(run_manifest()), "Latency")
    assert latency.startswith("## Latency (onnxruntime CPU)")
    assert (
        "Batch 1, 1 thread(s), 100 warm-up runs, 400 timed runs per model, interleaved in 10 rounds; "
        "CPU: Some CPU @ 2.1GHz (avx2, avx512_vnni)."
    ) in latency


def test_latency_table_shows_microseconds_below_a_millisecond_and_sizes_in_kib():
    report = render_run_report(run_manifest())
    assert table_row(report, "fp32") == ["fp32", "200.0 us", "250.0 us", "400.0 us", "210.0 us", "17.2 KiB"]
    assert table_row(report, "int8") == ["int8", "100.0 us", "125.0 us", "200.0 us", "110.0 us", "14.8 KiB"]


def test_latency_of_a_millisecond_or_more_is_shown_in_milliseconds():
    manifest = run_manifest()
    manifest["latency"]["fp32"] = stats(12.5, 14.0, 20.25, 12.75)
    manifest["latency"]["int8"] = stats(0.999, 1.0, 1.5, 1.2)
    report = render_run_report(manifest)
    assert table_row(report, "fp32")[1:5] == ["12.500 ms", "14.000 ms", "20.250 ms", "12.750 ms"]
    assert table_row(report, "int8")[1:5] == ["999.0 us", "1.000 ms", "1.500 ms", "1.200 ms"]


def test_a_percentile_too_few_samples_support_is_not_available():
    """p99 needs 100 samples; summarize records None, the report says n/a (not 'None', no crash)."""
    manifest = run_manifest()
    manifest["latency"]["fp32"] = stats(0.2, 0.25, None, 0.21, count=40)
    manifest["latency"]["int8"] = stats(0.1, 0.125, None, 0.11, count=40)
    report = render_run_report(manifest)
    assert table_row(report, "fp32")[3] == "n/a" and table_row(report, "int8")[3] == "n/a"
    assert "40 timed runs per model" in report and "None" not in report


@pytest.mark.parametrize(
    "ratio, interval, verdict",
    [
        (
            0.5,
            [0.45, 0.55],
            "int8 is faster: its p50 is 0.50x [0.45, 0.55] the fp32 p50 (50% less time per inference).",
        ),
        (0.31, None, "int8 is faster: its p50 is 0.31x the fp32 p50 (69% less time per inference)."),
        (0.9, [0.76, 1.12], "int8 is not faster beyond noise: its p50 is 0.90x [0.76, 1.12] the fp32 p50 (not faster"),
        (0.97, [0.95, 0.99], "int8 is not faster beyond noise: its p50 is 0.97x [0.95, 0.99] the fp32 p50 (it pays"),
        (1.0, None, "int8 is NOT faster on this machine: its p50 is 1.00x the fp32 p50."),
        (1.27, [1.2, 1.3], "int8 is NOT faster on this machine: its p50 is 1.27x [1.20, 1.30] the fp32 p50."),
    ],
)
def test_latency_verdict_wording(ratio, interval, verdict):
    text = latency_verdict({"int8_over_fp32_p50": ratio, "int8_over_fp32_p50_ci": interval})
    assert text.startswith(verdict)
    if ratio >= 1.0:  # the slower case says what to do about it
        assert "keep the fp32 model" in text and "another quantization format" in text
    else:
        assert "NOT" not in text


def test_report_states_the_ratio_in_bold_followed_by_its_verdict():
    manifest = run_manifest()
    manifest["latency"]["int8_over_fp32_p50"] = 1.27
    report = render_run_report(manifest)
    assert "int8/fp32 p50 ratio: **1.27**. int8 is NOT faster on this machine" in report


def test_openvino_runtime_names_itself_and_its_precision_in_the_latency_heading():
    manifest = run_manifest()
    manifest["latency"]["settings"].update(runtime="openvino", precision_used="bf16")
    assert "## Latency (OpenVINO CPU, bf16)" in render_run_report(manifest)
    manifest["latency"]["settings"]["precision_used"] = None
    report = render_run_report(manifest)
    assert "## Latency (OpenVINO CPU, default precision)" in report
    assert "onnxruntime CPU" not in report and "None" not in report


def test_manifests_before_runtimes_were_recorded_read_as_onnxruntime():
    manifest = run_manifest()
    del manifest["latency"]["settings"]["runtime"]
    del manifest["runtimes"]
    report = render_run_report(manifest)
    assert "## Latency (onnxruntime CPU)" in report and "## Every installed runtime" not in report


def test_onnxruntime_only_has_no_runtime_table():
    """Two rows (fp32 and int8 on onnxruntime) repeat the latency section: left out."""
    manifest = run_manifest()
    assert manifest["runtimes"]["rows"] == ORT_ROWS
    assert "## Every installed runtime" not in render_run_report(manifest)
    manifest["runtimes"] = None
    assert "## Every installed runtime" not in render_run_report(manifest)


def test_every_installed_runtime_gets_a_row_and_the_fastest_faithful_one_is_named():
    manifest = run_manifest()
    manifest["runtimes"] = {
        "tolerance_points": 1.0,
        "rows": ORT_ROWS + OPENVINO_ROWS,
        "fastest_faithful": "fp32@openvino",
    }
    table = section(render_run_report(manifest), "Every installed runtime")
    rows = [line for line in table.splitlines() if line.startswith("| fp32 |") or line.startswith("| int8 |")]
    assert rows == [
        "| fp32 | ort | fp32 | 200.0 us | 250.0 us | 1.00 | 95.56 | 100.0% | yes |",
        "| int8 | ort | int8 | 100.0 us | 125.0 us | 0.50 | 95.19 | 100.0% | yes |",
        "| fp32 | openvino | bf16 | 80.0 us | 90.0 us | 0.40 | 95.19 | 99.6% | yes |",
        "| int8 | openvino | int8 | 40.0 us | 50.0 us | 0.20 | 93.33 | 97.8% | no |",
    ]
    assert "Fastest within 1 point(s) of fp32 on val: **fp32@openvino**." in table


def test_files_table_lists_every_artifact_with_a_short_hash_then_the_run_files():
    report = render_run_report(run_manifest())
    files = section(report, "Files").splitlines()
    assert "| student.int8.onnx | int8_onnx (onnx-int8) | `1111111111111111` |" in files
    assert "| teacher.safetensors | teacher (torch-state) | `3333333333333333` |" in files
    assert files[-2:] == [
        "| manifest.json | everything above, machine-readable | |",
        "| latency.json | raw per-iteration latency samples | |",
    ]
    assert report.endswith("|\n")  # the file ends with a newline
    assert not re.search(r"`[0-9a-f]{17,}`", report)  # 16 hex digits, never the whole hash


def test_sections_come_in_reading_order():
    manifest = run_manifest()
    manifest["runtimes"]["rows"] = ORT_ROWS + OPENVINO_ROWS
    report = render_run_report(manifest)
    headings = [line for line in report.splitlines() if line.startswith("#")]
    assert headings == [
        "# edgeport run 20261129-090223-fe1fd909",
        "## Accuracy (top-1, %)",
        "## Latency (onnxruntime CPU)",
        "## Every installed runtime",
        "## Files",
    ]


@pytest.mark.parametrize(
    "quant, text",
    [
        (ort_static(), "ort-static QDQ, uint8 activations, int8 per-channel weights, minmax calibration"),
        (
            ort_static(format="qoperator", per_channel=False, calibration_method="entropy"),
            "ort-static QOPERATOR, uint8 activations, int8 per-tensor weights, entropy calibration",
        ),
        (
            {"backend": "ort-dynamic", "reduce_range": False, "per_channel": True, "weight_type": "int8"},
            "ort-dynamic, int8 per-channel weights, activations quantized at run time",
        ),
        (
            {"backend": "torch-pt2e", "reduce_range": False, "engine": "x86"},
            "torch-pt2e, engine x86, engine-default weights",
        ),
        (
            {"backend": "torch-fx", "reduce_range": False, "engine": "qnnpack", "per_channel": False},
            "torch-fx, engine qnnpack, per-tensor weights",
        ),
        (
            ort_static(smooth_alpha=0.5),
            "ort-static QDQ, uint8 activations, int8 per-channel weights, minmax calibration, "
            "SmoothQuant-smoothed (alpha 0.5)",
        ),
        (
            ort_static(reduce_range=True, reduce_range_reason="auto: this x86 CPU has no VNNI"),
            "ort-static QDQ, uint8 activations, int8 per-channel weights, minmax calibration, "
            "7-bit weight range (reduce_range: auto: this x86 CPU has no VNNI)",
        ),
        (
            {"backend": "torch-fx", "reduce_range": True, "engine": "x86", "per_channel": True},
            "torch-fx, engine x86, per-channel weights, 7-bit weight range (reduce_range: set)",
        ),
    ],
)
def test_describe_quantization(quant, text):
    assert describe_quantization(quant) == text


def test_smooth_alpha_left_unset_adds_nothing():
    """Configs from before SmoothQuant have no smooth_alpha key; set to None it is not mentioned either."""
    assert "SmoothQuant" not in describe_quantization(ort_static(smooth_alpha=None))
    assert "SmoothQuant" not in describe_quantization(ort_static())
