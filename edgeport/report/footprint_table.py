"""What `edgeport bench` prints beside its latency table: `--footprint`'s table (each model's memory and
cold start on each runtime, and with --vs the two models compared setting by setting) and
`--sustained`'s drift and heat lines."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from edgeport.core.console import name_width


def _spread(figure: dict | None, digits: int = 1) -> str:
    """``12.3 [11.9-14.0]``: the median over the cold starts and their range."""
    if figure is None:
        return "not exposed"
    return f"{figure['median']:.{digits}f} [{figure['min']:.{digits}f}-{figure['max']:.{digits}f}]"


def _memory_setting(footprint: dict) -> str:
    arena = footprint.get("cpu_mem_arena")
    return "-" if arena is None else ("arena on" if arena else "arena off")


def _where(footprint: dict) -> str:
    return footprint["runtime"] + (f"/{footprint['precision']}" if footprint.get("precision") else "")


def print_footprints(report: dict, console: Console) -> None:
    """The footprint table, when the results carry one (`--footprint`)."""
    measured = [r for r in report["results"] if r.get("footprint")]
    if not measured:
        return
    count = measured[0]["footprint"][0]["cold_starts"]
    table = Table(title=f"footprint: median [range] over {count} cold starts, each a fresh process")
    columns = ("model", "runtime", "memory", "peak RSS MB", "model MB", "cold start ms", "first run ms", "first/warm")
    names = {
        "runtime": name_width(_where(f) for r in measured for f in r["footprint"]),
        "memory": name_width(_memory_setting(f) for r in measured for f in r["footprint"]),
    }
    for column in columns:
        left = column in ("model", "runtime", "memory")
        table.add_column(column, justify="left" if left else "right", overflow="fold", min_width=names.get(column))
    for result in measured:
        warm = result["stats"]["p50_ms"]
        for footprint in result["footprint"]:
            first = footprint["first_inference_ms"]["median"]
            table.add_row(
                result["model"].upper(),
                _where(footprint),
                _memory_setting(footprint),
                _spread(footprint["peak_rss_mb"]),
                _spread(footprint["model_rss_mb"]),
                _spread(footprint["cold_start_ms"]),
                _spread(footprint["first_inference_ms"], 2),
                f"{first / warm:.1f}x" if warm > 0 else "-",
            )
    console.print(table)
    console.print(
        "peak RSS: the process's maximum resident memory (as /usr/bin/time -v reports it); model MB: the peak "
        "minus the memory before the session; cold start: session creation + first run; first/warm: the first "
        "run over the warm p50 measured above",
        highlight=False,
    )
    _compare_models(measured, console)


def _compare_models(measured: list[dict], console: Console) -> None:
    """With --vs: B over A per batch and threads, setting by setting (onnxruntime's arena on with on, off
    with off; against OpenVINO, which has one setting, onnxruntime's default: arena on)."""
    models: dict[tuple, dict[str, list[dict]]] = {}
    for result in measured:
        key = (result["settings"]["batch"], result["settings"]["threads"])
        models.setdefault(key, {})[result["model"]] = result["footprint"]
    for (batch, threads), pair in models.items():
        if set(pair) != {"a", "b"}:
            continue
        for a, b in zip(pair["a"], pair["b"], strict=False):
            ratios = [f"peak RSS {b['peak_rss_mb']['median'] / a['peak_rss_mb']['median']:.2f}x"]
            if a["model_rss_mb"] and b["model_rss_mb"] and a["model_rss_mb"]["median"] > 0:
                ratios.append(f"model memory {b['model_rss_mb']['median'] / a['model_rss_mb']['median']:.2f}x")
            ratios.append(f"cold start {b['cold_start_ms']['median'] / a['cold_start_ms']['median']:.2f}x")
            console.print(
                f"footprint, batch {batch}, {threads} thread(s): B ({_where(b)} {_memory_setting(b)}) over "
                f"A ({_where(a)} {_memory_setting(a)}), medians: {', '.join(ratios)}",
                highlight=False,
            )


def print_sustained(report: dict, console: Console) -> None:
    """Each model's drift over a sustained run, then what the platform said (or did not) about heat."""
    from edgeport.benchmarks.sustained import drift_line

    measured = [r for r in report["results"] if r.get("sustained")]
    for result in measured:
        record = result["sustained"]
        where = f"batch {result['settings']['batch']}, {result['settings']['threads']} thread(s)"
        console.print(f"sustained, {where}: {drift_line(result['model'].upper(), record)}", highlight=False)
    if not measured:
        return
    record = measured[-1]["sustained"]
    temperature, mhz = record["temperature_c"], record["cpu_mhz"]
    heat = []
    if temperature["before"] is not None:
        heat.append(
            f"temperature {temperature['before']:.1f} -> {temperature['after']:.1f} C (max {temperature['max']:.1f})"
        )
    if mhz["before"] is not None:
        heat.append(f"CPU {mhz['before']:.0f} -> {mhz['after']:.0f} MHz")
    heat += [f"not exposed: {what}" for what in record["not_exposed"]]
    console.print("heat: " + "; ".join(heat), highlight=False)
    flag = {True: "THROTTLED (result flagged)", False: "not throttled", None: "throttling"}[record["throttled"]]
    console.print(f"{flag}: {record['throttled_why']}", highlight=False)


def footprint_lines(footprint: dict | None) -> list[str]:
    """A run's footprint (manifest ``footprint``), one line per memory setting: fp32 beside int8."""
    if not footprint or "int8" not in footprint:
        return []
    lines = []
    for index, int8 in enumerate(footprint["int8"]):
        fp32 = footprint.get("fp32", [])[index] if index < len(footprint.get("fp32", [])) else None
        parts = [
            f"{label} peak {f['peak_rss_mb']['median']:.0f} MB"
            + (f" (model {f['model_rss_mb']['median']:.0f} MB)" if f.get("model_rss_mb") else "")
            + f", cold start {f['cold_start_ms']['median']:.1f} ms"
            for label, f in (("int8", int8), ("fp32", fp32))
            if f is not None
        ]
        where = _where(int8) + ("" if int8.get("cpu_mem_arena") is None else f" {_memory_setting(int8)}")
        lines.append(f"footprint on {where}, median of {int8['cold_starts']} cold starts: {'; '.join(parts)}")
    return lines


__all__ = ["footprint_lines", "print_footprints", "print_sustained"]
