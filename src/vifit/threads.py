"""Keep BLAS single-threaded while vifit's compiled code runs.

On CPU, XLA calls LAPACK (from SciPy's OpenBLAS) for triangular solves and Cholesky factors.
OpenBLAS then starts its own thread pool, which fights XLA's threads for the cores: on a 2-core
machine a batched 100x100 triangular solve went from 0.07 ms to 54 ms per call. vifit's linear
algebra is small (d up to a few hundred), so one BLAS thread is the right choice; the limit is
scoped to vifit's own work and restored afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
