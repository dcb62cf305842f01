"""The ``edgeport`` command line.

Exit codes: 0 success, 1 a gate or check failed, 2 bad input or usage. Errors
are one line on stderr; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import click

from edgeport import __version__
from edgeport.config import MAX_SEED
from edgeport.errors import EdgeportError

EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2


class FiniteFloat(click.ParamType):
    """A float option that refuses NaN and Inf (click's FLOAT accepts "nan" and "inf")."""

    name = "number"

    def convert(self, value, param, ctx):
        if isinstance(value, float) and math.isfinite(value):
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"expected a number, got {value!r}", param, ctx)
        if not math.isfinite(number):
            self.fail(f"expected a finite number, got {value!r}", param, ctx)
        return number


FINITE = FiniteFloat()
SEED = click.IntRange(0, MAX_SEED)  # numpy and scikit-learn take 32-bit unsigned seeds


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
        "exporter": ("export", "exporter"),
        "calibration_samples": ("quantize", "calibration_samples"),
        "backend": ("quantize", "backend"),
        "engine": ("quantize", "engine"),
        "quant_format": ("quantize", "format"),
        "per_channel": ("quantize", "per_channel"),
        "max_accuracy_drop": ("quantize", "max_accuracy_drop"),
        "iterations": ("bench", "iterations"),
        "threads": ("bench", "threads"),
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeport")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Distil, quantize, export and benchmark models for deployment."""
    ctx.obj = {"debug": debug}


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
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON on stdout.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def run(config_path, out, budget, budget_target, as_json, quiet, **options) -> None:
    """Distil a student from a teacher, export it to ONNX, quantize it to int8 and measure both."""
    from edgeport.config import load_config
    from edgeport.pipeline import run_pipeline
    from edgeport.progress import SILENT, RichProgress
    from edgeport.report.summary import print_summary

    config = load_config(config_path, _overrides(**options))
    if budget_target and not budget:
        raise click.UsageError("--target needs --budget")
    gate_target = None
    if budget:
        from edgeport.gate.run_gate import target_for_settings

        gate_target = target_for_settings(budget, budget_target, config.bench.batch, config.bench.threads, "this run")[
            0
        ]
    progress = SILENT if quiet else RichProgress()
    folder, manifest = run_pipeline(config, out, progress)
    report = _gate_run_folder(folder, budget, gate_target) if budget else None
    if as_json:
        click.echo(json.dumps({**manifest, "gate": report} if report else manifest, indent=2, default=str))
    else:
        print_summary(manifest, folder)
        if report:
            _emit_gate(report, None, False, False)
    _exit_if_fallback_missed(manifest)
    if report and not report["passed"]:
        raise click.exceptions.Exit(EXIT_CHECK_FAILED)


def _gate_run_folder(folder: Path, budget: Path, target: str) -> dict:
    """Gate a finished run's int8 artifact with its own measurement and manifest; keep the verdict as gate.json."""
    from edgeport.artifacts import atomic_write_json
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


def _exit_if_fallback_missed(manifest: dict) -> None:
    """A model outside its accuracy tolerance is still written, but the command fails (exit 1)."""
    fallback = manifest.get("fallback")
    if fallback is not None and not fallback["within_tolerance"]:
        raise click.exceptions.Exit(EXIT_CHECK_FAILED)


