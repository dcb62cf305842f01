"""The ``edgeport`` click group and its global options; the commands register on it."""

from __future__ import annotations

import click

from edgeport import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeport")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Distil, quantize, export and benchmark models for deployment."""
    ctx.obj = {"debug": debug}
