"""edgeport.report.summary: what ``edgeport run``, ``quantize``, ``bench`` and ``search`` print when they finish,
from manifests and reports built here (nothing is trained, exported or measured)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from edgeport.report.summary import (
    print_bench_summary,
    print_quantize_summary,
    print_search_summary,
    print_sensitivity,
    print_summary,
)
from tests.report.manifests import (
    OPENVINO_ROWS,
    ORT_ROWS,
    VERDICT_MISS,
    VERDICT_OK,
    auto_report,
    fallback_report,
    quantize_manifest,
    run_manifest,
    search_summary,
    selection,
    stats,
    trial,
)


def printed(function, *args) -> str:
    console = Console(file=io.StringIO(), width=1000, color_system=None)  # no cell wraps
    function(*args, console=console)
    return console.file.getvalue()


def cells(text: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is ``first``."""
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("│")]
        if len(parts) > 2 and parts[1] == first:
            return parts[1:-1]
    raise AssertionError(f"no row {first!r} in\n{text}")


# --- edgeport run ------------------------------------------------------------------------------------


def test_run_table_has_a_row_per_model_with_accuracies_and_onnx_latencies():
    text = printed(print_summary, run_manifest(), Path("runs/20261129"))
    assert "edgeport run 20261129-090223-fe1fd909" in text
    assert cells(text, "Teacher (PyTorch)") == ["Teacher (PyTorch)", "97.04", "96.30", "", ""]
    assert cells(text, "Student, distilled (PyTorch)") == ["Student, distilled (PyTorch)", "95.56", "95.93", "", ""]
    assert cells(text, "Student fp32 ONNX") == ["Student fp32 ONNX", "95.56", "95.93", "200.0 us", "250.0 us"]
    assert cells(text, "Student int8 ONNX") == ["Student int8 ONNX", "95.19", "95.56", "100.0 us", "125.0 us"]
    assert "Student, no KD" not in text


def test_run_latency_stays_in_microseconds_above_a_millisecond():
    manifest = run_manifest()
    manifest["latency"]["fp32"] = stats(12.5, 14.25, 20.0, 13.0)
    text = printed(print_summary, manifest, Path("runs/x"))
    assert cells(text, "Student fp32 ONNX")[3:] == ["12500.0 us", "14250.0 us"]


def test_run_with_too_few_timed_runs_for_a_p90_prints_n_a():
    """bench.iterations = 5 is valid; summarize then records p90 as None. The summary once crashed on it
    (None * 1000) after the whole run had finished."""
    manifest = run_manifest()
    manifest["latency"]["fp32"] = stats(0.2, None, None, 0.21, count=5)
    manifest["latency"]["int8"] = stats(0.1, None, None, 0.11, count=5)
    text = printed(print_summary, manifest, Path("runs/x"))
    assert cells(text, "Student fp32 ONNX")[3:] == ["200.0 us", "n/a"]
    assert cells(text, "Student int8 ONNX")[3:] == ["100.0 us", "n/a"]


def test_run_prints_the_guards_verdict_then_the_latency_verdict_then_the_folder():
    text = printed(print_summary, run_manifest(), Path("runs/20261129"))
    lines = text.splitlines()
    verdict = lines.index(f"int8 {VERDICT_OK}")
    assert lines[verdict + 1].startswith("int8 is faster: its p50 is 0.50x the fp32 p50 (50% less time")
    assert lines[-1] == f"run folder: {Path('runs/20261129')}"


def test_run_slower_int8_says_not_faster():
    manifest = run_manifest()
    manifest["verdict"] = VERDICT_MISS
    manifest["latency"]["int8_over_fp32_p50"] = 1.27
    text = printed(print_summary, manifest, Path("runs/x"))
    assert f"int8 {VERDICT_MISS}" in text
    assert "int8 is NOT faster on this machine: its p50 is 1.27x the fp32 p50." in text
    assert "int8 is faster" not in text


def test_run_without_verdict_kd_seeds_choice_or_other_runtimes_prints_only_what_applies():
    manifest = run_manifest()
    del manifest["verdict"]
    text = printed(print_summary, manifest, Path("runs/x"))
    assert "int8 within" not in text and "KD gain" not in text and "student:" not in text
    assert "fastest faithful" not in text and "None" not in text


