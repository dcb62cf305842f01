"""What several commands share: option types, exit codes, the gate's output and the fallback exit."""

from __future__ import annotations

import json
import math

import click

from edgeport.config import MAX_SEED

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


def exit_if_outside_tolerance(manifest: dict) -> None:
    """A model outside its tolerance, or one that does not ship (``ships``: not faster than fp32), is still
    written (to be inspected), but the command fails (exit 1)."""
    fallback, guard = manifest.get("fallback"), manifest.get("guard")
    if (fallback is not None and not fallback["within_tolerance"]) or (guard and not guard["within_tolerance"]):
        raise click.exceptions.Exit(EXIT_CHECK_FAILED)
    if manifest.get("ships") is False:
        raise click.exceptions.Exit(EXIT_CHECK_FAILED)


def reduce_range_value(value: str) -> bool | str:
    """--reduce-range auto|true|false as the config value: "auto" stays a string."""
    return value if value == "auto" else value == "true"


def emit_gate(report: dict, junit, github: bool, as_json: bool) -> None:
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


def pool_options(command=None, *, ray_address: bool = True):
    """--pool, --tags and (unless the command has its own) --ray-address: measure on a device pool."""
    options = [
        click.option(
            "--pool",
            "pool_file",
            type=click.Path(dir_okay=False),
            help="Devices file (TOML): measure on its devices over ssh, several at once through Ray (edgeport[ray]).",
        ),
        click.option(
            "--tags",
            "pool_tags",
            multiple=True,
            help="With --pool: only devices with these tags, e.g. board=rpi5,arch=aarch64 (repeatable).",
        ),
    ]
    if ray_address:
        options.append(
            click.option(
                "--ray-address",
                help="With --pool: a Ray cluster whose nodes declare the devices; default: a local Ray instance.",
            )
        )

    def decorate(function):
        for option in reversed(options):
            function = option(function)
        return function

    return decorate if command is None else decorate(command)


def pool_choice(pool_file: str | None, tags: tuple[str, ...], ray_address: str | None):
    """The --pool choice (None without --pool), its tags checked; --tags and --ray-address need --pool."""
    from edgeport.benchmarks.pool.devices import PoolChoice, parse_tags

    if pool_file is None:
        if tags or ray_address:
            raise click.UsageError("--tags and --ray-address choose the devices of --pool: add --pool FILE")
        return None
    return PoolChoice(pool_file, parse_tags(tags), ray_address)