def _reduce_range(value: str) -> bool | str:
    return {"auto": "auto", "true": True, "false": False}[value]


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
    default="ort-static",
    show_default=True,
    help="ort-static, ort-dynamic (fp32 ONNX); torch-fx, torch-fx-qat, torch-pt2e (--torch); see `edgeport list`.",
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
@click.option("--exclude-node", "exclude_nodes", multiple=True, help="Keep this node (torch: module) in float.")
@click.option("--exclude-op-type", "exclude_op_types", multiple=True, help="Keep all nodes of this op type in float.")
@click.option("--engine", help="torch backends: x86, fbgemm, qnnpack or onednn.")
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
    help="Fallback: keep sensitive layers in float until top-1 on --val is within this many points.",
)
@click.option(
    "--min-cosine",
    type=FINITE,
    help="Fallback for models without labels: required mean cosine similarity to the fp32 outputs.",
)
@click.option(
    "--fallback-layer",
    "fallback_layers",
    multiple=True,
    help="Only these layers may fall back to float (default: every conv/linear layer).",
)
@click.option("-o", "--output", help="Output .onnx (default MODEL.int8.onnx); the manifest goes beside it.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON on stdout.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
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
    exporter,
    quant_format,
    reduce_range,
    max_accuracy_drop,
    min_cosine,
    fallback_layers,
    **options,
) -> None:
    """Quantize an fp32 ONNX file or a torch model to a verified int8 ONNX artifact."""
    from edgeport.progress import SILENT, RichProgress
    from edgeport.quant_backends.fallback import Tolerance
    from edgeport.quantize_job import quantize_file
    from edgeport.report.summary import print_quantize_summary

    config = {k: (tuple(v) if isinstance(v, tuple) else v) for k, v in options.items() if v is not None and v != ()}
    if quant_format is not None:
        config["format"] = quant_format
    config["reduce_range"] = _reduce_range(reduce_range)
    tolerance = None
    if max_accuracy_drop is not None or min_cosine is not None:
        tolerance = Tolerance(max_drop=max_accuracy_drop, min_cosine=min_cosine)
    path, manifest = quantize_file(
        model,
        torch_spec,
        weights,
        calib,
        val,
        config,
        output,
        num_classes,
        exporter,
        tolerance,
        list(fallback_layers) or None,
        SILENT if quiet else RichProgress(),
    )
    if as_json:
        click.echo(json.dumps(manifest, indent=2, default=str))
    else:
        print_quantize_summary(manifest, path)
    _exit_if_fallback_missed(manifest)


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False), required=False)
@click.option("--vs", help="A second model measured interleaved with MODEL (A/B comparison).")
@click.option("--torch", "torch_spec", help="Measure a PyTorch model instead (spec or package.module:factory).")
@click.option("--weights", help="safetensors weights for --torch.")
@click.option("--num-classes", type=int, help="num_classes for --torch factories that need it.")
@click.option("--engine", help="torch quantized engine to select for --torch (x86, fbgemm, qnnpack, onednn).")
@click.option("--batch", "batches", default="1", show_default=True, help="Batch sizes, e.g. 1,8.")
@click.option("--threads", "threads", default="1", show_default=True, help="Intra-op thread counts, e.g. 1,2.")
@click.option("--provider", default="cpu", show_default=True, help="cpu, cuda, tensorrt, openvino or auto.")
@click.option(
    "--opt-level", default="all", show_default=True, help="Graph optimisation: disable, basic, extended, all."
)
@click.option(
    "--warmup", default="50", show_default=True, help="Untimed runs before measuring: a count (50) or seconds (2s)."
)
@click.option("--iterations", type=int, default=1000, show_default=True, help="Timed runs per model and setting.")
@click.option("--duration", type=FINITE, help="Measure for this many seconds instead of --iterations.")
@click.option(
    "--rounds", type=int, default=10, show_default=True, help="Interleaving rounds (A/B alternate per round)."
)
@click.option(
    "--margin",
    type=FINITE,
    default=0.0,
    show_default=True,
    help="With --vs: call A faster/slower only beyond this relative difference (0.02 = 2%).",
)
@click.option("--shape", "shapes", multiple=True, help="Shape of a dynamic input: name=1x3x32x32.")
@click.option("--inputs", "inputs_path", help=".npz with real inputs (x, or one array per input name).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of synthetic inputs and bootstrap.")
@click.option("--remote", help="Measure on an edge device: ssh://user@host[:port] (numpy + onnxruntime there).")
@click.option("--remote-python", default="python3", show_default=True, help="Python on the device.")
@click.option(
    "--ssh-option",
    "ssh_options",
    multiple=True,
    help="Extra ssh -o KEY=VALUE, e.g. IdentityFile=~/.ssh/board or UserKnownHostsFile=...",
)
@click.option("-o", "--output", help="Write the full result (raw samples included) to this JSON file.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def bench(
    model,
    vs,
    torch_spec,
    weights,
    num_classes,
    engine,
    batches,
    threads,
    provider,
    opt_level,
    warmup,
    iterations,
    duration,
    rounds,
    margin,
    shapes,
    inputs_path,
    seed,
    remote,
    remote_python,
    ssh_options,
    output,
    as_json,
    quiet,
) -> None:
    """Measure ONNX latency with onnxruntime: percentiles with 95% intervals, optional A/B."""
    from edgeport.bench_job import parse_int_list, parse_shapes, run_bench
    from edgeport.benchmarks import BenchSettings
    from edgeport.benchmarks.remote import RemoteTarget
    from edgeport.progress import SILENT, RichProgress
    from edgeport.report.summary import print_bench_summary

    try:
        warmup_runs, warmup_s = (0, float(warmup[:-1])) if warmup.endswith("s") else (int(warmup), None)
    except ValueError:
        raise click.BadParameter(
            f"expected a count such as 50 or seconds such as 2s, got {warmup!r}", param_hint="--warmup"
        ) from None
    settings = BenchSettings(
        warmup=warmup_runs,
        iterations=iterations,
        rounds=rounds,
        optimization_level=opt_level,
        seed=seed,
        provider=provider,
        duration_s=duration,
        warmup_s=warmup_s,
    )
    from edgeport.benchmarks.compare import MIN_COMPARE_SAMPLES, check_margin

    check_margin(margin)
    if margin and not vs:
        raise click.UsageError("--margin applies to an A/B comparison: give --vs OTHER.onnx")
    if vs and duration is None and iterations < MIN_COMPARE_SAMPLES:  # refuse before measuring, not after
        raise click.BadParameter(
            f"an A/B comparison needs at least {MIN_COMPARE_SAMPLES} iterations per model, got {iterations}",
            param_hint="--iterations",
        )
    if torch_spec is not None:
        from edgeport.bench_job import run_torch_bench

        if model or vs or remote or weights is None:
            raise click.UsageError("--torch takes --weights and no MODEL.onnx, --vs or --remote")
        report = run_torch_bench(
            torch_spec,
            weights,
            num_classes,
            engine,
            parse_int_list(batches, "--batch"),
            parse_int_list(threads, "--threads"),
            settings,
            parse_shapes(shapes),
            inputs_path,
            output,
        )
        if as_json:
            click.echo(json.dumps(report, indent=2, default=str))
        else:
            print_bench_summary(report)
        return
    if model is None:
        raise click.UsageError("give MODEL.onnx (or --torch SPEC --weights W.safetensors)")
    target = RemoteTarget.parse(remote, remote_python, ssh_options) if remote else None
    if target is not None and (duration is not None or warmup_s is not None):
        raise click.BadParameter("--remote takes counts: use --iterations and a --warmup count", param_hint="--remote")
    report = run_bench(
        model,
        vs,
        parse_int_list(batches, "--batch"),
        parse_int_list(threads, "--threads"),
        settings,
        parse_shapes(shapes),
        inputs_path,
        output,
        SILENT if quiet else RichProgress(),
        target,
        margin=margin,
    )
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        print_bench_summary(report)