def test_run_kd_gain_over_seeds_line():
    manifest = run_manifest()
    manifest["metrics"]["kd_gain_over_seeds"] = {
        "seeds": 5,
        "mean_test_points": 0.5,
        "interval95_test_points": [-0.25, 1.25],
    }
    text = printed(print_summary, manifest, Path("runs/x"))
    assert "KD gain over 5 seeds: +0.50 test points (95% interval -0.25 to +1.25)" in text


def test_run_names_the_student_only_when_the_no_kd_one_shipped_or_scored_higher_within_noise():
    manifest = run_manifest()
    manifest["lineage"]["student_choice"] = {"exported": "student", "reason": "the distilled one is better"}
    assert "student:" not in printed(print_summary, manifest, Path("runs/x"))
    manifest["lineage"]["student_choice"] = {"exported": "student_no_kd", "reason": "distillation made it worse"}
    assert "student: distillation made it worse" in printed(print_summary, manifest, Path("runs/x"))
    within = {"exported": "student", "within_noise": True, "reason": "higher but within noise"}
    manifest["lineage"]["student_choice"] = within
    assert "student: higher but within noise" in printed(print_summary, manifest, Path("runs/x"))


def test_run_names_the_fastest_faithful_runtime_when_there_are_others():
    manifest = run_manifest()
    manifest["runtimes"] = {
        "tolerance_points": 1.0,
        "rows": ORT_ROWS + OPENVINO_ROWS,
        "fastest_faithful": "fp32@openvino",
    }
    text = printed(print_summary, manifest, Path("runs/x"))
    assert (
        "fastest faithful on this CPU: fp32 on openvino (bf16), p50 80.0 us = 0.40x onnxruntime fp32 "
        "(report.md: every runtime)"
    ) in text
    manifest["runtimes"]["fastest_faithful"] = "int8"  # onnxruntime's: no precision to name
    text = printed(print_summary, manifest, Path("runs/x"))
    assert "fastest faithful on this CPU: int8 on ort, p50 100.0 us = 0.50x onnxruntime fp32" in text
    assert "ships:" not in text  # a manifest from before the deploy choice was recorded
    manifest["runtimes"]["deploy"] = {
        "label": "fp32@openvino", "model": "fp32", "runtime": "openvino", "precision": None,
        "verdict": "int8 on ort, the fastest faithful int8, ran at 1.25x ...: keep fp32 on openvino",
    }  # fmt: skip
    text = printed(print_summary, manifest, Path("runs/x"))
    assert "ships: fp32 on openvino: int8 on ort, the fastest faithful int8, ran at 1.25x" in " ".join(text.split())


# --- edgeport quantize --------------------------------------------------------------------------------


def test_quantize_table_puts_the_verdict_first_and_the_artifact_under_it():
    text = printed(print_quantize_summary, quantize_manifest(), Path("out/model.int8.onnx"))
    rows = [line.split("│")[1].strip() for line in text.splitlines() if line.count("│") == 3]
    assert rows[:3] == ["verdict", "backend", "size"]
    assert cells(text, "verdict")[1] == VERDICT_OK
    assert f"artifact: {Path('out/model.int8.onnx')}" in text.splitlines()  # whole on its line, to be copied
    assert (
        cells(text, "backend")[1] == "ort-static QDQ, uint8 activations, int8 per-channel weights, minmax calibration"
    )
    assert cells(text, "size")[1] == "35.6 KiB"


def test_quantize_manifest_without_a_guard_has_no_verdict_row():
    manifest = quantize_manifest()
    manifest["guard"] = None
    text = printed(print_quantize_summary, manifest, Path("out.onnx"))
    assert "verdict" not in text and "within tolerance" not in text


def test_quantize_fidelity_rows():
    text = printed(print_quantize_summary, quantize_manifest(), Path("out.onnx"))
    assert cells(text, "int8 coverage")[1] == "4 of 5 compute layers; float: /head/Gemm (Gemm)"
    assert cells(text, "top-1 agreement with fp32")[1] == "98.52%"
    assert cells(text, "SQNR / mean cosine vs fp32")[1] == "27.3 dB / 0.9987"
    assert cells(text, "accuracy fp32 -> int8")[1] == "95.56% -> 95.19%"
    assert cells(text, "second runtime (onnx.reference)")[1] == "100% top-1 agreement"
    assert "decoded sequences" not in text and "same file on" not in text and "fallback" not in text


