"""The summary table ``edgeport run`` prints when it finishes."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgeport.report.run_report import ROWS, latency_verdict


def print_summary(manifest: dict, folder: Path, console: Console | None = None) -> None:
    console = console or Console()
    acc, lat = manifest["metrics"]["accuracy"], manifest["latency"]
    table = Table(title=f"edgeport run {manifest['run_id']}")
    for column in ("model", "val top-1 %", "test top-1 %", "p50", "p90"):
        table.add_column(column, justify="left" if column == "model" else "right")
    timed = {"fp32_onnx": lat["fp32"], "int8_onnx": lat["int8"]}
    for key, label in ROWS:
        if key not in acc:
            continue
        stats = timed.get(key)
        table.add_row(label, f"{acc[key]['val']:.2f}", f"{acc[key]['test']:.2f}",
                      f"{stats['p50_ms'] * 1000:.1f} us" if stats else "",
                      f"{stats['p90_ms'] * 1000:.1f} us" if stats else "")
    console.print(table)
    console.print(latency_verdict(lat["int8_over_fp32_p50"]), highlight=False)
    console.print(f"run folder: {folder}", highlight=False)
