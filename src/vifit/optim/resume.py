"""Checkpoint and resume for fits: a folder with one file per optimization stage.

``FitCheckpoint.open(directory, fingerprint)`` checks that the folder belongs to the same fit
(``fit.json`` holds the fingerprint: target, family, optimizer, seed, ... ; a different one is
refused rather than silently resumed), and ``child(name)`` names one stage of it (``auto``'s
Gaussian and flow fits, an objective's warm start). The loop (``vifit.optim.loop.run_loop``)
saves a stage's state between compiled chunks, at most every ``every`` seconds, and once more
when the stage ends; each file is written atomically (``vifit.checkpoint``), so a process killed
at any moment leaves the previous state or the new one. Resuming replays the same compiled
chunks from the saved state with the saved PRNG key, so a fit killed and resumed ends with the
same numbers as one never interrupted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from vifit.checkpoint import load_array, load_group, read_meta, save_checkpoint
from vifit.errors import ConfigError

FINGERPRINT = "fit.json"
DEFAULT_EVERY = 10.0  # seconds between saves of a running stage


class Saved(NamedTuple):
    state: Any  # the loop's State pytree
    params: Any  # the stage's returned parameters (the window average when it converged)
    trace: np.ndarray
    meta: dict[str, Any]  # done, stale, best, finished, stop_reason, seconds, ...


class FitCheckpoint:
    """One stage's file in a checkpoint folder (see the module docstring)."""

    def __init__(self, directory: Path, stage: str = "fit", every: float = DEFAULT_EVERY):
        self.directory = Path(directory)
        self.stage = stage
        self.every = float(every)

    @classmethod
    def open(cls, directory: str | Path, fingerprint: dict[str, Any],
             every: float = DEFAULT_EVERY) -> FitCheckpoint:
        """The checkpoint folder for the fit described by ``fingerprint`` (JSON-able): created
        if missing; ConfigError if it holds another fit's checkpoint."""
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise ConfigError(f"--checkpoint {str(directory)!r} is a file; give a folder.")
        directory.mkdir(parents=True, exist_ok=True)
        record = directory / FINGERPRINT
        want = json.loads(json.dumps(fingerprint, default=str))
        if record.is_file():
            try:
                have = json.loads(record.read_text())
            except ValueError:
                have = None
            if have != want:
                diff = sorted(k for k in set(want) | set(have or {})
                              if (have or {}).get(k) != want.get(k))
                raise ConfigError(
                    f"the checkpoint in {str(directory)!r} is from a different fit (differs in "
                    f"{', '.join(diff) or 'its record'}); use a new folder, or delete this one "
                    "to start over.")
        else:
            tmp = record.with_name(f".{FINGERPRINT}.tmp{os.getpid()}")
            tmp.write_text(json.dumps(want, indent=1, sort_keys=True))
            os.replace(tmp, record)
        return cls(directory, "fit", every)

    def child(self, name: str) -> FitCheckpoint:
        """The checkpoint of a named sub-stage (its own file in the same folder)."""
        return FitCheckpoint(self.directory, f"{self.stage}.{name}", self.every)

    @property
    def path(self) -> Path:
        return self.directory / f"{self.stage}.npz"

    def load(self, template_state: Any) -> Saved | None:
        """The saved stage, with the structure of ``template_state``, or None if none."""
        if not self.path.is_file():
            return None
        meta = read_meta(self.path)
        state = load_group(self.path, "state", template_state)
        params = load_group(self.path, "params", template_state.params)
        return Saved(state, params, load_array(self.path, "trace"), meta)

    def save(self, state: Any, params: Any, trace: np.ndarray, meta: dict[str, Any]) -> None:
        save_checkpoint(self.path, {"state": state, "params": params,
                                    "trace": np.asarray(trace)}, meta)