def test_quantize_coverage_names_four_float_layers_then_counts_the_rest():
    manifest = quantize_manifest()
    unfused = [f"/encoder/layer.{i}/MatMul (MatMul)" for i in range(7)]
    manifest["verification"]["coverage"].update(integer_kernels=5, float_kernels=7, unfused=unfused)
    text = printed(print_quantize_summary, manifest, Path("out.onnx"))
    assert cells(text, "int8 coverage")[1] == (
        "5 of 12 compute layers; float: "
        + ", ".join(unfused[:4])
        + " and 3 more (manifest: verification.coverage.unfused)"
    )
    manifest["verification"]["coverage"].update(integer_kernels=5, float_kernels=0, unfused=[])
    assert (
        cells(printed(print_quantize_summary, manifest, Path("out.onnx")), "int8 coverage")[1]
        == "5 of 5 compute layers"
    )


def test_quantize_coverage_is_counted_where_the_artifact_ships():
    manifest = quantize_manifest()
    manifest["verification"]["coverage"].update(integer_kernels=0, float_kernels=33, unfused=["Conv.0 (Conv)"] * 33)
    manifest["verification"]["coverage_on_runtime"] = {
        "runtime": "openvino",
        "integer_kernels": 32,
        "float_kernels": 1,
        "unfused": ["BatchNormalization.0+HardSwish.0 (Convolution, f32)"],
    }
    text = printed(print_quantize_summary, manifest, Path("out.onnx"))
    assert cells(text, "int8 coverage")[1] == (
        "32 of 33 compute layers on openvino (0 of 33 on onnxruntime); float: "
        "BatchNormalization.0+HardSwish.0 (Convolution, f32)"
    )


def test_quantize_without_labels_reports_cosine_and_a_ctc_model_its_decoded_sequences():
    manifest = quantize_manifest()
    verification = manifest["verification"]
    del verification["accuracy"]
    verification["vs_fp32"] = {
        "max_abs_diff": 0.2,
        "mean_cosine": 0.99912,
        "sqnr_db": 30.0,
        "sequence_agreement": 0.9375,
    }
    verification["reference_runtime"] = {"samples": 64, "mean_cosine": 0.99999, "max_abs_diff": 0.001, "sqnr_db": 90.0}
    text = printed(print_quantize_summary, manifest, Path("out.onnx"))
    assert "top-1 agreement with fp32" not in text and "accuracy fp32 -> int8" not in text
    assert cells(text, "decoded sequences equal to fp32's")[1] == "93.8% of samples"
    assert cells(text, "second runtime (onnx.reference)")[1] == "mean cosine 1.0000"


def test_quantize_second_runtime_that_could_not_run_says_why():
    manifest = quantize_manifest()
    manifest["verification"]["reference_runtime"] = {"samples": 0, "error": "NotImplementedError: ConvInteger"}
    text = printed(print_quantize_summary, manifest, Path("out.onnx"))
    assert cells(text, "second runtime (onnx.reference)")[1] == "not run: NotImplementedError: ConvInteger"


def test_quantize_the_same_file_on_openvino_or_why_not():
    manifest = quantize_manifest()
    manifest["verification"]["other_runtimes"] = {
        "openvino": {"precision_used": "f32", "mean_cosine": 0.99871, "top1_agreement": 99.26}
    }
    text = printed(print_quantize_summary, manifest, Path("out.onnx"))
    assert cells(text, "same file on openvino")[1] == "mean cosine 0.9987, top-1 agreement 99.26% (f32)"
    manifest["verification"]["other_runtimes"] = {"openvino": {"error": "Cannot create ConvInteger layer"}}
    text = printed(print_quantize_summary, manifest, Path("out.onnx"))
    assert cells(text, "same file on openvino")[1] == "not run: Cannot create ConvInteger layer"


def test_quantize_fallback_row_within_and_outside_tolerance():
    manifest = quantize_manifest()
    manifest["fallback"] = fallback_report(within=True)
    text = printed(print_quantize_summary, manifest, Path("out.onnx"))
    assert cells(text, "fallback")[1] == "2 layer(s) kept in float: /conv1/Conv, /head/Gemm"
    manifest["fallback"] = fallback_report(within=False)
    text = printed(print_quantize_summary, manifest, Path("out.onnx"))
    assert cells(text, "fallback")[1] == "2 layer(s) kept in float: /conv1/Conv, /head/Gemm - STILL OUTSIDE TOLERANCE"
    manifest["fallback"] = {**fallback_report(), "excluded": []}
    assert (
        cells(printed(print_quantize_summary, manifest, Path("out.onnx")), "fallback")[1] == "0 layer(s) kept in float"
    )