@cli.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Project file with [run] (the base settings) and [search] (strategy, policy, space).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs"),
    show_default=True,
    help="Folder that receives the search folder runs/search-<id>/ (and the shared stage cache).",
)
@click.option(
    "--resume",
    type=click.Path(file_okay=False, path_type=Path),
    help="Continue an interrupted search in this folder (with --config: a space that only adds candidates).",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Run build stages in local processes or as Ray tasks.",
)
@click.option("--ray-address", help="Ray cluster address (host:port); default: start a local Ray instance.")
@click.option(
    "--workers",
    type=int,
    default=1,
    show_default=True,
    help="Build stages in parallel (processes or Ray CPUs); benchmarks always run alone.",
)
@click.option("--max-trials", type=int, help="At most this many candidates (a larger grid needs --allow-large-grid).")
@click.option(
    "--allow-large-grid",
    is_flag=True,
    help="Run the first --max-trials candidates of a larger space (without --max-trials: a space of more than 1,000).",
)
@click.option("--time-budget", help="Stop starting new trials after this long (90s, 30m, 1h30m).")
@click.option("--remote", help="Measure latency on an edge device: ssh://user@host[:port].")
@click.option("--remote-python", default="python3", show_default=True, help="Python on the device (--remote).")
@click.option("--ssh-option", "ssh_options", multiple=True, help="Extra ssh -o KEY=VALUE for --remote (repeatable).")
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    help="Stage cache folder (default: OUT/.cache/stages, shared by searches in OUT).",
)
@click.option("--seed", type=SEED, help="Override [run] seed.")
@click.option(
    "--budget",
    type=click.Path(dir_okay=False, path_type=Path),
    help="budgets.toml: gate the chosen artifact against a target and exit with the gate's verdict.",
)
@click.option("--target", "budget_target", help="Target in the --budget file (optional when it defines one).")
@click.option("--json", "as_json", is_flag=True, help="Print the search summary as JSON on stdout.")
@click.option("--quiet", is_flag=True, help="No progress display.")
def search(
    config_path,
    out,
    resume,
    executor,
    ray_address,
    workers,
    max_trials,
    allow_large_grid,
    time_budget,
    remote,
    remote_python,
    ssh_options,
    cache,
    seed,
    budget,
    budget_target,
    as_json,
    quiet,
) -> None:
    """Search students, KD, quantization and target settings for the best accuracy within a latency budget."""
    from edgeport.progress import SILENT, RichProgress
    from edgeport.report.summary import print_search_summary
    from edgeport.search import SearchOptions, run_search

    if budget_target and not budget:
        raise click.UsageError("--target needs --budget")
    if max_trials is not None and max_trials < 1:
        raise click.BadParameter(f"must be at least 1, got {max_trials}", param_hint="--max-trials")
    options = SearchOptions(
        out=out,
        resume=resume,
        executor=executor,
        workers=workers,
        ray_address=ray_address,
        max_trials=max_trials,
        allow_large_grid=allow_large_grid,
        time_budget=time_budget,
        remote=remote,
        remote_python=remote_python,
        ssh_options=tuple(ssh_options),
        cache=cache,
        budget=budget,
        budget_target=budget_target,
        overrides={"seed": seed} if seed is not None else {},
    )
    folder, summary = run_search(config_path, options, SILENT if quiet else RichProgress())
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
    else:
        print_search_summary(summary, folder)
        if summary.get("gate"):
            _emit_gate(summary["gate"], None, False, False)
    if summary["chosen"] is None or (summary.get("gate") and not summary["gate"]["passed"]):
        raise click.exceptions.Exit(EXIT_CHECK_FAILED)


