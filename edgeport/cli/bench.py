"""``edgeport bench``: latency with percentiles, intervals and A/B comparisons."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from edgeport.cli.app import cli
from edgeport.cli.common import FINITE, SEED, pool_choice, pool_options
from edgeport.core.bench_defaults import CLI_BENCH

if TYPE_CHECKING:  # the command imports its stage code when it runs (see edgeport.cli)
    from edgeport.benchmarks.records import BenchSettings, RuntimeChoice
    from edgeport.benchmarks.request import TorchModel
    from edgeport.benchmarks.ssh_device import RemoteDevice


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False), required=False)
@click.option(
    "--vs",
    help="A second model measured interleaved with MODEL (A/B comparison); OTHER.onnx@openvino[/bf16] runs it "
    "on another runtime.",
)
@click.option("--torch", "torch_spec", help="Measure a PyTorch model instead (spec or package.module:factory).")
@click.option("--weights", help="safetensors weights for --torch.")
@click.option("--num-classes", type=int, help="num_classes for --torch factories that need it.")
@click.option("--engine", help="torch quantized engine to select for --torch (x86, fbgemm, qnnpack, onednn).")
@click.option(
    "--batch",
    "batches",
    help="Batch sizes, e.g. 1,8 (default: the first axis of --shape where given, the batch the model fixes, else 1); "
    "fills the batch axis of inputs without a --shape, or with that many samples of --inputs.",
)
@click.option("--threads", "threads", default="1", show_default=True, help="Intra-op thread counts, e.g. 1,2.")
@click.option(
    "--runtime",
    type=click.Choice(["ort", "openvino", "all"]),
    default="ort",
    show_default=True,
    help="The runtime that executes the model: onnxruntime, OpenVINO (edgeport[openvino]), or every one installed.",
)
@click.option(
    "--precision",
    type=click.Choice(["f32", "bf16", "f16"]),
    help="OpenVINO's inference precision hint (default: its own, bf16 on CPUs with AMX/AVX-512 BF16).",
)
@click.option("--provider", default="cpu", show_default=True, help="cpu, cuda, tensorrt, openvino or auto.")
@click.option(
    "--opt-level", default="all", show_default=True, help="Graph optimisation: disable, basic, extended, all."
)
@click.option(
    "--warmup",
    default=str(CLI_BENCH.warmup),
    show_default=True,
    help="Untimed runs before measuring: a count (50) or seconds (2s).",
)
@click.option(
    "--iterations", type=int, default=CLI_BENCH.iterations, show_default=True, help="Timed runs per model and setting."
)
@click.option("--duration", type=FINITE, help="Measure for this many seconds instead of --iterations.")
@click.option(
    "--rounds",
    type=int,
    default=CLI_BENCH.rounds,
    show_default=True,
    help="Interleaving rounds (A/B alternate per round).",
)
@click.option(
    "--margin",
    type=FINITE,
    default=0.0,
    show_default=True,
    help="With --vs: call A faster/slower only beyond this relative difference (0.02 = 2%).",
)
@click.option(
    "--shape",
    "shapes",
    multiple=True,
    help="Shape of an input, used as given (batch axis included): name=1x3x32x32; name=Nx3x32x32 takes each --batch.",
)
@click.option(
    "--inputs",
    "inputs_path",
    help=".npz with real inputs (x, or one array per input name); each run is fed --batch of its samples (default 1).",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of synthetic inputs and bootstrap.")
@click.option("--remote", help="Measure on an edge device: ssh://user@host[:port] (numpy + onnxruntime there).")
@click.option("--remote-python", default="python3", show_default=True, help="Python on the device.")
@click.option(
    "--ssh-option",
    "ssh_options",
    multiple=True,
    help="Extra ssh -o KEY=VALUE, e.g. IdentityFile=~/.ssh/board or UserKnownHostsFile=...",
)
@click.option(
    "--footprint",
    is_flag=True,
    help="Also measure each model's memory and cold start on its runtime (onnxruntime with and without its CPU "
    "arena), each cold start in a fresh process.",
)
@click.option(
    "--cold-starts",
    type=int,
    help="With --footprint: fresh processes per model, runtime and memory setting (default 5).",
)
@click.option(
    "--sustained",
    type=FINITE,
    help="Measure for this many seconds and report the drift between the first and last rounds, with the "
    "platform's temperature, CPU frequency and throttling (where exposed).",
)
@pool_options
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
    runtime,
    precision,
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
    footprint,
    cold_starts,
    sustained,
    pool_file,
    pool_tags,
    ray_address,
    output,
    as_json,
    quiet,
) -> None:
    """Measure ONNX latency with onnxruntime or OpenVINO: percentiles with 95% intervals, optional A/B."""
    from edgeport.benchmarks.job import run_bench
    from edgeport.benchmarks.options import parse_int_list, parse_shapes
    from edgeport.benchmarks.request import BenchRequest
    from edgeport.core.progress import SILENT, RichProgress

    settings = _settings(warmup, iterations, rounds, opt_level, seed, provider, duration)
    settings, every_runtime = _with_runtime(settings, runtime, precision, vs)
    _check_comparison(vs, margin, duration, iterations)
    torch_model = _torch_model(torch_spec, weights, num_classes, engine, (model, vs, remote, pool_file))
    if torch_model is None and model is None:
        raise click.UsageError("give MODEL.onnx (or --torch SPEC --weights W.safetensors)")
    request = BenchRequest(
        model=model,
        remote=_device(remote, remote_python, ssh_options, settings),
        batches=tuple(parse_int_list(batches, "--batch")) if batches is not None else None,
        threads=tuple(parse_int_list(threads, "--threads")),
        settings=settings,
        shapes=parse_shapes(shapes),
        inputs_path=inputs_path,
        output=output,
        vs=vs,
        margin=margin,
        runtimes=every_runtime,
        torch=torch_model,
        footprint=_cold_starts(footprint, cold_starts),
        sustained=sustained,
        pool=pool_choice(pool_file, pool_tags, ray_address),
    )
    report = run_bench(request, SILENT if quiet else RichProgress())
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        from edgeport.report.summary import print_bench_summary

        print_bench_summary(report)


def _cold_starts(footprint: bool, count: int | None) -> int | None:
    """--footprint's cold starts per model and setting (None: no footprint)."""
    from edgeport.benchmarks.footprint import COLD_STARTS

    if count is not None and not footprint:
        raise click.UsageError("--cold-starts counts the cold starts of --footprint: add --footprint")
    return (COLD_STARTS if count is None else count) if footprint else None