def test_quantize_auto_row_lists_every_recipe_and_marks_the_chosen_one():
    manifest = quantize_manifest()
    manifest["auto"] = auto_report()
    line = cells(printed(print_quantize_summary, manifest, Path("out.onnx")), "auto")[1]
    parts = line.split("; ")
    assert parts[0] == "conv-dominant graph"
    assert parts[1] == "static-qdq-u8s8: top1_accuracy 95.19 ok, 0.48x fp32 p50 <- chosen"
    assert parts[2] == "static-qdq-s8s8: top1_accuracy 91.5 outside tolerance"  # not ranked: no speed
    # a long error cut at a word, within 120 characters, and marked (the manifest keeps it whole)
    assert parts[3].startswith("dynamic: failed (QuantizationError: the graph has no layer the graph has no layer")
    assert parts[3].endswith(" ...)") and len(parts[3]) <= len("dynamic: failed ()") + 120


def test_quantize_prints_edgeports_warnings_but_not_third_party_ones():
    manifest = quantize_manifest()
    manifest["warnings"] = ["this x86 CPU has no VNNI: set reduce_range", "third-party: onnxruntime said so (x3)"]
    text = printed(print_quantize_summary, manifest, Path("out.onnx"))
    assert "warning: this x86 CPU has no VNNI: set reduce_range" in text
    assert "onnxruntime said so" not in text


def wrapped_cell(text: str, first: str) -> str:
    """The value of a two-column table's row ``first`` with its continuation lines, whitespace dropped (a
    wrapped or folded cell splits its text at any character)."""
    parts, inside = [], False
    for line in text.splitlines():
        cells_here = [p.strip() for p in line.split("│")]
        if len(cells_here) != 4:  # a border line: the row ended
            inside = False if parts else inside
            continue
        if cells_here[1] == first or (inside and cells_here[1] == ""):
            inside = True
            parts.append(cells_here[2])
        elif inside:
            break
    return "".join("".join(parts).split())


def test_quantize_long_path_and_verdict_are_printed_whole_off_a_terminal(monkeypatch, capsys):
    """Off a terminal (a CI log) the summary fits 100 columns: the long verdict wraps inside its cell, nothing
    is cut ('verdi…'), and the artifact's path is printed whole under the table."""
    monkeypatch.delenv("COLUMNS", raising=False)
    manifest = quantize_manifest()
    manifest["verdict"] = VERDICT_MISS + "; mean_cosine 0.9213 on output 'logits' (>= 0.99) also FAILED" * 2
    path = Path("/very/long/output/folder/" + "nested/" * 12 + "model.int8.onnx")
    print_quantize_summary(manifest, path)
    out = capsys.readouterr().out
    assert f"artifact: {path}" in out.splitlines()
    assert wrapped_cell(out, "verdict") == "".join(manifest["verdict"].split())
    assert "…" not in out
    assert max(len(line) for line in out.splitlines() if not line.startswith("artifact: ")) <= 100


# --- edgeport quantize --explain ----------------------------------------------------------------------


def test_sensitivity_without_qdq_pairs_says_so():
    text = printed(print_sensitivity, [])
    assert "no QuantizeLinear/DequantizeLinear pairs to rank" in text


def test_sensitivity_shows_the_worst_tensors_first_up_to_the_limit():
    tensors = [
        {"tensor": f"t{i}", "kind": "activation", "sqnr_db": 10.0 + i, "read_by": ["a", "b", "c", "d"]}
        for i in range(12)
    ]
    tensors[1]["sqnr_db"] = None  # quantized exactly
    console = Console(file=io.StringIO(), width=1000, color_system=None)
    print_sensitivity(tensors, console=console, shown=3)
    text = console.file.getvalue()
    # the title wraps at the (narrow) table's width
    assert "the 3 worst of 12 quantized tensors (SQNR, dB)" in " ".join(text.split())
    assert cells(text, "t0") == ["t0", "activation", "10.0", "a, b, c"]  # the first three readers only
    assert cells(text, "t1")[2] == "exact"
    assert "t3" not in text


