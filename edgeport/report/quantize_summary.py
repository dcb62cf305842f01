"""The summary table ``edgeport quantize`` prints (and ``--explain``'s worst tensors): the verdict first,
the artifact's path whole under the table."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgeport.core.console import make_console
from edgeport.quantize.noise import THIRD_PARTY
from edgeport.report.run_report import describe_quantization


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
    it was faithful as its runtime ran it (or not judged, being slower than a faithful one)."""
    lines = []
    most = max((option.get("rounds") or 0 for option in speed["alternatives"]), default=0)
    for option in sorted(speed["alternatives"], key=lambda a: math.inf if a["p50_ms"] is None else a["p50_ms"]):
        ratio = option["p50_over_fp32"]
        speed_text = "not measured" if ratio is None else f"{ratio:.2f}x"
        if option.get("rounds") and option["rounds"] < most:  # stopped early: clearly slower than a faithful one
            speed_text += f" ({option['rounds']} of {most} rounds)"
        fidelity = "faithful" if option["faithful"] else "NOT faithful"
        if option["verdict"].startswith("does not run"):
            fidelity = "does not run"
        elif option["faithful"] is None:  # slower than a faithful option: its verdict cannot matter
            fidelity = "not judged: a faithful option was faster"
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
    table.add_row("int8 coverage", _coverage_cell(coverage, verification.get("coverage_on_runtime")))
    if "top1_agreement" in vs_fp32:
        table.add_row("top-1 agreement with fp32", f"{vs_fp32['top1_agreement']:.2f}%")
    sqnr = "exact" if vs_fp32["sqnr_db"] is None else f"{vs_fp32['sqnr_db']:.1f} dB"
    table.add_row("SQNR / mean cosine vs fp32", f"{sqnr} / {vs_fp32['mean_cosine']:.4f}")
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


def _coverage_cell(onnxruntime: dict, shipped: dict | None) -> str:
    """The integer share of the compute layers, on the runtime the artifact ships on where that is not
    onnxruntime (onnxruntime's count beside it), float ones named."""

    def count(coverage: dict) -> str:
        return f"{coverage['integer_kernels']} of {coverage['integer_kernels'] + coverage['float_kernels']}"

    if shipped is None:
        return f"{count(onnxruntime)} compute layers" + _float_layers(onnxruntime["unfused"], "coverage")
    return (
        f"{count(shipped)} compute layers on {shipped['runtime']} ({count(onnxruntime)} on onnxruntime)"
        + _float_layers(shipped["unfused"], "coverage_on_runtime")
    )


def _float_layers(unfused: list[str], key: str, shown: int = 4) -> str:
    """The first few layers left in float: a 12-layer encoder lists 24 attention MatMuls otherwise (the
    manifest keeps them all, under ``verification.<key>.unfused``)."""
    if not unfused:
        return ""
    more = f" and {len(unfused) - shown} more (manifest: verification.{key}.unfused)" if len(unfused) > shown else ""
    return f"; float: {', '.join(unfused[:shown])}{more}"


def _auto_line(auto: dict) -> str:
    """Every recipe auto tried: its fidelity, its speed against fp32 when ranked, and the one chosen."""
    parts = []
    for attempt in auto["attempts"]:
        if attempt["error"]:
            # cut at a word, marked: the manifest keeps the whole error
            parts.append(f"{attempt['recipe']}: failed ({textwrap.shorten(attempt['error'], 120, placeholder=' ...')})")
            continue
        speed = f", {attempt['p50_over_fp32']:.2f}x fp32 p50" if attempt["p50_over_fp32"] else ""
        mark = " <- chosen" if attempt["recipe"] == auto["chosen"] else ""
        ok = "ok" if attempt["within_tolerance"] else "outside tolerance"
        if attempt.get("screened"):  # judged after a calibration subset only, and dropped there
            ok = "clearly outside tolerance on a calibration subset"
        parts.append(f"{attempt['recipe']}: {attempt['metric']} {attempt['value']:.4g} {ok}{speed}{mark}")
    return f"{auto['graph']['kind']} graph; " + "; ".join(parts)


__all__ = ["print_quantize_summary", "print_sensitivity"]
