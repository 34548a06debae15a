"""Running a compiled function over rows in blocks of one fixed size.

A jitted function compiles once per input shape; feeding it rows in blocks of ``size`` (the
last block padded by repeating its last row, the padding cut from the outputs) keeps it to one
program whatever the row count: a new shape costs a compile (0.3-0.7 s on CPU here).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def in_blocks(fn: Callable, arrays: Sequence, size: int) -> tuple[np.ndarray, ...]:
    """``fn(*block)`` for blocks of ``size`` rows of ``arrays`` (all with the same leading
    axis n), its outputs (a tuple of arrays with leading axis ``size``, or one array) as NumPy
    arrays with leading axis n."""
    n = int(np.shape(arrays[0])[0])
    pad = -n % size
    # Sliced on the host: slicing a JAX array eagerly compiled a program per shape.
    arrays = [np.asarray(a) for a in arrays]
    if pad:
        arrays = [np.concatenate([a, np.repeat(a[-1:], pad, 0)]) for a in arrays]
    outs = []
    for i in range(0, n + pad, size):
        out = fn(*(a[i:i + size] for a in arrays))
        outs.append(out if isinstance(out, tuple) else (out,))
    return tuple(np.concatenate([np.asarray(o[j]) for o in outs])[:n]
                 for j in range(len(outs[0])))
