"""Progress display for long work (training, calibration, benchmarking).

Stages take a ``Progress`` and call ``progress.task(...)``; the CLI hands them a
rich-backed one that draws on stderr (stdout stays clean for ``--json``), tests
and library users get the silent default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Advance = Callable[..., None]


class Progress:
    """Silent progress: the interface every stage uses."""

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Advance]:
        yield lambda steps=1, **info: None

    def log(self, message: str) -> None:
        """A one-line status message."""


class RichProgress(Progress):
    """Progress bars on stderr. Top-level tasks stay on screen when finished; a task started inside
    another (a training epoch bar inside a search trial) shares the same display and is removed
    when it ends."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, markup=False)  # descriptions hold paths: see core/console.py
        self._bar: Any = None  # a rich Progress while a task is open
        self._depth = 0

    def _display(self):
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichBar

        return RichBar(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}", markup=False),
            console=self.console,
            transient=False,
        )

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Advance]:
        if self._bar is None:
            self._bar = self._display()
            self._bar.start()
        bar, nested = self._bar, self._depth > 0
        self._depth += 1
        task_id = bar.add_task(description, total=total, info="")

        def advance(steps: int = 1, total: int | None = None, **info) -> None:
            """``total``: a new total, where the first was a bound (a search that ended early)."""
            text = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items())
            bar.update(task_id, advance=steps, total=total, **({"info": text} if info else {}))

        try:
            yield advance
        finally:
            self._depth -= 1
            if nested:
                bar.remove_task(task_id)
            if self._depth == 0:
                bar.stop()
                self._bar = None

    def log(self, message: str) -> None:
        (self._bar.console if self._bar is not None else self.console).print(message, highlight=False)


SILENT = Progress()
