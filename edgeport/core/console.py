"""The rich consoles every command prints through.

A CI log is not a terminal: rich then assumes 80 columns and cuts table cells ("verdi…"). Off a
terminal the console gets a width no table of ours reaches, and tables size themselves to their
content, so a log shows every cell in full. ``COLUMNS`` still wins when the user sets it.

Markup is off: what edgeport prints holds user paths and third-party messages, and rich would read
their brackets as styles (``--out "exp[/x]"`` crashed the run's summary after the whole run). Styled
text is built as ``rich.text.Text`` instead.
"""

from __future__ import annotations

import os
import sys

from rich.console import Console

LOG_WIDTH = 400  # columns off a terminal: wide enough for any table edgeport prints


def make_console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    is_tty = hasattr(stream, "isatty") and stream.isatty()
    if is_tty or os.environ.get("COLUMNS"):
        return Console(stderr=stderr, markup=False)
    return Console(stderr=stderr, width=LOG_WIDTH, markup=False)
