"""``edgeport run``: one candidate through every stage into a run folder."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgeport.cli.app import cli
from edgeport.cli.common import EXIT_CHECK_FAILED, FINITE, SEED, emit_gate, exit_if_outside_tolerance


def _overrides(**values) -> dict:
    """CLI options -> nested config overrides; options left unset do not override the file."""
    mapping = {
        "dataset": ("data", "name"),
        "data_path": ("data", "path"),
        "image_size": ("data", "image_size"),
        "teacher": ("teacher", "model"),
        "teacher_weights": ("teacher", "weights"),
        "teacher_epochs": ("teacher", "epochs"),
        "student": ("student", "model"),
        "student_epochs": ("student", "epochs"),
        "temperature": ("student", "temperature"),
        "alpha": ("student", "alpha"),
        "no_kd": ("student", "no_kd_baseline"),
        "kd_seeds": ("student", "kd_seeds"),
        "exporter": ("export", "exporter"),
        "calibration_samples": ("quantize", "calibration_samples"),
        "backend": ("quantize", "backend"),
        "engine": ("quantize", "engine"),
        "quant_format": ("quantize", "format"),
        "per_channel": ("quantize", "per_channel"),
        "max_accuracy_drop": ("quantize", "max_accuracy_drop"),
        "iterations": ("bench", "iterations"),
        "threads": ("bench", "threads"),
        "cold_starts": ("bench", "cold_starts"),
        "seed": ("seed",),
    }
    out: dict = {}
    if values.get("epochs") is not None:
        out.setdefault("teacher", {})["epochs"] = values["epochs"]
        out.setdefault("student", {})["epochs"] = values["epochs"]
    for option, path in mapping.items():
        value = values.get(option)
        if value is None:
            continue
        target = out
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = value
    return out


@cli.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Project file (edgeport.toml) with a [run] table; options below override it.",
)
@click.option("--dataset", help="digits (embedded default), cifar10, imagefolder or npz.")
@click.option("--data-path", help="Folder or file for cifar10, imagefolder and npz datasets.")
@click.option("--image-size", type=int, help="Square input size in pixels (default 32).")
@click.option("--teacher", help="Teacher model spec, e.g. 'cnn:width=4,depth=4', 'resnet-cifar:depth=20'.")
@click.option("--teacher-weights", help="Use this safetensors teacher checkpoint instead of training one.")
@click.option("--student", help="Student model spec, e.g. 'cnn:width=2,depth=4' or 'pkg.module:factory'.")
@click.option("--epochs", type=int, help="Training epochs for both teacher and student.")
@click.option("--teacher-epochs", type=int, help="Teacher training epochs.")
@click.option("--student-epochs", type=int, help="Student training epochs (KD and no-KD).")
@click.option("--temperature", type=FINITE, help="KD temperature T.")
@click.option("--alpha", type=FINITE, help="KD weight of the soft loss (0..1).")
@click.option(
    "--no-kd/--skip-no-kd",
    "no_kd",
    default=None,
    help="Also train the same student without KD as a baseline (default: on).",
)
@click.option(
    "--kd-seeds",
    type=click.IntRange(1, 50),
    help="Train the KD and no-KD students on N seeds and report the KD gain with a 95% interval.",
)
@click.option("--exporter", type=click.Choice(["dynamo", "torchscript"]), help="torch.onnx exporter.")
@click.option("--calibration-samples", type=int, help="Training images used to calibrate int8 ranges.")
@click.option("--backend", help="Quantization backend (`edgeport list` shows them), e.g. ort-static, torch-fx.")
@click.option("--engine", help="Engine of the torch backends: x86, fbgemm, qnnpack, onednn.")
@click.option("--format", "quant_format", help="ort-static format: qdq or qoperator.")
@click.option("--per-channel/--per-tensor", "per_channel", default=None, help="Weight ranges per output channel.")
@click.option(
    "--max-accuracy-drop",
    type=FINITE,
    help="Fallback: keep sensitive layers in float until int8 is within this many top-1 points (val).",
)
@click.option("--iterations", type=int, help="Timed inferences per model in the latency benchmark.")
@click.option("--threads", type=int, help="onnxruntime intra-op threads for the benchmark.")
@click.option(
    "--cold-starts",
    type=int,
    help="Fresh processes per artifact for its memory and cold-start footprint (default 3; 0: not measured).",
)
@click.option("--seed", type=SEED, help="Seed for splits, initialisation, shuffling and calibration.")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs"),
    show_default=True,
    help="Folder that receives the run folder runs/<id>/.",
)
@click.option(
    "--budget",
    type=click.Path(dir_okay=False, path_type=Path),
    help="budgets.toml: gate the int8 artifact against a target and exit with the gate's verdict.",
)
@click.option("--target", "budget_target", help="Target in the --budget file (optional when it defines one).")
@click.option(
    "--speed-check/--no-speed-check",
    default=True,
    show_default=True,
    envvar="EDGEPORT_SPEED_CHECK",
    help="Exit 1 when the faithful int8 model is not faster than fp32 on the run's runtime, naming the fastest "
    "faithful option measured (as `edgeport quantize`). Off when this machine is not the target.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON on stdout.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def run(config_path, out, budget, budget_target, as_json, quiet, speed_check, **options) -> None:
    """Distil a student from a teacher, export it to ONNX, quantize it to int8 and measure both."""
    from edgeport.config import load_config
    from edgeport.core.progress import SILENT, RichProgress
    from edgeport.report.run_report import latency_speedup
    from edgeport.report.summary import print_summary
    from edgeport.run.pipeline import run_pipeline

    config = load_config(config_path, _overrides(**options))
    if budget_target and not budget:
        raise click.UsageError("--target needs --budget")
    gate_target = None
    if budget:
        from edgeport.gate.run_gate import target_for_settings

        batch, threads = config.bench.batch, config.bench.threads
        measured = config.bench.cold_starts > 0  # the run measures the footprint its budgets may ask for
        gate_target = target_for_settings(budget, budget_target, batch, threads, "this run", None, measured)[0]
    progress = SILENT if quiet else RichProgress()
    folder, manifest = run_pipeline(config, out, progress)
    report = _gate_run_folder(folder, budget, gate_target) if budget and gate_target else None
    if as_json:
        click.echo(json.dumps({**manifest, "gate": report} if report else manifest, indent=2, default=str))
    else:
        print_summary(manifest, folder)
        if report:
            emit_gate(report, None, False, False)
    exit_if_outside_tolerance(manifest)
    latency, deploy = manifest["latency"], (manifest.get("runtimes") or {}).get("deploy")
    # what ships follows quantize's rule across every installed runtime (run/runtimes.py); without a faithful
    # fp32 combination to compare with, int8 against fp32 on the run's own runtime
    ships = deploy["model"] == "int8" if deploy else latency["int8_faster"]
    if speed_check and not ships:  # faithful, but int8 does not pay: not an answer to ship
        if deploy:
            why = deploy["verdict"]
        else:
            speedup = latency_speedup(latency)
            why = f"it ran at {speedup.text()} fp32's p50 ({speedup.why_not()})"
        click.echo(f"{folder}: int8 does not ship: {why}", err=True)
        raise click.exceptions.Exit(EXIT_CHECK_FAILED)
    if report and not report["passed"]:
        raise click.exceptions.Exit(EXIT_CHECK_FAILED)


def _gate_run_folder(folder: Path, budget: Path, target: str) -> dict:
    """Gate a finished run's int8 artifact with its own measurement and manifest; keep the verdict as gate.json."""
    from edgeport.core.artifacts import atomic_write_json
    from edgeport.gate import GateRequest, run_gate

    report = run_gate(
        GateRequest(
            budget=budget,
            target=target,
            result=folder / "latency.json",
            artifact=folder / "student.int8.onnx",
            manifest=folder / "manifest.json",
        )
    )
    atomic_write_json(folder / "gate.json", report)
    return report
