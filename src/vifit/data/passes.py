"""Full passes over the data, in compiled chunks of rows: the log-likelihood sum and its
gradient at one point (the control variate's reference), and ``log p(x, z_j)`` for a set of
draws (the final ELBO, log Z and k-hat). Memory stays bounded by the chunk, whatever N; data
held in memory are sliced on the device inside one compiled program, memory-mapped data are
read from the file a chunk at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vifit.data.target import DataTarget, chunked_sum

Array = jax.Array
# Values held at once in a pass over draws x rows (float32: 64 MB).
PASS_VALUES = 2**24
# Rows read from a memory-mapped file per host chunk.
HOST_CHUNK_ROWS = 65_536
# Budget, in row evaluations (draws x rows), of the final full-data evaluation; n_eval is
# scaled down to fit it (never below MIN_EVAL draws) and the fit says so in its notes.
EVAL_ROW_BUDGET = 2e9
MIN_EVAL = 256


def eval_draws(n_eval: int, n_rows: int) -> int:
    """The draws the final evaluation can afford: ``n_eval``, or fewer when
    ``n_eval * n_rows`` exceeds ``EVAL_ROW_BUDGET`` (at least ``MIN_EVAL``)."""
    affordable = int(EVAL_ROW_BUDGET // n_rows)
    return n_eval if n_eval <= affordable else max(min(n_eval, MIN_EVAL), affordable)


def lik_value_and_grad(target: DataTarget, z: Array) -> tuple[Array, Array]:
    """``sum_i log_lik(z, x_i)`` over all rows and its gradient in z, ``((), (dim,))``."""
    if not target.out_of_core:
        fn = _device_value_and_grad(target)
        return _all_processes(fn(z, target.device_data()))
    total, grad = jnp.zeros((), z.dtype), jnp.zeros_like(z)
    step = _host_value_and_grad(target)
    for start in range(0, target.n_rows, HOST_CHUNK_ROWS):
        rows = jax.tree.map(lambda a: np.asarray(a[start:start + HOST_CHUNK_ROWS]),
                            target.data)
        v, g = step(z, rows)
        total, grad = total + v, grad + g
    return _all_processes((total, grad))


def _all_processes(parts: Any) -> Any:
    """Sums over this process's rows -> sums over every process's rows (a no-op in one)."""
    from vifit.data.hosts import sum_over_processes

    if jax.process_count() == 1:
        return parts
    return jax.tree.map(jnp.asarray, sum_over_processes(parts))


def _device_value_and_grad(target: DataTarget):
    cached = getattr(target, "_vg_device", None)
    if cached is None:
        def fn(z, data):
            return jax.value_and_grad(lambda u: chunked_sum(target.log_lik, u, data,
                                                            target.n_rows))(z)

        cached = target._vg_device = jax.jit(fn)
    return cached


def _host_value_and_grad(target: DataTarget):
    cached = getattr(target, "_vg_host", None)
    if cached is None:
        cached = target._vg_host = jax.jit(
            jax.value_and_grad(lambda u, rows: jnp.sum(target.log_lik(u, rows))))
    return cached


def full_log_density(target: DataTarget, z: np.ndarray | Array,
                     on_chunk: Callable[[int, int], None] | None = None,
                     float64: bool = False) -> np.ndarray:
    """``log p(x, z_j)`` on the full data for draws ``z (n, dim)``, ``(n,)`` float64.
    ``on_chunk(rows_done, n_rows)`` is called after each chunk (for a progress bar).
    ``float64``: computed in float64 throughout (``jax.enable_x64``), the floating data cast
    a host chunk at a time (the rounding check; no float32 partial sums)."""
    # a float32 pass keeps the session's own setting (a user may have float64 on)
    with jax.enable_x64(True) if float64 else contextlib.nullcontext():
        z = jnp.asarray(z, jnp.float64 if float64 else None)
        n = z.shape[0]
        rows_per = HOST_CHUNK_ROWS if float64 else _rows_per_chunk(target, n)
        partial = _draws_pass(target)
        total = np.zeros(n, dtype=np.float64)
        data = None if target.out_of_core or float64 else target.device_data()
        for start in range(0, target.n_rows, rows_per):
            stop = min(target.n_rows, start + rows_per)
            if data is None:
                rows = jax.tree.map(lambda a: host_rows(a[start:stop], float64), target.data)
            else:
                rows = jax.tree.map(lambda a: a[start:stop], data)
            total += np.asarray(partial(z, rows), dtype=np.float64)
            if on_chunk is not None:
                on_chunk(stop, target.n_rows)
        prior = np.asarray(jax.jit(jax.vmap(target.log_prior))(z), dtype=np.float64)
    from vifit.data.hosts import sum_over_processes

    return prior + np.asarray(sum_over_processes(total), dtype=np.float64)


def host_rows(a: Any, float64: bool) -> np.ndarray:
    """Rows ``a`` as a NumPy array, floating ones cast to float64 when ``float64``."""
    a = np.asarray(a)
    return a.astype(np.float64) if float64 and np.issubdtype(a.dtype, np.floating) else a


def _rows_per_chunk(target: DataTarget, n: int) -> int:
    return int(max(1, min(target.n_rows, PASS_VALUES // max(n, 1))))


def pass_chunks(target: DataTarget, n: int) -> int:
    """How many float32 partial sums ``full_log_density`` adds in float64 for ``n`` draws."""
    return -(-target.n_rows // _rows_per_chunk(target, n))


def _draws_pass(target: DataTarget):
    cached = getattr(target, "_draws_pass", None)
    if cached is None:
        cached = target._draws_pass = jax.jit(
            jax.vmap(lambda u, rows: jnp.sum(target.log_lik(u, rows)), in_axes=(0, None)))
    return cached


def full_logw(target: DataTarget, family: Any, params: Any, key: Array, n: int,
              progress: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` draws ``z (n, dim)`` of q and their ``log p(x, z_j) - log q(z_j)``, ``(n,)``
    float64, with log p on the full data; a progress bar over the rows when ``progress``."""
    from vifit.progress import PassProgress

    z, log_q = jax.jit(lambda p, k: family.sample_and_log_prob(p, k, n))(params, key)
    with PassProgress(target.n_rows, f"full-data evaluation · {n} draws",
                      enabled=progress) as bar:
        logp = full_log_density(target, z, on_chunk=bar.update)
    return np.asarray(z), logp - np.asarray(log_q, dtype=np.float64)
