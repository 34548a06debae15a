"""A progress bar for long fits, drawn between compiled chunks (never inside them)."""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class FitProgress:
    """Context manager: ``update(steps_done, smoothed_objective, steps_per_second)``."""

    def __init__(self, total: int, label: str = "fit", enabled: bool | None = None,
                 metric: str = "ELBO"):
        if enabled is None:
            enabled = sys.stderr.isatty()
        self.enabled = enabled
        self.total = total
        self._progress: Progress | None = None
        self._task = None
        self.label = label
        self.metric = metric

    def __enter__(self) -> FitProgress:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(self.metric + " {task.fields[elbo]}"),
                TextColumn("{task.fields[rate]} steps/s"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.label, total=self.total, elbo="   -", rate="-")
        return self

    def update(self, done: int, smoothed: float, rate: float) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=done, elbo=f"{smoothed:.4g}",
                                  rate=f"{rate:,.0f}")

    def finish(self, done: int) -> None:
        if self._progress is not None:
            # A converged fit ends early: shrink the bar's total so it reads complete.
            self._progress.update(self._task, completed=done, total=done)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)


class PassProgress:
    """Context manager for a pass over the rows of a data set: ``update(rows_done, n_rows)``."""

    def __init__(self, total: int, label: str, enabled: bool | None = None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.total, self.label = total, label
        self._progress: Progress | None = None
        self._task = None

    def __enter__(self) -> PassProgress:
        if self.enabled:
            self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TextColumn("rows"),
                                      TimeElapsedColumn(), console=Console(stderr=True))
            self._progress.__enter__()
            self._task = self._progress.add_task(self.label, total=self.total)
        return self

    def update(self, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=done, total=total)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)
