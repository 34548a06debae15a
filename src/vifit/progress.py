"""A progress bar for long fits, drawn between compiled chunks (never inside them)."""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column

# Columns of a bar: the label, the bar itself and "done/total" come first; the other fields
# are given as (template, width it needs), most important first. Those after the first are
# left out until the line fits with the label shown up to KEEP_LABEL characters (what model,
# family and optimizer: more use than the speed); then the label is shortened, never below
# MIN_LABEL characters; the bar takes what remains, between MIN_BAR and MAX_BAR.
MIN_LABEL, KEEP_LABEL, MIN_BAR, MAX_BAR = 12, 36, 8, 40
ELAPSED_WIDTH = 7  # 0:00:06


def fitted_progress(label: str, total: int, fields: list[tuple[str, int]],
                    console: Console | None = None) -> tuple[Progress, str]:
    """A rich ``Progress`` whose one line fits ``console.width``, and the label to give its
    task (shortened with an ellipsis when the line would not fit otherwise)."""
    console = console or Console(stderr=True)
    width = console.width - 1  # the last cell of a line can wrap on some terminals
    count = 2 * len(str(total)) + 1  # MofNCompleteColumn: 4600/10000
    kept = list(fields)
    elapsed = True

    def need(label_len: int, bar: int) -> int:
        parts = [label_len, bar, count] + [w for _, w in kept] + ([ELAPSED_WIDTH] if elapsed
                                                                   else [])
        return sum(parts) + len(parts) - 1  # one space between columns

    # The fields after the first (the objective) go before the label is cut below
    # KEEP_LABEL; then, until the line fits with the shortest label: the clock, the objective.
    while len(kept) > 1 and need(min(len(label), KEEP_LABEL), MIN_BAR) > width:
        kept.pop()
    while need(min(len(label), MIN_LABEL), MIN_BAR) > width and (kept or elapsed):
        if elapsed:
            elapsed = False
        else:
            kept.pop()
    spare = width - need(0, 0)
    # On a very narrow terminal the bar goes too and the label takes what is left.
    show_bar = spare - min(len(label), MIN_LABEL) >= MIN_BAR
    spare += 0 if show_bar else 1
    label_len = min(len(label), max(MIN_LABEL if show_bar else 1,
                                    spare - (MIN_BAR if show_bar else 0)))
    if label_len < len(label):
        label = label[:max(label_len - 1, 1)] + "…"
    bar = max(MIN_BAR, min(MAX_BAR, spare - label_len))
    columns = [TextColumn("[bold]{task.description}",
                          table_column=Column(no_wrap=True, max_width=label_len))]
    columns += [BarColumn(bar_width=bar)] if show_bar else []
    columns.append(MofNCompleteColumn())
    columns += [TextColumn(t, table_column=Column(no_wrap=True, min_width=w)) for t, w in kept]
    if elapsed:
        columns.append(TimeElapsedColumn())
    return Progress(*columns, console=console, transient=False), label


class FitProgress:
    """Context manager: ``update(steps_done, smoothed_objective, steps_per_second)``."""

    def __init__(self, total: int, label: str = "fit", enabled: bool | None = None,
                 metric: str = "ELBO", console: Console | None = None):
        if enabled is None:
            enabled = sys.stderr.isatty()
        self.enabled = enabled
        self.total = total
        self._progress: Progress | None = None
        self._task = None
        self.label = label
        self.metric = metric
        self.console = console

    def __enter__(self) -> FitProgress:
        if self.enabled:
            self._progress, label = fitted_progress(
                self.label, self.total,
                [(self.metric + " {task.fields[elbo]}", len(self.metric) + 11),
                 ("{task.fields[rate]} steps/s", 15)], self.console)
            self._progress.__enter__()
            self._task = self._progress.add_task(label, total=self.total, elbo="   -", rate="-")
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
            self._progress, label = fitted_progress(self.label, self.total, [("rows", 4)])
            self._progress.__enter__()
            self._task = self._progress.add_task(label, total=self.total)
        return self

    def update(self, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=done, total=total)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)