@cli.command()
@click.option(
    "--budget",
    "budget",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="budgets.toml with one [targets.NAME] table per target.",
)
@click.option("--target", help="Target name in the budget file (optional when it defines one).")
@click.option(
    "--result",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Benchmark result to judge: edgeport bench -o, a run's latency.json, a search benchmark.",
)
@click.option(
    "--artifact",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The ONNX artifact: checked against the result's sha256, or measured here when no --result.",
)
@click.option(
    "--manifest",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The artifact's manifest (accuracy, size); found beside the result or artifact when omitted.",
)
@click.option(
    "--baseline",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A previous result of the same target, for max_regression.",
)
@click.option(
    "--baseline-artifact",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The previous release's ONNX, measured interleaved with --artifact, for max_regression.",
)
@click.option(
    "--reference",
    type=click.Path(dir_okay=False, path_type=Path),
    help="fp32 ONNX measured beside --artifact, for min_speedup.",
)
@click.option(
    "--mode",
    type=click.Choice(["ci", "point"]),
    default="ci",
    show_default=True,
    help="ci: a latency budget passes when its 95% interval is within budget; point: the estimate.",
)
@click.option("--allow-inconclusive", is_flag=True, help="Pass when a check stays inconclusive.")
@click.option(
    "--max-extra-measurements",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="With --artifact: measure again this many times while a latency check is inconclusive.",
)
@click.option(
    "--iterations",
    type=click.IntRange(min=1),
    default=2000,
    show_default=True,
    help="With --artifact: timed runs per measurement.",
)
@click.option(
    "--junit", type=click.Path(dir_okay=False, path_type=Path), help="Write JUnit XML (one testcase per check)."
)
@click.option("--github", is_flag=True, help="Append a summary to $GITHUB_STEP_SUMMARY and print ::error annotations.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON instead of the table.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def gate(
    budget,
    target,
    result,
    artifact,
    manifest,
    baseline,
    baseline_artifact,
    reference,
    mode,
    allow_inconclusive,
    max_extra_measurements,
    iterations,
    junit,
    github,
    as_json,
    quiet,
) -> None:
    """Check an artifact against a target's latency, accuracy and size budget (exit 0 pass, 1 fail, 2 bad input)."""
    from edgeport.gate import GateRequest, run_gate
    from edgeport.gate.reporters import step_summary_path
    from edgeport.progress import SILENT, RichProgress

    # --junit and the step summary are checked (not an input, writable) before anything is measured
    request = GateRequest(
        budget=budget,
        target=target,
        result=result,
        artifact=artifact,
        manifest=manifest,
        baseline=baseline,
        baseline_artifact=baseline_artifact,
        reference=reference,
        mode=mode,
        allow_inconclusive=allow_inconclusive,
        max_extra_measurements=max_extra_measurements,
        iterations=iterations,
        junit=junit,
        step_summary=step_summary_path() if github else None,
    )
    report = run_gate(request, SILENT if quiet or as_json else RichProgress())
    _emit_gate(report, junit, github, as_json)
    if not report["passed"]:
        raise click.exceptions.Exit(EXIT_CHECK_FAILED)


