"""report.md for a run folder, rendered only from the run's manifest."""

from __future__ import annotations

from edgeport.benchmarks.speedup import Speedup

ROWS = (
    ("teacher", "Teacher (PyTorch)"),
    ("student", "Student, distilled (PyTorch)"),
    ("student_no_kd", "Student, no KD (PyTorch)"),
    ("fp32_onnx", "Student fp32 ONNX"),
    ("int8_onnx", "Student int8 ONNX"),
)


def latency_speedup(latency: dict) -> Speedup:
    """The run manifest's ``latency`` section as a Speedup (its ratio and interval)."""
    interval = latency.get("int8_over_fp32_p50_ci")
    return Speedup(1.0, latency["int8_over_fp32_p50"], tuple(interval) if interval else None)


def latency_verdict(latency: dict) -> str:
    """The run's int8 against fp32 on its own runtime, by the ship rule (benchmarks/speedup.py): faster by
    the margin and beyond noise, or why not."""
    speedup = latency_speedup(latency)
    if speedup.pays:
        saved = (1 - speedup.ratio) * 100
        return f"int8 is faster: its p50 is {speedup.text()} the fp32 p50 ({saved:.0f}% less time per inference)."
    if speedup.ratio < 1.0:
        return f"int8 is not faster beyond noise: its p50 is {speedup.text()} the fp32 p50 ({speedup.why_not()})."
    return (
        f"int8 is NOT faster on this machine: its p50 is {speedup.text()} the fp32 p50. On small models the "
        "added Quantize/Dequantize work can outweigh the int8 kernels; keep the fp32 model, or try a "
        "larger model or another quantization format."
    )


def describe_quantization(quant: dict) -> str:
    """One line for a quantization config as recorded in a manifest."""
    # torch-pt2e has no per_channel setting: its quantizer picks the weight layout for the engine.
    per_channel = quant.get("per_channel")
    layout = "engine-default" if per_channel is None else ("per-channel" if per_channel else "per-tensor")
    if quant["backend"].startswith("torch-"):
        text = f"{quant['backend']}, engine {quant['engine']}, {layout} weights"
    elif quant["backend"] == "ort-dynamic":  # no format or activation type: activations quantize at run time
        text = f"ort-dynamic, {quant['weight_type']} {layout} weights, activations quantized at run time"
    elif quant["backend"] == "nncf":  # NNCF chooses types and layouts from its preset and model type
        done = quant.get("report") or {}  # what "auto" and NNCF's default preset became for this model
        model_type = done.get("model_type") or quant.get("model_type", "auto")
        preset = done.get("preset") or quant.get("preset") or "NNCF's default"
        text = f"nncf {done.get('nncf_version', '')} QDQ, {model_type} model type, {preset} preset".replace("  ", " ")
    elif "format" not in quant:  # a backend this summary does not know: its name and settings as recorded
        shown = {k: v for k, v in quant.items() if k not in ("backend", "reduce_range", "reduce_range_reason")}
        text = f"{quant['backend']}, " + ", ".join(f"{k} {v}" for k, v in shown.items())
    else:
        text = (
            f"{quant['backend']} {quant['format'].upper()}, {quant['activation_type']} activations, "
            f"{quant['weight_type']} {layout} weights"
        )
        if quant["backend"] == "ort-static":
            text += f", {quant['calibration_method']} calibration"
    if quant.get("smooth_alpha") is not None:
        text += f", SmoothQuant-smoothed (alpha {quant['smooth_alpha']:g})"
    if quant["reduce_range"]:
        text += f", 7-bit weight range (reduce_range: {quant.get('reduce_range_reason', 'set')})"
    return text


def _us(ms: float | None) -> str:
    if ms is None:
        return "n/a"
    return f"{ms * 1000:.1f} us" if ms < 1 else f"{ms:.3f} ms"


