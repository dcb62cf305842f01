"""The rich consoles every command prints through.

A CI log is not a terminal: rich then assumes 80 columns and cut table cells ("verdi…"), and a width
no table reaches (400 columns, as before) made rows of 300 characters that no log viewer shows whole.
Off a terminal the console is 100 columns wide, and every table column folds (``overflow="fold"``):
long verdicts wrap inside their cell, nothing is cut, and paths a user copies (the artifact, the run
folder) are printed whole under the table. ``COLUMNS`` still wins when the user sets it.

Markup is off: what edgeport prints holds user paths and third-party messages, and rich would read
their brackets as styles (``--out "exp[/x]"`` crashed the run's summary after the whole run). Styled
text is built as ``rich.text.Text`` instead.
"""

from __future__ import annotations

import os
import sys

from rich.console import Console

LOG_WIDTH = 100  # columns off a terminal (a log, CI): tables wrap within it
_MAX_NAME_WIDTH = 24  # a longer name may fold: the numbers beside it need the room more


def make_console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    is_tty = hasattr(stream, "isatty") and stream.isatty()
    if is_tty or os.environ.get("COLUMNS"):
        return Console(stderr=stderr, markup=False)
    return Console(stderr=stderr, width=LOG_WIDTH, markup=False)


def name_width(cells) -> int | None:
    """The min_width of a column of short names (a runtime, a device): long intervals in the number columns
    squeezed such a column until "openvino" folded into "openvi" and "no"; the numbers wrap instead."""
    return min(max((len(cell) for cell in cells), default=0), _MAX_NAME_WIDTH) or None
