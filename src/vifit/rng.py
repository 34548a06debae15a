"""NumPy random numbers from a JAX key, for the small draws made outside compiled programs.

An eager ``jax.random.normal`` is a program of its own: on CPU it took 0.4 s to compile (for
every new shape), several times a first run. Start points and fixed base draws need no XLA:
they come from NumPy's PCG64, seeded by the key's bits, so they are still reproducible from
the seed and independent across keys.
"""

from __future__ import annotations

import functools

import jax
import numpy as np


def numpy_rng(key: jax.Array) -> np.random.Generator:
    """A NumPy generator determined by the JAX PRNG ``key`` (typed or raw uint32)."""
    data = key if not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) else \
        jax.random.key_data(key)
    words = np.asarray(data, dtype=np.uint32).ravel()
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(words.tolist())))


def standard_normal(key: jax.Array, shape: tuple[int, ...], dtype) -> np.ndarray:
    """Standard normal draws of ``shape`` in ``dtype``, from ``numpy_rng(key)``."""
    return numpy_rng(key).standard_normal(shape).astype(dtype)


def classic_threefry(fn):
    """``fn`` run under JAX's classic threefry lowering (``jax.threefry_partitionable(False)``).

    XLA on CPU compiles the default "partitionable" lowering of the threefry generator slowly:
    0.8-0.9 s for a lone ``jax.random.normal`` against 0.2-0.3 s classic, and every fitting
    loop and evaluation program draws. The classic lowering is the same generator with other
    streams (results stay reproducible from the seed); the partitionable one exists to draw
    random arrays sharded over devices efficiently, which vifit does not do (its draws are
    small and replicated). Applied at vifit's entry points (``fit``, ``evidence``,
    ``FitResult``'s draws), so that a program compiled in a fit is the one its result's
    methods reuse."""
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with jax.threefry_partitionable(False):
            return fn(*args, **kwargs)

    return wrapped
