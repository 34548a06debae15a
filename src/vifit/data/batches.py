"""Which rows each step sees: shuffled epochs without replacement, from the seed.

Step ``t`` belongs to epoch ``t // steps_per_epoch`` and takes the next ``B`` rows of that
epoch's permutation of ``0..N-1`` (the last ``N mod B`` rows of each permutation are left
out, so every batch has exactly B rows; as each epoch is a fresh permutation, every batch is
marginally a uniform draw of B distinct rows, and ``(N / B) sum_batch log_lik`` is unbiased
for the full sum). The permutation depends only on the seed and the epoch number: the same
seed draws the same minibatches whatever the number of devices or processes, and a resumed
fit continues with the batches it would have drawn.

The indices are made on the host, a chunk of steps at a time, and sorted within each batch
(the sum does not care about order; sorted reads are faster, above all from a memory-mapped
file).
"""

from __future__ import annotations

import numpy as np

_SALT = 0xDA7A


class BatchSchedule:
    """``indices(start, length) -> (length, B)`` int32 row numbers for steps
    ``start .. start + length - 1``."""

    def __init__(self, n_rows: int, batch_size: int, seed: int):
        if not 1 <= batch_size <= n_rows:
            raise ValueError(f"batch_size must be between 1 and N = {n_rows}, got {batch_size}")
        self.n_rows = int(n_rows)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.steps_per_epoch = self.n_rows // self.batch_size
        self._cached: tuple[int, np.ndarray] | None = None

    @property
    def scale(self) -> float:
        """N / B: the weight of each row of a batch in the estimate of the full sum."""
        return self.n_rows / self.batch_size

    def permutation(self, epoch: int) -> np.ndarray:
        if self._cached is None or self._cached[0] != epoch:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, _SALT, epoch]))
            dtype = np.int32 if self.n_rows < 2**31 else np.int64
            self._cached = (epoch, rng.permutation(self.n_rows).astype(dtype))
        return self._cached[1]

    def indices(self, start: int, length: int) -> np.ndarray:
        b, spe = self.batch_size, self.steps_per_epoch
        out = np.empty((length, b), dtype=np.int32 if self.n_rows < 2**31 else np.int64)
        for j, t in enumerate(range(start, start + length)):
            epoch, pos = divmod(t, spe)
            out[j] = np.sort(self.permutation(epoch)[pos * b:(pos + 1) * b])
        return out


def default_batch_size(n_rows: int) -> int | None:
    """The batch size a data fit uses when none is given: the full data (None) up to
    ``FULL_DATA_ROWS`` rows, else ``DEFAULT_BATCH`` rows.

    Below that size one full pass costs about as much as a few minibatch steps, and the
    full-data gradient has no subsampling noise. Above it, 1024 rows per step keep the
    subsampling noise of each step comparable to the Monte Carlo noise of q's own draws (the
    control variate removes most of it) while a step stays cheap."""
    return None if n_rows <= FULL_DATA_ROWS else DEFAULT_BATCH


FULL_DATA_ROWS = 20_000
DEFAULT_BATCH = 1024
