"""``edgeport gate``: an artifact against a target's budget (exit 0 pass, 1 fail, 2 bad input)."""

from __future__ import annotations

from pathlib import Path

import click

from edgeport.cli.app import cli
from edgeport.cli.common import EXIT_CHECK_FAILED, emit_gate, pool_choice, pool_options
from edgeport.core.bench_defaults import GATE


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
    default=GATE.iterations,
    show_default=True,
    help="With --artifact: timed runs per measurement.",
)
@pool_options
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
    pool_file,
    pool_tags,
    ray_address,
    junit,
    github,
    as_json,
    quiet,
) -> None:
    """Check an artifact against a target's latency, accuracy and size budget (exit 0 pass, 1 fail, 2 bad input)."""
    from edgeport.core.progress import SILENT, RichProgress
    from edgeport.gate import GateRequest, evaluate_gate
    from edgeport.gate.reporters import step_summary_path

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
        pool=pool_choice(pool_file, pool_tags, ray_address),
        junit=junit,
        step_summary=step_summary_path() if github else None,
    )
    report = evaluate_gate(request, SILENT if quiet or as_json else RichProgress())
    emit_gate(report.as_dict(), junit, github, as_json)
    if not report.passed:
        raise click.exceptions.Exit(EXIT_CHECK_FAILED)
