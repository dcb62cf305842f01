"""The ``edgeport`` command line: one module per command, registered on the group in app.py.

Exit codes: 0 success, 1 a gate or check failed, 2 bad input or usage. Errors
are one line on stderr; ``--debug`` shows the traceback instead. Importing this package
imports no torch: every command loads its stage code when it runs.
"""

from __future__ import annotations

import sys

import click

from edgeport.cli import bench, gate, listing, quantize, run, search  # noqa: F401  (register the commands)
from edgeport.cli.app import cli
from edgeport.cli.common import EXIT_BAD_INPUT, EXIT_CHECK_FAILED
from edgeport.errors import EdgeportError

__all__ = ["EXIT_BAD_INPUT", "EXIT_CHECK_FAILED", "cli", "main"]


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
