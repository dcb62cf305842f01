"""``edgeport quantize``: an fp32 ONNX file or torch model to a verified int8 ONNX artifact."""

from __future__ import annotations

import json

import click

from edgeport.cli.app import cli
from edgeport.cli.common import FINITE, exit_if_outside_tolerance, reduce_range_value


def default_backend(config: dict) -> str:
    """auto, unless the command line set an option of a specific backend (one auto's type does not
    have): then ort-static, as before auto."""
    from edgeport.quantize.config import AutoConfig

    return "auto" if set(config) <= set(AutoConfig.model_fields) else "ort-static"


def _settings(options: dict, quant_format: str | None, reduce_range: str) -> dict:
    """The quantization settings the command line gave (unset options left out)."""
    config = {k: (tuple(v) if isinstance(v, tuple) else v) for k, v in options.items() if v is not None and v != ()}
    if quant_format is not None:
        config["format"] = quant_format
    config["reduce_range"] = reduce_range_value(reduce_range)
    config.setdefault("backend", default_backend(config))
    return config


@cli.command()
@click.argument("model", required=False, type=click.Path(dir_okay=False))
@click.option("--torch", "torch_spec", help="Quantize a torch model: package.module:factory or a registered spec.")
@click.option("--weights", help="safetensors weights for --torch.")
@click.option(
    "--num-classes", type=click.IntRange(min=2), help="num_classes for --torch factories (default: from labels y)."
)
@click.option("--calib", required=True, help=".npz with calibration inputs: x, or one array per input name.")
@click.option("--val", help=".npz used to verify the int8 model (and measure accuracy if it has y).")
@click.option(
    "--backend",
    help="auto (default: tries recipes, keeps the fastest within tolerance; ort-static when an option of a "
    "specific backend is given), ort-static, ort-dynamic, nncf (pip install 'edgeport[nncf]'); torch-fx, "
    "torch-fx-qat, torch-pt2e (--torch).",
)
@click.option("--format", "quant_format", help="qdq or qoperator (ort-static).")
@click.option("--per-channel/--per-tensor", default=None, help="Weight ranges per output channel or per tensor.")
@click.option("--activation-type", help="uint8 or int8 (ort-static).")
@click.option("--weight-type", help="uint8 or int8 (ort backends).")
@click.option("--symmetric-activations/--asymmetric-activations", default=None)
@click.option(
    "--reduce-range",
    type=click.Choice(["auto", "true", "false"]),
    default="auto",
    show_default=True,
    help="7-bit weights; auto = on x86 CPUs without VNNI.",
)
@click.option("--calibration-method", help="minmax, entropy or percentile (ort-static).")
@click.option("--calibration-samples", type=int, help="How many calibration samples to use.")
@click.option("--percentile", type=FINITE, help="Percentile for --calibration-method percentile.")
@click.option(
    "--smooth-alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="ort backends: migrate activation outliers into the weights first (SmoothQuant), with this strength.",
)
@click.option("--exclude-node", "exclude_nodes", multiple=True, help="Keep this node (torch: module) in float.")
@click.option("--exclude-op-type", "exclude_op_types", multiple=True, help="Keep all nodes of this op type in float.")
@click.option("--engine", help="torch backends: x86, fbgemm, qnnpack or onednn.")
@click.option(
    "--model-type",
    help="nncf: transformer or default (default auto: transformer when the graph has attention MatMuls).",
)
@click.option("--preset", help="nncf: performance or mixed (default: NNCF's own for the model type).")
@click.option("--target-device", help="nncf: any, cpu, gpu, npu or cpu_spr (default any).")
@click.option("--qat-epochs", type=int, help="torch-fx-qat: fine-tuning epochs on the labelled --calib data.")
@click.option("--qat-lr", type=FINITE, help="torch-fx-qat: learning rate.")
@click.option(
    "--exporter",
    type=click.Choice(["dynamo", "torchscript"]),
    default="dynamo",
    show_default=True,
    help="Exporter for the fp32 ONNX of a --torch model.",
)
@click.option(
    "--max-accuracy-drop",
    type=FINITE,
    help="Top-1 points the labelled (first) output may lose on --val; every other output is still held to "
    "--min-cosine. Also turns on the fallback: sensitive layers kept in float until within tolerance.",
)
@click.option(
    "--min-sequence-agreement",
    type=click.FloatRange(0, 1),
    help="Sequence outputs (CTC recognizers): share of samples whose decoded sequence must equal fp32's "
    "(default 0.95); refused for a model without one.",
)
@click.option(
    "--min-cosine",
    type=FINITE,
    help="Required mean cosine similarity to fp32 of every output top-1 does not judge (default 0.99); alone, "
    "of every output, labels or not. Also turns on the fallback.",
)
@click.option(
    "--fallback-layer",
    "fallback_layers",
    multiple=True,
    help="Only these layers may fall back to float (default: every conv/linear layer).",
)
@click.option(
    "--runtime",
    type=click.Choice(["ort", "openvino"]),
    help="The runtime the int8 model ships with: it is judged (and auto's recipes ranked) as that runtime runs it. "
    "Default: onnxruntime judges and ranks, and with the speed check the int8 file ships on whichever installed "
    "runtime runs it fastest and faithfully, if it beats fp32 on every installed runtime and precision.",
)
@click.option("--precision", type=click.Choice(["f32", "bf16", "f16"]), help="OpenVINO's inference precision hint.")
@click.option(
    "--speed-check/--no-speed-check",
    default=True,
    show_default=True,
    envvar="EDGEPORT_SPEED_CHECK",
    help="Ship int8 only when it runs faster than fp32 on --runtime here (else exit 1, naming the fastest "
    "faithful option measured). Off when this machine is not the target (measure there with `edgeport "
    "bench`); EDGEPORT_SPEED_CHECK=0 turns it off for every command.",
)
@click.option("-o", "--output", help="Output .onnx (default MODEL.int8.onnx); the manifest goes beside it.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON on stdout.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--debug", is_flag=True, help="Let third-party warnings through as they happen.")
@click.option("--explain", is_flag=True, help="Rank every quantized tensor by its SQNR; print the ten worst.")
def quantize(
    model,
    torch_spec,
    weights,
    num_classes,
    calib,
    val,
    output,
    as_json,
    quiet,
    debug,
    explain,
    exporter,
    quant_format,
    reduce_range,
    max_accuracy_drop,
    min_cosine,
    min_sequence_agreement,
    runtime,
    precision,
    speed_check,
    fallback_layers,
    **options,
) -> None:
    """Quantize an fp32 ONNX file or a torch model to a verified int8 ONNX artifact."""
    from edgeport.benchmarks.records import ONNXRUNTIME, RuntimeChoice
    from edgeport.core.progress import SILENT, RichProgress
    from edgeport.quantize.job import QuantizeFileRequest, quantize_file
    from edgeport.quantize.tolerance import ToleranceSettings
    from edgeport.report.quantize_summary import print_quantize_summary, print_sensitivity

    request = QuantizeFileRequest(
        calib,
        model=model,
        torch_spec=torch_spec,
        weights=weights,
        val=val,
        config=_settings(options, quant_format, reduce_range),
        output=output,
        num_classes=num_classes,
        exporter=exporter,
        tolerance=ToleranceSettings(max_accuracy_drop, min_cosine, min_sequence_agreement),
        fallback_layers=tuple(fallback_layers) or None,
        runtime=RuntimeChoice(runtime or ONNXRUNTIME.name, precision),
        choose_runtime=runtime is None,
        speed_check=speed_check,
        debug=debug,
        explain=explain,
    )
    path, manifest = quantize_file(request, SILENT if quiet else RichProgress())
    if as_json:
        click.echo(json.dumps(manifest, indent=2, default=str))
    else:
        print_quantize_summary(manifest, path)
        print_sensitivity(manifest["sensitivity"]) if explain else None
    _third_party_note(manifest)
    if manifest.get("ships") is False and not as_json:  # why, on stderr too: the table may be scrolled away
        click.echo(f"{path}: does not ship: {manifest['verdict']}", err=True)
    exit_if_outside_tolerance(manifest)


def _third_party_note(manifest: dict) -> None:
    """One line on stderr for the third-party warnings kept in the manifest (--debug shows them raw)."""
    from edgeport.quantize.noise import third_party_summary

    note = third_party_summary(manifest["warnings"])
    if note:
        click.echo(note, err=True)
