"""Progress display for long work (training, calibration, benchmarking).

Stages take a ``Progress`` and call ``progress.task(...)``; the CLI hands them a
rich-backed one that draws on stderr (stdout stays clean for ``--json``), tests
and library users get the silent default.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

Advance = Callable[..., None]


class Progress:
    """Silent progress: the interface every stage uses."""

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Advance]:
        yield lambda steps=1, **info: None

    def log(self, message: str) -> None:
        """A one-line status message."""


class RichProgress(Progress):
    """Progress bars on stderr, one per task, kept on screen when finished."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Advance]:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichBar, TextColumn,
                                   TimeElapsedColumn)

        with RichBar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                     TimeElapsedColumn(), TextColumn("{task.fields[info]}"),
                     console=self.console, transient=False) as bar:
            task_id = bar.add_task(description, total=total, info="")

            def advance(steps: int = 1, **info) -> None:
                text = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                 for k, v in info.items())
                bar.update(task_id, advance=steps, info=text)

            yield advance

    def log(self, message: str) -> None:
        self.console.print(message, highlight=False)


SILENT = Progress()