# --- edgeport bench -----------------------------------------------------------------------------------


def bench_report(comparison: dict | None = None, **changes) -> dict:
    settings = {"batch": 1, "threads": 1, "iterations": 200, "rounds": 10, "runtime": "ort", "provider": "cpu"}
    result_b = {"model": "b", "settings": settings, "stats": stats(0.2, 0.25, None, 0.21, count=200)}
    result_a = {"model": "a", "settings": settings, "stats": stats(0.1, 0.125, 0.2, 0.11)}
    return {
        "model": "a.onnx",
        "vs": "b.onnx",
        "results": [result_a, result_b],
        "comparisons": [comparison] if comparison else [],
        "warnings": [],
        **changes,
    }


def test_bench_table_in_a_log_keeps_runtime_names_whole_when_intervals_are_wide():
    """Off a terminal the table is LOG_WIDTH columns; wide intervals (a busy machine) used to squeeze the
    runtime column until "openvino" folded into "openvi" and "no"."""
    from edgeport.core.console import LOG_WIDTH

    report = bench_report()
    ov = {**report["results"][1]["settings"], "runtime": "openvino", "precision_used": "bf16", "provider": None}
    report["results"][1] = {**report["results"][1], "settings": ov}
    for result in report["results"]:
        result["stats"] = {**result["stats"], "p50_ci_ms": [0.18612, 12.24523], "p90_ci_ms": [0.24412, 13.44311]}
    console = Console(file=io.StringIO(), width=LOG_WIDTH, color_system=None)
    print_bench_summary(report, console=console)
    lines = console.file.getvalue().splitlines()
    assert max(map(len, lines)) <= LOG_WIDTH
    rows = [[part.strip() for part in line.split("│")[1:-1]] for line in lines if line.startswith("│")]
    assert [row[1] for row in rows if row[1]] == ["ort cpu", "openvino bf16"]
    assert any("12.245" in " ".join(row) for row in rows)  # the numbers wrap in their cells instead


def comparison(**changes) -> dict:
    return {
        "batch": 1,
        "threads": 1,
        "p50_ratio": 0.5,
        "p50_ratio_ci": [0.48, 0.52],
        "p90_ratio": 0.5,
        "p90_ratio_ci": [0.47, 0.53],
        "test": "wilcoxon-paired-rounds",
        "p_value": 0.0021,
        "margin": 0.0,
        "note": None,
        "verdict": "faster",
        **changes,
    }


def test_bench_table_rows_with_intervals_and_unavailable_percentiles():
    text = printed(print_bench_summary, bench_report())
    assert "edgeport bench: A = a.onnx, B = b.onnx" in text
    assert cells(text, "A") == [
        "A",
        "ort cpu",
        "1",
        "1",
        "0.100 [0.098, 0.102]",
        "0.125 [0.121, 0.129]",
        "0.200",
        "0.110",
        "9091",
    ]
    assert cells(text, "B")[6] == "n/a"
    assert "note: p99 not reported: too few iterations for that percentile" in text


def test_bench_comparison_line():
    text = printed(print_bench_summary, bench_report(comparison()))
    assert (
        "batch 1, 1 thread(s): A is faster than B: A/B p50 ratio 0.500 [0.480, 0.520], p90 ratio 0.500 "
        "[0.470, 0.530], Wilcoxon signed-rank on paired round medians p=0.0021"
    ) in text


def test_bench_no_difference_is_not_phrased_as_a_than_b_and_a_margin_is_stated():
    text = printed(print_bench_summary, bench_report(comparison(verdict="no detectable difference", margin=0.02)))
    assert "batch 1, 1 thread(s): no detectable difference (margin 2%): A/B p50 ratio" in text
    assert "than B" not in text


def test_bench_comparison_of_two_runtimes_names_them():
    text = printed(print_bench_summary, bench_report(comparison(a="openvino", b="ort", verdict="slower")))
    assert "openvino is slower than ort: openvino/ort p50 ratio" in text


def test_bench_reports_written_before_the_round_level_test_still_print():
    old = comparison()
    for key in ("test", "p_value", "margin"):
        del old[key]
    old.update(mann_whitney_p=0.0004, min_effect=0.05, note="only 3 rounds")
    text = printed(print_bench_summary, bench_report(old))
    assert "A is faster than B (margin 5%)" in text and "Mann-Whitney U p=0.0004" in text
    assert "note: only 3 rounds" in text


