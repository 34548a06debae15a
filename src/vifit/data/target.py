"""Data targets: a prior and per-datum log-likelihoods over a data set of N rows.

``log p(x, z) = log_prior(z) + sum_i log_lik(z, x_i)``. Split this way, a fit can estimate the
sum from a minibatch of rows (``vifit.data.minibatch``) instead of touching all N at every
draw of every step. A DataTarget is also a plain Target whose ``log_density`` is the full-data
sum (evaluated in compiled chunks of rows, so memory stays bounded), so every family,
objective, estimator and ``vifit.evidence`` work on it unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vifit.errors import TargetError, describe
from vifit.target import Array, Target

# Rows per compiled chunk of the full-data sum; bounds memory at (draws x CHUNK_ROWS) values.
CHUNK_ROWS = 4096
# Rows whose log_lik is compared one by one against a batch of them (the independence check).
CHECK_ROWS = 4


def data_rows(data: Any) -> int:
    """N, the leading size shared by every array of ``data``; TargetError otherwise."""
    leaves, _ = jax.tree.flatten(data)
    if not leaves:
        raise TargetError("data is empty: give an array (or a dict/tuple of arrays) with one "
                          "row per datum along the first axis.")
    sizes = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(data)[0]:
        name = jax.tree_util.keystr(path) or "data"
        if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
            raise TargetError(f"data{name if name != 'data' else ''} is a "
                              f"{type(leaf).__name__}, not an array; give NumPy or JAX arrays "
                              "(np.asarray(...)), one row per datum along the first axis.")
        if len(leaf.shape) == 0:
            raise TargetError(f"data{name if name != 'data' else ''} is a scalar; every array "
                              "of data needs a leading axis of rows (one per datum).")
        if not (np.issubdtype(leaf.dtype, np.number) or np.issubdtype(leaf.dtype, np.bool_)):
            raise TargetError(f"data{name if name != 'data' else ''} has dtype {leaf.dtype}; "
                              "data must be numeric arrays.")
        sizes.append((name, int(leaf.shape[0])))
    n = sizes[0][1]
    if any(s != n for _, s in sizes):
        listing = ", ".join(f"{name}: {s}" for name, s in sizes)
        raise TargetError(f"the arrays of data disagree on the number of rows (first axis): "
                          f"{listing}. Every array needs one row per datum.")
    if n == 0:
        raise TargetError("data has 0 rows.")
    return n


def _on_host(leaf: Any) -> bool:
    return isinstance(leaf, np.memmap)


class DataTarget(Target):
    """``log p(x, z) = log_prior(z) + sum_i log_lik(z, x_i)`` over data with N rows.

    ``DataTarget(log_prior, log_lik, data, dim=3)`` (or ``init=z0``), with optional
    ``param_names`` and ``constrain`` as for ``Target``.

    Attributes:
      log_prior: ``z (dim,) -> scalar``: the log prior density (any constant may be dropped).
      log_lik: ``(z (dim,), batch) -> (B,)``: the log-likelihood of each row of ``batch``,
        which is ``data`` sliced along its first axis (B rows). Each value must depend on its
        own row only.
      data: an array, or a dict/tuple (any pytree) of arrays sharing a first axis of N rows:
        NumPy, JAX, or ``np.memmap`` / ``np.load(..., mmap_mode="r")`` arrays (read by rows,
        never loaded whole unless the full-data density is asked for).
      n_rows: N.

    Checked at once: the data's shapes, ``log_prior`` a finite scalar with a finite gradient,
    ``log_lik`` one finite value per row (for a batch of 1, of several, and of all N rows at
    ``init``), rows independent (a batch's values equal the rows' own), all under
    ``jax.vmap`` over z.
    """

    def __init__(
        self,
        log_prior: Callable[[Array], Array],
        log_lik: Callable[[Array, Any], Array],
        data: Any,
        dim: int | None = None,
        *,
        init: Any = None,
        param_names: Sequence[str] | None = None,
        constrain: Callable[[Array], dict[str, Array]] | None = None,
        name: str = "data model",
        exact: dict[str, Any] | None = None,
        check: bool = True,
    ):
        for what, fn, sig in (("log_prior", log_prior, "z -> scalar"),
                              ("log_lik", log_lik, "(z, batch) -> (B,) per-row values")):
            if not callable(fn):
                raise TargetError(f"{what} must be a function {sig}, got "
                                  f"{type(fn).__name__}.")
        self.n_rows = data_rows(data)
        self.data = data
        self.log_prior = log_prior
        self.log_lik = log_lik
        self._device_data = None
        self._sharded_over = None  # device count of a sharded _device_data
        super().__init__(self._full_log_density, dim, init=init, param_names=param_names,
                         constrain=constrain, differentiable=True, name=name, exact=exact,
                         check=False)
        if check:
            self.check()

    def __repr__(self) -> str:
        return f"DataTarget(name={self.name!r}, dim={self.dim}, n_rows={self.n_rows})"

    # -- the data ------------------------------------------------------------------------------

    @property
    def out_of_core(self) -> bool:
        """Whether the data are memory-mapped files, read by rows rather than held in memory."""
        return any(_on_host(leaf) for leaf in jax.tree.leaves(self.data))

    def device_data(self, sharding: Any = None) -> Any:
        """The data as JAX arrays (loaded once; memory-mapped arrays are read whole here): on
        the default device, or sharded along the rows by ``sharding`` (a
        ``vifit.data.devices.RowSharding``), which then becomes the copy every later pass
        reads (one copy of the rows, not two)."""
        if sharding is not None and self._sharded_over != sharding.count:
            self._device_data = sharding.place_rows(self.data)
            self._sharded_over = sharding.count
        if self._device_data is None:
            # Concrete even when first asked for inside a jit trace (a cached tracer would
            # break every later use).
            # device_put: one copy of the rows (jnp.asarray made two on CPU: 2x the data).
            with jax.ensure_compile_time_eval():
                self._device_data = jax.tree.map(lambda a: jax.device_put(np.asarray(a)),
                                                 self.data)
        return self._device_data

    def rows(self, index: np.ndarray) -> Any:
        """The rows ``index`` (host integer array) of every array of the data, as NumPy."""
        return jax.tree.map(lambda a: np.asarray(a[index]), self.data)

    # -- densities -----------------------------------------------------------------------------

    def _full_log_density(self, z: Array) -> Array:
        """The full-data ``log p(x, z)`` for one z: the prior plus the sum over all rows, in
        compiled chunks of ``CHUNK_ROWS`` rows (memory bounded, whatever N)."""
        return self.log_prior(z) + chunked_sum(self.log_lik, z, self.device_data(),
                                               self.n_rows)

    def minibatch_log_density(self, batch: Any, scale: Array | float) -> Callable[[Array], Array]:
        """``z -> log_prior(z) + scale * sum(log_lik(z, batch))``: with ``scale = N / B`` for
        a uniformly drawn batch of B rows, an unbiased estimate of the full ``log p(x, z)``."""
        def log_density(z: Array) -> Array:
            return self.log_prior(z) + scale * jnp.sum(self.log_lik(z, batch))

        return log_density

    # -- checks --------------------------------------------------------------------------------

    def check(self) -> None:
        """The Target checks, on the prior and the likelihood separately, so that a failure
        names the function at fault; then every row's log_lik at ``init``."""
        z = self.init
        prior = _checked_scalar("log_prior", self.log_prior, z, self.dim)
        if not bool(jnp.isfinite(prior)):
            raise TargetError(f"log_prior is {float(prior)} at the initial point; it must be "
                              "finite there. Pass init=<a point inside the prior's support>.")
        k = min(CHECK_ROWS, self.n_rows)
        head = jax.tree.map(lambda a: jnp.asarray(np.asarray(a[:k])), self.data)
        many = self._checked_lik(z, head, k)
        single = jnp.concatenate([
            self._checked_lik(z, jax.tree.map(lambda a, i=i: a[i:i + 1], head), 1)
            for i in range(k)])
        if not np.allclose(np.asarray(many), np.asarray(single), rtol=1e-4, atol=1e-4):
            raise TargetError(
                "log_lik gives different values for a row alone and for the same row in a "
                f"batch (rows 0..{k - 1}: {np.asarray(single)} alone, {np.asarray(many)} "
                "together). Each value must depend on its own row only: no sums, means or "
                "normalizations across the batch inside log_lik.")
        try:
            jax.vmap(lambda u: jnp.sum(self.log_lik(u, head)) + self.log_prior(u))(
                jnp.stack([z, z]))
            jax.grad(lambda u: jnp.sum(self.log_lik(u, head)) + self.log_prior(u))(z)
        except Exception as exc:
            raise TargetError(
                f"log_prior or log_lik fails under jax.vmap or jax.grad ({describe(exc)}); "
                "vifit evaluates many draws at once and differentiates them. Use jax.numpy "
                "on z, no Python control flow on its values.") from exc
        self._check_constrain()
        self._check_all_rows(z)

    def _checked_lik(self, z: Array, batch: Any, k: int) -> Array:
        try:
            value = self.log_lik(z, batch)
        except Exception as exc:
            raise TargetError(
                f"log_lik failed on a batch of {k} row(s) with {describe(exc)}. It is called "
                f"as log_lik(z, batch) with z of shape ({self.dim},) and batch the data sliced "
                "to B rows along the first axis.") from exc
        value = self._as_log_value(value)
        if value.shape != (k,):
            hint = ("it returned a scalar: return the per-row values, without summing"
                    if value.shape == () else
                    f"it returned shape {value.shape}")
            raise TargetError(f"log_lik must return one value per row, shape ({k},) for a batch "
                              f"of {k} row(s); {hint}.")
        return value

    def _check_all_rows(self, z: Array) -> None:
        """Every row's log_lik at z is finite (one pass over the data, in chunks)."""
        bad_rows: list[int] = []
        n_bad = 0
        values = jax.jit(lambda u, b: self.log_lik(u, b))
        for start in range(0, self.n_rows, CHUNK_ROWS * 16):
            stop = min(self.n_rows, start + CHUNK_ROWS * 16)
            chunk = jax.tree.map(lambda a: jnp.asarray(np.asarray(a[start:stop])), self.data)
            v = np.asarray(values(z, chunk))
            bad = np.flatnonzero(~np.isfinite(v))
            n_bad += bad.size
            bad_rows.extend((bad[: max(0, 5 - len(bad_rows))] + start).tolist())
        if n_bad:
            raise TargetError(
                f"log_lik is not finite at the initial point for {n_bad} of {self.n_rows} rows "
                f"(first: rows {bad_rows}). Check those rows for NaN or inf values, or start "
                "from another point with init=...")


