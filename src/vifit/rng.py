"""NumPy random numbers from a JAX key, for the small draws made outside compiled programs.

An eager ``jax.random.normal`` is a program of its own: on CPU it took 0.4 s to compile (for
every new shape), several times a first run. Start points and fixed base draws need no XLA:
they come from NumPy's PCG64, seeded by the key's bits, so they are still reproducible from
the seed and independent across keys.
"""

from __future__ import annotations

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