def test_bench_openvino_runtime_and_warnings():
    report = bench_report(vs=None, warnings=["the CPU governor is not 'performance'"])
    report["results"] = [report["results"][0]]
    report["results"][0]["settings"] = {
        **report["results"][0]["settings"],
        "runtime": "openvino",
        "precision_used": "bf16",
    }
    text = printed(print_bench_summary, report)
    assert "edgeport bench: A = a.onnx" in text and "B =" not in text
    assert cells(text, "A")[1] == "openvino bf16"
    assert "warning: the CPU governor is not 'performance'" in text


# --- edgeport search ----------------------------------------------------------------------------------


def search_folder(tmp_path: Path, trials: list[dict]) -> Path:
    folder = tmp_path / "search-20261129"
    folder.mkdir()
    (folder / "trials.json").write_text(json.dumps(trials))
    return folder


def searched() -> list[dict]:
    trials = [
        trial(0, 96.0, 0.1, test=95.5, params={"student.model.width": 2, "quantize.smooth_alpha": None}),
        trial(1, 94.0, 0.08, params={"student.model.width": 1, "quantize.smooth_alpha": 0.5}),
        trial(2, 93.0, 0.2, params={"student.model.width": 1, "quantize.smooth_alpha": 0.8}),
        trial(3, None, None, status="failed", params={"student.model.width": 4}, error="student: " + "E" * 100),
    ]
    for t, pareto in zip(trials, (True, True, False, False), strict=True):
        t["pareto"], t["chosen"] = pareto, t["position"] == 0
    return trials


def test_search_table_marks_front_and_choice_and_shortens_parameters(tmp_path):
    trials = searched()
    folder = search_folder(tmp_path, trials)
    summary = search_summary(trials, trials[0]["id"], "highest validation accuracy")
    text = printed(print_search_summary, summary, folder)
    assert "edgeport search search-20261129" in text
    assert cells(text, "0000abcd") == ["0000abcd", "ok", "width=2", "96.00", "95.50", "0.1000", "chosen"]
    assert cells(text, "0001abcd") == ["0001abcd", "ok", "width=1, smooth_alpha=0.5", "94.00", "-", "0.0800", "pareto"]
    assert cells(text, "0002abcd")[-1] == ""
    assert cells(text, "0003abcd") == ["0003abcd", "failed", "width=4", "-", "-", "-", "student: " + "E" * 51]
    assert f"chosen: 0000abcd (highest validation accuracy) -> {folder / 'best' / 'model.onnx'}" in text
    assert text.rstrip().endswith(f"report: {folder / 'report.html'}")


def test_search_table_uses_the_selection_latency_metric(tmp_path):
    trials = searched()
    summary = search_summary(trials, trials[0]["id"], "fastest", selection(latency_metric="p50"))
    text = printed(print_search_summary, summary, search_folder(tmp_path, trials))
    assert "p50 ms" in text and cells(text, "0000abcd")[5] == "0.0800"


def test_search_without_a_choice_says_why(tmp_path):
    trials = searched()
    for t in trials:
        t["chosen"] = False
    summary = search_summary(trials, None, "none of 3 finished trials meets the constraints")
    text = printed(print_search_summary, summary, search_folder(tmp_path, trials))
    assert "no candidate chosen: none of 3 finished trials meets the constraints" in text
    assert not any(line.startswith("chosen:") for line in text.splitlines())


@pytest.mark.parametrize("function", [print_summary, print_quantize_summary])
def test_default_console_prints_to_stdout(function, capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    manifest = run_manifest() if function is print_summary else quantize_manifest()
    function(manifest, Path("out"))
    assert "95.19" in capsys.readouterr().out


def test_paths_with_brackets_are_printed_as_given_not_read_as_markup(monkeypatch, capsys):
    """A folder named like rich markup ('exp[/x]', 'm[bold]') is a path: printed as is, never a crash."""
    monkeypatch.delenv("COLUMNS", raising=False)
    path = Path("/tmp/exp[/x]/m[bold]v2[/bold].int8.onnx")
    print_quantize_summary(quantize_manifest(), path)
    out = capsys.readouterr().out
    assert str(path) in out
