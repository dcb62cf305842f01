"""``edgeport list``: the datasets, models and quantization backends edgeport knows."""

from __future__ import annotations

import click

from edgeport.cli.app import cli


@cli.command(name="list")
def list_registries() -> None:
    """Show the datasets, models and quantization backends edgeport knows."""
    from edgeport.data import list_datasets
    from edgeport.models import list_models
    from edgeport.quantize import config_types, list_backends

    click.echo(f"datasets: {', '.join(list_datasets())}")
    click.echo(f"models:   {', '.join(list_models())} (or package.module:factory)")
    click.echo(f"backends: {', '.join(list_backends())}")
    for name, kind in config_types().items():
        if name in list_backends():  # each backend's settings: its config type's fields
            click.echo(f"  {name} ({kind.__name__}): {', '.join(kind.options())}")
