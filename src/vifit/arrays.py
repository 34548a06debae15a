"""Host values as JAX arrays without compiling anything.

``jnp.asarray(numpy_array)`` compiles a small XLA program for each new shape, and
``jnp.zeros``/``jnp.eye``/``jnp.log`` on Python numbers one per operation: a few hundredths of a
second each on the first run and a cache read on every later one, dozens per fit in parameter
set-up. ``jax.device_put`` of a NumPy array of the right dtype compiles nothing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def on_device(x, dtype=None) -> jax.Array:
    """``x`` (NumPy or Python values) as a JAX array of ``dtype`` (default: JAX's default
    float, float32 unless x64 is on), placed by ``jax.device_put``."""
    dtype = jnp.result_type(float) if dtype is None else jax.dtypes.canonicalize_dtype(dtype)
    return jax.device_put(np.asarray(x, dtype=dtype))