def _emit_gate(report: dict, junit, github: bool, as_json: bool) -> None:
    """The verdict, then the reports; a report that cannot be written is exit 2 after the verdict is shown."""
    from edgeport.gate.reporters import emit

    emit(
        report,
        junit,
        github,
        as_json,
        click.echo,
        lambda verdict: click.echo(json.dumps(verdict, indent=2, default=str)),
    )


@cli.command(name="list")
def list_registries() -> None:
    """Show the datasets, models and quantization backends edgeport knows."""
    from edgeport.data import list_datasets
    from edgeport.models import list_models
    from edgeport.quant_backends import list_backends

    click.echo(f"datasets: {', '.join(list_datasets())}")
    click.echo(f"models:   {', '.join(list_models())} (or package.module:factory)")
    click.echo(f"backends: {', '.join(list_backends())}")


def main(argv: list[str] | None = None) -> int:
    """Console entry point: one-line errors, exit code 2 for bad input or usage."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        # Without standalone mode click returns the code of a raised Exit instead of exiting.
        result = cli.main(args=args, prog_name="edgeport", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        if debug:
            raise
        click.echo(f"error: {exc.format_message()}", err=True)
        return EXIT_BAD_INPUT
    except EdgeportError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except OSError as exc:
        # The file system refused something the up-front checks could not foresee (a disk that
        # filled, a folder made read-only meanwhile): still one line that names the file.
        if debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"error: {where}{exc.strerror or exc}", err=True)
        return EXIT_BAD_INPUT
    except click.Abort:
        click.echo("aborted", err=True)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
