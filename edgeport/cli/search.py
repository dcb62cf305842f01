"""``edgeport search``: grid or random search over students, KD, quantization and targets."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgeport.cli.app import cli
from edgeport.cli.common import EXIT_CHECK_FAILED, SEED, emit_gate, pool_choice, pool_options


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
@click.option(
    "--ray-address", help="Ray cluster (host:port) for --executor ray and --pool; default: a local Ray instance."
)
@click.option(
    "--workers",
    type=int,
    default=1,
    show_default=True,
    help="Build stages in parallel (processes or Ray CPUs); benchmarks run alone (one per device with --pool).",
)
@click.option("--max-trials", type=int, help="At most this many candidates (a larger grid needs --allow-large-grid).")
@click.option(
    "--allow-large-grid",
    is_flag=True,
    help="Run the first --max-trials candidates of a larger space (without --max-trials: a space of more than 1,000).",
)
@click.option("--time-budget", "time_limit", help="Stop starting new trials after this long (90s, 30m, 1h30m).")
@click.option("--remote", help="Measure latency on an edge device: ssh://user@host[:port].")
@click.option("--remote-python", default="python3", show_default=True, help="Python on the device (--remote).")
@click.option("--ssh-option", "ssh_options", multiple=True, help="Extra ssh -o KEY=VALUE for --remote (repeatable).")
@pool_options(ray_address=False)
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    help="Stage cache folder (default: OUT/.cache/stages, shared by searches in OUT).",
)
@click.option("--seed", type=SEED, help="Override [run] seed.")
@click.option(
    "--budget",
    "gate_budget",
    type=click.Path(dir_okay=False, path_type=Path),
    help="budgets.toml: gate the chosen artifact against a target and exit with the gate's verdict.",
)
@click.option("--target", "gate_target", help="Target in the --budget file (optional when it defines one).")
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
    time_limit,
    remote,
    remote_python,
    ssh_options,
    pool_file,
    pool_tags,
    cache,
    seed,
    gate_budget,
    gate_target,
    as_json,
    quiet,
) -> None:
    """Search students, KD, quantization and target settings for the best accuracy within a latency budget."""
    from edgeport.core.progress import SILENT, RichProgress
    from edgeport.report.summary import print_search_summary
    from edgeport.search import SearchOptions, run_search

    if gate_target and not gate_budget:
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
        time_limit=time_limit,
        remote=remote,
        remote_python=remote_python,
        ssh_options=tuple(ssh_options),
        pool=_pool(pool_file, pool_tags, ray_address),
        cache=cache,
        gate_budget=gate_budget,
        gate_target=gate_target,
        overrides={"seed": seed} if seed is not None else {},
    )
    folder, summary = run_search(config_path, options, SILENT if quiet else RichProgress())
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
    else:
        print_search_summary(summary, folder)
        if summary.get("gate"):
            emit_gate(summary["gate"], None, False, False)
    if summary["chosen"] is None or (summary.get("gate") and not summary["gate"]["passed"]):
        raise click.exceptions.Exit(EXIT_CHECK_FAILED)


def _pool(pool_file: str | None, tags: tuple[str, ...], ray_address: str | None):
    """--pool's choice; without --pool, --ray-address serves --executor ray, and --tags has nothing to choose."""
    if pool_file is None:
        if tags:
            raise click.UsageError("--tags chooses the devices of --pool: add --pool FILE")
        return None
    return pool_choice(pool_file, tags, ray_address)