def _settings(
    warmup: str, iterations: int, rounds: int, opt_level: str, seed: int, provider: str, duration: float | None
) -> BenchSettings:
    """The measurement settings; --warmup is a count (50) or seconds (2s)."""
    from edgeport.benchmarks import BenchSettings

    try:
        warmup_runs, warmup_s = (0, float(warmup[:-1])) if warmup.endswith("s") else (int(warmup), None)
    except ValueError:
        raise click.BadParameter(
            f"expected a count such as 50 or seconds such as 2s, got {warmup!r}", param_hint="--warmup"
        ) from None
    return BenchSettings(
        warmup=warmup_runs,
        iterations=iterations,
        rounds=rounds,
        optimization_level=opt_level,
        seed=seed,
        provider=provider,
        duration_s=duration,
        warmup_s=warmup_s,
    )


def _with_runtime(
    settings: BenchSettings, runtime: str, precision: str | None, vs: str | None
) -> tuple[BenchSettings, tuple[RuntimeChoice, ...]]:
    """The settings with the runtime MODEL runs on, and with --runtime all the runtimes to measure it on
    (onnxruntime first, the reference; --precision is then OpenVINO's)."""
    import dataclasses

    from edgeport.benchmarks.records import ONNXRUNTIME, RuntimeChoice

    if runtime == "all":
        if vs:
            raise click.UsageError("--runtime all compares MODEL across runtimes; --vs compares two models")
        return settings, (ONNXRUNTIME, RuntimeChoice("openvino", precision))
    if precision is not None and runtime != "openvino":
        raise click.UsageError("--precision is OpenVINO's inference precision hint: use it with --runtime openvino")
    return dataclasses.replace(settings, runtime=RuntimeChoice(runtime, precision)), ()


def _torch_model(
    spec: str | None, weights: str | None, num_classes: int | None, engine: str | None, onnx_options: tuple
) -> TorchModel | None:
    """--torch's model, None without --torch; it takes --weights and none of MODEL.onnx, --vs, --remote."""
    from edgeport.benchmarks.request import TorchModel

    if spec is None:
        return None
    if any(onnx_options) or weights is None:
        raise click.UsageError("--torch takes --weights and no MODEL.onnx, --vs, --remote or --pool")
    return TorchModel(spec, weights, num_classes, engine)


def _check_comparison(vs: str | None, margin: float, duration: float | None, iterations: int) -> None:
    """--margin and --iterations as an A/B comparison needs them, refused before measuring, not after."""
    from edgeport.benchmarks.compare import MIN_COMPARE_SAMPLES, check_margin

    check_margin(margin)
    if margin and not vs:
        raise click.UsageError("--margin applies to an A/B comparison: give --vs OTHER.onnx")
    if vs and duration is None and iterations < MIN_COMPARE_SAMPLES:
        raise click.BadParameter(
            f"an A/B comparison needs at least {MIN_COMPARE_SAMPLES} iterations per model, got {iterations}",
            param_hint="--iterations",
        )


def _device(
    remote: str | None, remote_python: str, ssh_options: tuple[str, ...], settings: BenchSettings
) -> RemoteDevice | None:
    """The --remote device, checked; it takes counts, not seconds."""
    from edgeport.benchmarks.ssh_device import RemoteDevice

    if not remote:
        return None
    device = RemoteDevice.parse(remote, remote_python, ssh_options)
    if settings.duration_s is not None or settings.warmup_s is not None:
        raise click.BadParameter("--remote takes counts: use --iterations and a --warmup count", param_hint="--remote")
    return device
