"""A progress bar for training, drawn between compiled epochs (never inside them)."""

from __future__ import annotations

import sys
from types import TracebackType

from rich.progress import Progress

from vifit.progress import fitted_progress


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
            self._progress, label = fitted_progress(
                self.label, self.total,
                [("train {task.fields[train]}", 14), ("held-out {task.fields[heldout]}", 17),
                 ("{task.fields[rate]} ex/s", 12)])
            self._progress.__enter__()
            self._task = self._progress.add_task(label, total=self.total,
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
