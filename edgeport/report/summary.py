"""The summary table ``edgeport run`` prints when it finishes."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from edgeport.core.console import make_console
from edgeport.quantize.noise import THIRD_PARTY
from edgeport.report.run_report import ROWS, describe_quantization, latency_verdict


def print_summary(manifest: dict, folder: Path, console: Console | None = None) -> None:
    console = console or make_console()
    acc, lat = manifest["metrics"]["accuracy"], manifest["latency"]
    table = Table(title=f"edgeport run {manifest['run_id']}")
    for column in ("model", "val top-1 %", "test top-1 %", "p50", "p90"):
        table.add_column(column, justify="left" if column == "model" else "right", overflow="fold")
    timed = {"fp32_onnx": lat["fp32"], "int8_onnx": lat["int8"]}
    for key, label in ROWS:
        if key not in acc:
            continue
        stats = timed.get(key)
        table.add_row(
            label,
            f"{acc[key]['val']:.2f}",
            f"{acc[key]['test']:.2f}",
            _micros(stats["p50_ms"]) if stats else "",
            _micros(stats["p90_ms"]) if stats else "",
        )
    console.print(table)
    seeds = manifest["metrics"].get("kd_gain_over_seeds")
    if seeds is not None:
        low, high = seeds["interval95_test_points"]
        console.print(
            f"KD gain over {seeds['seeds']} seeds: {seeds['mean_test_points']:+.2f} test points "
            f"(95% interval {low:+.2f} to {high:+.2f})",
            highlight=False,
        )
    choice = manifest["lineage"].get("student_choice")
    if choice is not None and choice["exported"] == "student_no_kd":  # the unexpected case is the one to say
        console.print(f"student: {choice['reason']}", highlight=False)
    if "verdict" in manifest:
        console.print(f"int8 {manifest['verdict']}", highlight=False)
    console.print(latency_verdict(lat["int8_over_fp32_p50"]), highlight=False)
    runtimes = manifest.get("runtimes")
    if runtimes and len(runtimes["rows"]) > 2:  # more than onnxruntime's two: name the fastest faithful one
        best = next((r for r in runtimes["rows"] if r["label"] == runtimes["fastest_faithful"]), None)
        if best is not None:
            console.print(
                f"fastest faithful on this CPU: {best['model']} on {best['runtime']}"
                + (f" ({best['precision_used']})" if best["precision_used"] else "")
                + f", p50 {best['p50_ms'] * 1000:.1f} us = {best['p50_over_ort_fp32']:.2f}x onnxruntime fp32"
                + " (report.md: every runtime)",
                highlight=False,
            )
    console.print(f"run folder: {folder}", highlight=False, soft_wrap=True)


def _micros(ms: float | None) -> str:
    """None: too few timed runs for that percentile (p90 needs 10), as summarize records it."""
    return "n/a" if ms is None else f"{ms * 1000:.1f} us"


def _speed_line(speed: dict) -> str:
    """int8 against fp32 on the runtime it ships with; when it does not ship, the fastest faithful option."""
    ratio, interval = speed.get("int8_over_fp32"), speed.get("int8_over_fp32_ci")
    within = f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else ""
    baseline = speed.get("baseline") or f"fp32 on {speed['runtime']}"
    runtime = speed["runtime"]
    line = "int8 not measured" if ratio is None else f"int8 on {runtime} at {ratio:.2f}x{within} {baseline}'s p50"
    if speed.get("fastest_faithful") and not speed.get("ships"):
        best = next(a for a in speed["alternatives"] if a["option"] == speed["fastest_faithful"])
        line += f"; fastest faithful option: {best['option']} at {best['p50_over_fp32']:.2f}x"
    return line


def _options_cell(speed: dict) -> str:
    """One line per option measured side by side: its p50 over fp32's in that measurement, and whether
    it was faithful as its runtime ran it."""
    lines = []
    for option in sorted(speed["alternatives"], key=lambda a: math.inf if a["p50_ms"] is None else a["p50_ms"]):
        ratio = option["p50_over_fp32"]
        speed_text = "not measured" if ratio is None else f"{ratio:.2f}x"
        fidelity = "faithful" if option["faithful"] else "NOT faithful"
        if option["verdict"].startswith("does not run"):
            fidelity = "does not run"
        lines.append(f"{option['option']}: {speed_text}, {fidelity}")
    return "\n".join(lines)


def print_quantize_summary(manifest: dict, path: Path, console: Console | None = None) -> None:
    console = console or make_console()
    verification, quant = manifest["verification"], manifest["lineage"]["quantization"]
    vs_fp32, coverage = verification["vs_fp32"], verification["coverage"]
    table = Table(title="edgeport quantize", show_header=False)
    table.add_column("what", overflow="fold")
    table.add_column("value", overflow="fold")
    guard = manifest.get("guard")
    if guard:  # first: whether this model may ship at all
        table.add_row("verdict", manifest["verdict"])
    table.add_row("backend", describe_quantization(quant))
    if manifest.get("auto"):
        table.add_row("auto", _auto_line(manifest["auto"]))
    if manifest.get("speed"):
        table.add_row("speed", _speed_line(manifest["speed"]))
        if manifest["speed"].get("alternatives"):
            table.add_row("every runtime (p50 / fp32 on ort)", _options_cell(manifest["speed"]))
    table.add_row("size", f"{manifest['artifact']['size_bytes'] / 1024:.1f} KiB")
    table.add_row(
        "int8 coverage",
        f"{coverage['integer_kernels']} of {coverage['integer_kernels'] + coverage['float_kernels']}"
        f" compute layers" + _float_layers(coverage["unfused"]),
    )
    if "top1_agreement" in vs_fp32:
        table.add_row("top-1 agreement with fp32", f"{vs_fp32['top1_agreement']:.2f}%")
    table.add_row("SQNR / mean cosine vs fp32", f"{vs_fp32['sqnr_db']:.1f} dB / {vs_fp32['mean_cosine']:.4f}")
    if "sequence_agreement" in vs_fp32:  # a CTC recognizer: what matters is the text it reads
        table.add_row("decoded sequences equal to fp32's", f"{vs_fp32['sequence_agreement'] * 100:.1f}% of samples")
    if "accuracy" in verification:
        acc = verification["accuracy"]
        table.add_row("accuracy fp32 -> int8", f"{acc['fp32']:.2f}% -> {acc['int8']:.2f}%")
    reference = verification["reference_runtime"]
    if not reference.get("samples"):
        agreement = f"not run: {reference.get('error')}"
    elif "top1_agreement" in reference:
        agreement = f"{reference['top1_agreement']:.0f}% top-1 agreement"
    else:
        agreement = f"mean cosine {reference['mean_cosine']:.4f}"
    table.add_row("second runtime (onnx.reference)", agreement)
    for name, other in verification.get("other_runtimes", {}).items():  # the same int8 file on OpenVINO
        shown = (
            f"not run: {other['error']}"
            if "error" in other
            else f"mean cosine {other['mean_cosine']:.4f}"
            + (f", top-1 agreement {other['top1_agreement']:.2f}%" if "top1_agreement" in other else "")
            + f" ({other['precision_used']})"
        )
        table.add_row(f"same file on {name}", shown)
    fallback = manifest.get("fallback")
    if fallback:
        table.add_row(
            "fallback",
            f"{len(fallback['excluded'])} layer(s) kept in float"
            + (f": {', '.join(fallback['excluded'])}" if fallback["excluded"] else "")
            + ("" if fallback["within_tolerance"] else " - STILL OUTSIDE TOLERANCE"),
        )
    console.print(table)
    # under the table, whole on one line (soft_wrap): a path folded inside a cell could not be copied
    console.print(f"artifact: {path}", highlight=False, soft_wrap=True)
    for warning in manifest.get("warnings", []):
        if not warning.startswith(THIRD_PARTY):  # those are summarised in one line, kept in the manifest
            console.print(f"warning: {warning}", highlight=False)


def print_sensitivity(tensors: list[dict], console: Console | None = None, shown: int = 10) -> None:
    """The worst quantized tensors of an int8 model (``--explain``); the manifest keeps them all."""
    console = console or make_console()
    if not tensors:
        console.print("no QuantizeLinear/DequantizeLinear pairs to rank (QOperator or dynamic int8)")
        return
    table = Table(title=f"the {min(shown, len(tensors))} worst of {len(tensors)} quantized tensors (SQNR, dB)")
    for column in ("tensor", "kind", "SQNR dB", "read by"):
        table.add_column(column, justify="right" if column == "SQNR dB" else "left", overflow="fold")
    for row in tensors[:shown]:
        sqnr = "exact" if row["sqnr_db"] is None else f"{row['sqnr_db']:.1f}"
        table.add_row(row["tensor"], row["kind"], sqnr, ", ".join(row["read_by"][:3]))
    console.print(table)


def _float_layers(unfused: list[str], shown: int = 4) -> str:
    """The first few layers left in float: a 12-layer encoder lists 24 attention MatMuls otherwise (the
    manifest keeps them all)."""
    if not unfused:
        return ""
    more = f" and {len(unfused) - shown} more (manifest: verification.coverage.unfused)" if len(unfused) > shown else ""
    return f"; float: {', '.join(unfused[:shown])}{more}"


def _auto_line(auto: dict) -> str:
    """Every recipe auto tried: its fidelity, its speed against fp32 when ranked, and the one chosen."""
    parts = []
    for attempt in auto["attempts"]:
        if attempt["error"]:
            parts.append(f"{attempt['recipe']}: failed ({attempt['error'][:80]})")
            continue
        speed = f", {attempt['p50_over_fp32']:.2f}x fp32 p50" if attempt["p50_over_fp32"] else ""
        mark = " <- chosen" if attempt["recipe"] == auto["chosen"] else ""
        ok = "ok" if attempt["within_tolerance"] else "outside tolerance"
        parts.append(f"{attempt['recipe']}: {attempt['metric']} {attempt['value']:.4g} {ok}{speed}{mark}")
    return f"{auto['graph']['kind']} graph; " + "; ".join(parts)


def _ms(value: float | None, interval: list[float] | None = None) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.3f}"
    return f"{text} [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else text


def print_bench_summary(report: dict, console: Console | None = None) -> None:
    from edgeport.benchmarks.compare import TESTS

    console = console or make_console()
    table = Table(title=f"edgeport bench: A = {report['model']}" + (f", B = {report['vs']}" if report["vs"] else ""))
    columns = ("model", "runtime", "batch", "threads", "p50 ms [95% CI]", "p90 ms [95% CI]", "p99 ms", "mean ms")
    for column in (*columns, "items/s"):
        table.add_column(column, justify="left" if column in ("model", "runtime") else "right", overflow="fold")
    for result in report["results"]:
        stats, settings = result["stats"], result["settings"]
        table.add_row(
            result["model"].upper(),
            _runtime(settings),
            str(settings["batch"]),
            str(settings["threads"]),
            _ms(stats["p50_ms"], stats["p50_ci_ms"]),
            _ms(stats["p90_ms"], stats["p90_ci_ms"]),
            _ms(stats["p99_ms"]),
            _ms(stats["mean_ms"]),
            f"{stats['throughput_per_s']:.0f}",
        )
    console.print(table)
    for comparison in report["comparisons"]:
        low, high = comparison["p50_ratio_ci"]
        p90 = comparison["p90_ratio_ci"]
        # Reports written before the round-level comparison name neither the test nor the margin.
        test = TESTS.get(comparison.get("test"), "Mann-Whitney U")
        p_value = comparison.get("p_value", comparison.get("mann_whitney_p"))
        margin = comparison.get("margin", comparison.get("min_effect")) or 0.0
        a, b = comparison.get("a", "A"), comparison.get("b", "B")  # --runtime all: the runtimes' names
        verdict = (
            comparison["verdict"]
            if comparison["verdict"] == "no detectable difference"
            else f"{a} is {comparison['verdict']} than {b}"
        )
        console.print(
            f"batch {comparison['batch']}, {comparison['threads']} thread(s): {verdict}"
            + (f" (margin {margin * 100:g}%)" if margin else "")
            + f": {a}/{b} p50 ratio {comparison['p50_ratio']:.3f} [{low:.3f}, {high:.3f}], p90 ratio "
            f"{comparison['p90_ratio']:.3f} [{p90[0]:.3f}, {p90[1]:.3f}], {test} p={p_value:.2g}",
            highlight=False,
        )
        if comparison.get("note"):
            console.print(f"note: {comparison['note']}", highlight=False)
    unsupported = sorted({u for r in report["results"] for u in r["stats"]["unsupported"]})
    if unsupported:
        console.print(
            f"note: {', '.join(unsupported)} not reported: too few iterations for that percentile", highlight=False
        )
    for warning in report["warnings"]:
        console.print(f"warning: {warning}", highlight=False)


def _runtime(settings: dict) -> str:
    """onnxruntime with its provider, or OpenVINO with the precision it really ran in."""
    if settings.get("runtime", "ort") == "openvino":
        return f"openvino {settings.get('precision_used') or ''}".strip()
    return f"ort {settings.get('provider', 'cpu')}"


def _pct(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def print_search_summary(summary: dict, folder: Path, console: Console | None = None) -> None:
    console = console or make_console()
    trials = json.loads((folder / "trials.json").read_text())
    metric = summary["selection"]["latency_metric"]
    table = Table(title=f"edgeport search {folder.name}")
    for column in ("trial", "status", "parameters", "val %", "test %", f"{metric} ms", ""):
        table.add_column(column, overflow="fold")
    for trial in trials:
        m = trial.get("metrics", {})
        lat = (m.get("latency") or {}).get(f"{metric}_ms")
        params = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in trial["params"].items() if v is not None)
        mark = "chosen" if trial.get("chosen") else ("pareto" if trial.get("pareto") else "")
        if trial["status"] == "failed":
            mark = (trial.get("error") or "")[:60]
        table.add_row(
            trial["id"][:8],
            trial["status"],
            params,
            _pct(m.get("val_accuracy")),
            _pct(m.get("test_accuracy")),
            f"{lat:.4f}" if lat is not None else "-",
            mark,
        )
    console.print(table)
    console.print(summary["stage_summary"])
    if summary["chosen"]:
        console.print(
            f"chosen: {summary['chosen'][:8]} ({summary['chosen_because']}) -> {folder / 'best' / 'model.onnx'}"
        )
    else:
        console.print(Text.assemble(("no candidate chosen:", "red"), f" {summary['chosen_because']}"))
    console.print(f"report: {folder / 'report.html'}")