def _accuracy_section(manifest: dict) -> list[str]:
    acc = manifest["metrics"]["accuracy"]
    data = manifest["dataset"]
    lines = [
        f"# edgeport run {manifest['run_id']}",
        "",
        *([f"**int8 {manifest['verdict']}**", ""] if "verdict" in manifest else []),
        f"Dataset **{data['name']}** ({data['samples']} images, shape {data['shape']}, "
        f"{data['num_classes']} classes; split train/val/test "
        f"{data['splits']['train']}/{data['splits']['val']}/{data['splits']['test']}), seed {manifest['seed']}.",
        "",
        "## Accuracy (top-1, %)",
        "",
        "| model | val | test |",
        "|---|---:|---:|",
    ]
    for key, label in ROWS:
        if key in acc:
            lines.append(f"| {label} | {acc[key]['val']:.2f} | {acc[key]['test']:.2f} |")
    gain, seeds = manifest["metrics"].get("kd_gain_points"), manifest["metrics"].get("kd_gain_over_seeds")
    if seeds is not None:
        low, high = seeds["interval95_test_points"]
        lines += [
            "",
            f"Distillation changed the student's test accuracy by {seeds['mean_test_points']:+.2f} points on "
            f"average over {seeds['seeds']} seeds (95% interval {low:+.2f} to {high:+.2f}; paired with the same "
            f"student trained with plain cross-entropy from the same initial weights; this run's seed: {gain:+.2f}).",
        ]
    elif gain is not None:
        lines += [
            "",
            f"Distillation changed the student's test accuracy by {gain:+.2f} points versus the same "
            "student trained with plain cross-entropy (same seed).",
        ]
    choice = manifest["lineage"].get("student_choice")
    if choice is not None:
        shipped = "the no-KD student" if choice["exported"] == "student_no_kd" else "the distilled student"
        lines += ["", f"Exported {shipped}: {choice['reason']}."]
    return lines


def _quantization_section(manifest: dict) -> list[str]:
    acc, parity = manifest["metrics"]["accuracy"], manifest["metrics"]["parity"]
    delta = acc["int8_onnx"]["test"] - acc["fp32_onnx"]["test"]
    quant = manifest["lineage"]["quantization"]
    lines = [
        "",
        f"Quantization: {describe_quantization(quant)}; calibration on "
        f"{manifest['lineage']['calibration']['samples']} training images.",
        "",
        f"int8 versus fp32 ONNX on test: {round(delta, 2) + 0.0:+.2f} points; on val the int8 model agrees with fp32 "
        f"on {parity['int8_vs_fp32']['top1_agreement']:.2f}% of top-1 predictions "
        f"(SQNR {_sqnr(parity['int8_vs_fp32']['sqnr_db'])}). fp32 ONNX versus PyTorch: max abs diff "
        f"{parity['fp32_onnx_vs_torch']['max_abs_diff']:.2e}.",
    ]
    coverage = manifest["verification"]["coverage"]
    unfused = f" Left in float: {', '.join(coverage['unfused'])}." if coverage["unfused"] else ""
    reference = manifest["verification"]["reference_runtime"]
    lines += [
        "",
        f"int8 coverage after onnxruntime optimisation: {coverage['integer_kernels']} of "
        f"{coverage['integer_kernels'] + coverage['float_kernels']} compute layers (Conv/Gemm/MatMul/LSTM/GRU/RNN) "
        "run as integer "
        f"kernels ({', '.join(f'{k} x{v}' for k, v in coverage['integer_ops'].items()) or 'none'}).{unfused}",
    ]
    shipped = manifest["verification"].get("coverage_on_runtime")
    if shipped:  # the artifact ships on another runtime: what runs as integer kernels there
        lines.append(
            f"On {shipped['runtime']}, where it ships: {shipped['integer_kernels']} of "
            f"{shipped['integer_kernels'] + shipped['float_kernels']} compute layers run in u8/i8"
            + (f"; in float: {', '.join(shipped['unfused'])}." if shipped["unfused"] else ".")
        )
    if reference.get("samples"):
        lines.append(
            f"A second runtime (onnx.reference) agrees with onnxruntime on {reference['top1_agreement']:.0f}% "
            f"of top-1 predictions for {reference['samples']} samples (max abs diff "
            f"{reference['max_abs_diff']:.3g})."
        )
    else:
        lines.append(f"The second runtime (onnx.reference) could not run the file: {reference.get('error')}.")
    return lines + _fallback_lines(manifest)


def _fallback_lines(manifest: dict) -> list[str]:
    lines = []
    fallback = manifest.get("fallback")
    if fallback:
        kept = ", ".join(fallback["excluded"]) or "none"
        steps = "; ".join(
            f"{len(step['excluded'])} excluded -> {step[fallback['metric']]:.2f}" for step in fallback["steps"]
        )
        lines += [
            "",
            f"Accuracy-aware fallback (tolerance {fallback['tolerance']:.2f}% val top-1): layers kept in "
            f"float: {kept}; {steps}.",
        ]
    for warning in manifest.get("warnings", []):
        lines += ["", f"**Warning:** {warning}"]
    return lines


