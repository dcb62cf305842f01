"""The summary tables ``edgeport run``, ``bench`` and ``search`` print when they finish (``quantize``'s:
quantize_summary.py, re-exported here)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from edgeport.benchmarks.records import RuntimeChoice
from edgeport.core.console import make_console, name_width
from edgeport.report.footprint_table import footprint_lines, print_footprints, print_sustained
from edgeport.report.quantize_summary import print_quantize_summary, print_sensitivity
from edgeport.report.run_report import ROWS, latency_verdict


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
    # the unexpected cases are the ones to say: the no-KD twin shipped, or it scored higher but within noise
    if choice is not None and (choice["exported"] == "student_no_kd" or choice.get("within_noise")):
        console.print(f"student: {choice['reason']}", highlight=False)
    if "verdict" in manifest:
        console.print(f"int8 {manifest['verdict']}", highlight=False)
    console.print(latency_verdict(lat), highlight=False)
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
        if runtimes.get("deploy"):  # quantize's rule: int8 ships where it beats the fastest faithful fp32 beyond noise
            ships = runtimes["deploy"]
            where = RuntimeChoice(ships["runtime"], ships["precision"]).label()
            console.print(f"ships: {ships['model']} on {where}: {ships['verdict']}", highlight=False)
    for line in footprint_lines(manifest.get("footprint")):
        console.print(line, highlight=False)
    console.print(f"run folder: {folder}", highlight=False, soft_wrap=True)


def _micros(ms: float | None) -> str:
    """None: too few timed runs for that percentile (p90 needs 10), as summarize records it."""
    return "n/a" if ms is None else f"{ms * 1000:.1f} us"


def _ms(value: float | None, interval: list[float] | None = None) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.3f}"
    return f"{text} [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else text


def print_bench_summary(report: dict, console: Console | None = None) -> None:
    from edgeport.benchmarks.compare import TESTS

    console = console or make_console()
    table = Table(title=f"edgeport bench: A = {report['model']}" + (f", B = {report['vs']}" if report["vs"] else ""))
    pooled = any(r.get("device") for r in report["results"])  # --pool: each row names its device
    columns = ("model", *(("device",) if pooled else ()), "runtime", "batch", "threads", "p50 ms [95% CI]")
    runtimes = [_runtime(result["settings"]) for result in report["results"]]
    widths = {"runtime": name_width(runtimes), "device": name_width(r.get("device") or "" for r in report["results"])}
    for column in (*columns, "p90 ms [95% CI]", "p99 ms", "mean ms", "items/s"):
        left = column in ("model", "device", "runtime")
        table.add_column(column, justify="left" if left else "right", overflow="fold", min_width=widths.get(column))
    for result, runtime in zip(report["results"], runtimes, strict=True):
        stats, settings = result["stats"], result["settings"]
        table.add_row(
            result["model"].upper(),
            *((result.get("device") or "",) if pooled else ()),
            runtime,
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
        on = f" on {comparison['device']}" if comparison.get("device") else ""
        console.print(
            f"batch {comparison['batch']}, {comparison['threads']} thread(s){on}: {verdict}"
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
    print_footprints(report, console)
    print_sustained(report, console)
    print_pool(report.get("pool"), console)
    for warning in report["warnings"]:
        console.print(f"warning: {warning}", highlight=False)


def print_pool(devices: list[dict] | None, console: Console) -> None:
    """A device pool's devices: how many measurements each finished, and why a device is down."""
    for device in devices or []:
        state = "up" if device["state"] == "up" else f"DOWN: {device['error']}"
        console.print(
            f"device {device['name']} ({device['url']}): {device['measurements']} measured, {state}", highlight=False
        )


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


__all__ = [
    "print_bench_summary",
    "print_quantize_summary",
    "print_search_summary",
    "print_sensitivity",
    "print_summary",
]
