"""A progress bar for training, drawn between compiled epochs (never inside them)."""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class EpochProgress:
    """Context manager: ``update(epochs_done, train_bound, heldout_bound, examples_per_s)``."""

    def __init__(self, total: int, done: int = 0, label: str = "train",
                 enabled: bool | None = None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.total, self.done, self.label = total, done, label
        self._progress: Progress | None = None
        self._task = None

    def __enter__(self) -> EpochProgress:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("train {task.fields[train]}"),
                TextColumn("held-out {task.fields[heldout]}"),
                TextColumn("{task.fields[rate]} ex/s"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.label, total=self.total,
                                                 completed=self.done, train="-", heldout="-",
                                                 rate="-")
        return self

    def update(self, done: int, train: float, heldout: float | None, rate: float) -> None:
        if self._progress is None:
            return
        fields = {"train": f"{train:.3f}", "rate": f"{rate:,.0f}"}
        if heldout is not None:
            fields["heldout"] = f"{heldout:.3f}"
        self._progress.update(self._task, completed=done, **fields)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)