def _latency_section(manifest: dict) -> list[str]:
    lat, arts, cpu = manifest["latency"], manifest["artifacts"], manifest["environment"]["cpu"]
    settings = lat["settings"]
    lines = [
        "",
        "## Latency (onnxruntime CPU)"
        if settings.get("runtime", "ort") == "ort"
        else f"## Latency (OpenVINO CPU, {settings.get('precision_used') or 'default precision'})",
        "",
        f"Batch {settings['batch']}, {settings['threads']} thread(s), {settings['warmup']} warm-up runs, "
        f"{lat['fp32']['count']} timed runs per model, interleaved in {settings['rounds']} rounds; "
        f"CPU: {cpu['model']}{', ' + cpu['family'] if cpu.get('family') else ''} "
        f"({', '.join(cpu['isa']) or 'no SIMD flags read'}).",
        "",
        "| model | p50 | p90 | p99 | mean | size |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, art in (("fp32", "fp32_onnx"), ("int8", "int8_onnx")):
        s = lat[key]
        lines.append(
            f"| {key} | {_us(s['p50_ms'])} | {_us(s['p90_ms'])} | {_us(s['p99_ms'])} | "
            f"{_us(s['mean_ms'])} | {arts[art]['size_bytes'] / 1024:.1f} KiB |"
        )
    lines += [
        "",
        f"int8/fp32 p50 ratio: **{lat['int8_over_fp32_p50']:.2f}**. {latency_verdict(lat)}",
    ]
    return lines


def _files_section(manifest: dict) -> list[str]:
    lines = ["", "## Files", "", "| file | what | sha256 |", "|---|---|---|"]
    for name, art in manifest["artifacts"].items():
        lines.append(f"| {art['path']} | {name} ({art['kind']}) | `{art['sha256'][:16]}` |")
    return lines + [
        "| manifest.json | everything above, machine-readable | |",
        "| latency.json | raw per-iteration latency samples | |",
        "",
    ]


def _runtimes_section(manifest: dict) -> list[str]:
    table = manifest.get("runtimes")
    if not table or len(table["rows"]) <= 2:  # onnxruntime only: the latency section says it all
        return []
    lines = [
        "",
        "## Every installed runtime",
        "",
        "| model | runtime | precision used | p50 | p90 | p50 / onnxruntime fp32 | val top-1 % | top-1 agreement "
        "with the same file on onnxruntime | faithful |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in table["rows"]:
        precision = row["precision_used"] or ("int8" if row["model"] == "int8" else "fp32")  # onnxruntime: as stored
        lines.append(
            f"| {row['model']} | {row['runtime']} | {precision} | {_us(row['p50_ms'])} | {_us(row['p90_ms'])} "
            f"| {row['p50_over_ort_fp32']:.2f} | {row['val_accuracy']:.2f} | {row['top1_agreement_with_ort']:.1f}% "
            f"| {'yes' if row['faithful'] else 'no'} |"
        )
    lines += [
        "",
        f"Fastest within {table['tolerance_points']:g} point(s) of fp32 on val: **{table['fastest_faithful']}**.",
    ]
    if table.get("deploy"):
        lines += [
            "",
            f"Ships: **{table['deploy']['label']}**: {table['deploy']['verdict']} (int8 ships only where it beats the "
            "fastest faithful fp32 by the margin and beyond noise, as `edgeport quantize` decides).",
        ]
    return lines


def _footprint_section(manifest: dict) -> list[str]:
    from edgeport.report.footprint_table import footprint_lines

    lines = footprint_lines(manifest.get("footprint"))
    if not lines:
        return []
    note = (
        "Peak: the process's maximum resident memory; model: the peak minus the memory before the session; "
        "cold start: session creation + first run, each in a fresh process (raw starts in `latency.json`)."
    )
    return ["## Memory and cold start", "", *[f"- {line}" for line in lines], "", note, ""]


def render_run_report(manifest: dict) -> str:
    sections = (
        _accuracy_section,
        _quantization_section,
        _latency_section,
        _footprint_section,
        _runtimes_section,
        _files_section,
    )
    return "\n".join(line for section in sections for line in section(manifest))


def _sqnr(value: float | None) -> str:
    return "exact, no error" if value is None else f"{value:.1f} dB"