def _checked_scalar(what: str, fn: Callable, z: Array, dim: int) -> Array:
    try:
        value = fn(z)
    except Exception as exc:
        raise TargetError(f"{what} failed at the initial point with {describe(exc)}. It is "
                          f"called with one vector z of shape ({dim},).") from exc
    value = Target._as_log_value(value)
    if value.shape != ():
        raise TargetError(f"{what} must return a scalar, got shape {value.shape}; sum its "
                          "terms (jnp.sum) before returning.")
    grad = np.asarray(jax.grad(fn)(z))
    if not np.all(np.isfinite(grad)):
        raise TargetError(f"the gradient of {what} is not finite at the initial point.")
    return value


def chunked_sum(log_lik: Callable[[Array, Any], Array], z: Array, data: Any, n: int,
                chunk: int = CHUNK_ROWS) -> Array:
    """``sum_i log_lik(z, data)_i`` over all ``n`` rows, ``chunk`` rows at a time inside one
    compiled ``lax.scan`` (the last chunk is masked, not a second shape)."""
    if n <= chunk:
        return jnp.sum(log_lik(z, data))
    n_chunks = -(-n // chunk)

    def body(total, i):
        start = jnp.minimum(i * chunk, n - chunk)  # the last chunk overlaps; mask the overlap
        rows = jax.tree.map(lambda a: jax.lax.dynamic_slice_in_dim(a, start, chunk), data)
        index = start + jnp.arange(chunk)
        fresh = index >= i * chunk
        return total + jnp.sum(jnp.where(fresh, log_lik(z, rows), 0.0)), None

    total, _ = jax.lax.scan(body, jnp.zeros((), z.dtype), jnp.arange(n_chunks))
    return total


__all__ = ["DataTarget", "chunked_sum", "data_rows"]
