"""Gaussian families: mean-field, full-rank (Cholesky) and low-rank plus diagonal.

Every scale is stored on the log scale so that any real parameter vector is a valid
distribution and the optimizer needs no constraints.
"""

from __future__ import annotations

import math

from typing import ClassVar

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

from vifit.arrays import on_device
from vifit.errors import ConfigError
from vifit.families.base import Array, Family, Params, gaussian_entropy

_LOG_2PI = math.log(2.0 * math.pi)  # a Python float, so float64 fits keep full precision


def _draws_and_log_prob(loc: Array, eps: Array, z: Array, log_det_scale: Array,
                        score_z: Array | None) -> tuple[Array, Array]:
    """log q at z = loc + A eps from eps alone: log N(eps; 0, I) - log|A|, no solve.

    ``score_z`` (n, d) = grad_z log q(z), given for path-only gradients: the returned log q then
    has the same value but differentiates only through z (sticking the landing).
    """
    log_q = -0.5 * jnp.sum(eps**2, -1) - log_det_scale - 0.5 * loc.shape[-1] * _LOG_2PI
    if score_z is None:
        return z, log_q
    stop = jax.lax.stop_gradient
    return z, stop(log_q) + jnp.sum(stop(score_z) * (z - stop(z)), -1)


def _loc(dim: int, loc: Array | None) -> Array:
    if loc is None:
        return on_device(np.zeros(dim))
    return jnp.asarray(loc, dtype=jnp.result_type(float))


class MeanField(Family):
    """Diagonal Gaussian: params ``loc (d,)``, ``log_scale (d,)``."""

    init_scale: float = 0.1
    name: ClassVar[str] = "meanfield"
    gaussian_form: ClassVar[str | None] = "diagonal"

    def init(self, key: Array, dim: int, loc: Array | None = None) -> Params:
        del key
        return {"loc": _loc(dim, loc),
                "log_scale": on_device(np.full(dim, math.log(self.init_scale)))}

    def sample(self, params: Params, key: Array, n: int) -> Array:
        eps = jax.random.normal(key, (n,) + params["loc"].shape)
        return params["loc"] + jnp.exp(params["log_scale"]) * eps

    def sample_and_log_prob(self, params, key, n, *, path_only=False):
        eps = jax.random.normal(key, (n,) + params["loc"].shape)
        scale = jnp.exp(params["log_scale"])
        z = params["loc"] + scale * eps
        score_z = -eps / scale if path_only else None
        return _draws_and_log_prob(params["loc"], eps, z, jnp.sum(params["log_scale"]), score_z)

    def log_prob(self, params: Params, z: Array) -> Array:
        u = (z - params["loc"]) * jnp.exp(-params["log_scale"])
        return -0.5 * jnp.sum(u**2) - jnp.sum(params["log_scale"]) - 0.5 * z.shape[-1] * _LOG_2PI

    def entropy(self, params: Params) -> Array:
        return gaussian_entropy(2.0 * jnp.sum(params["log_scale"]), params["loc"].shape[-1])

    def mean(self, params: Params) -> Array:
        return params["loc"]

    def covariance(self, params: Params) -> Array:
        return jnp.diag(jnp.exp(2.0 * params["log_scale"]))

    def from_gaussian(self, mean: Array, cov: Array) -> Params:
        # The diagonal of cov, not of the precision: keeps each marginal's width.
        return {"loc": jnp.asarray(mean), "log_scale": 0.5 * jnp.log(jnp.diag(cov))}


def cholesky_to_raw(chol: Array) -> Array:
    """Inverse of ``_cholesky``: the unconstrained matrix of a lower factor with positive
    diagonal."""
    return jnp.tril(chol, -1) + jnp.diag(jnp.log(jnp.diag(chol)))


@jax.jit
def raw_from_cov(cov: Array) -> Array:
    """``cholesky_to_raw(cholesky(cov))`` as one program (eagerly, five)."""
    return cholesky_to_raw(jnp.linalg.cholesky(cov))


def _cholesky(raw: Array) -> Array:
    """Lower-triangular factor with a positive diagonal from an unconstrained square matrix:
    strictly-lower part as is, diagonal through exp (so the diagonal of ``raw`` is log-scale)."""
    return jnp.tril(raw, -1) + jnp.diag(jnp.exp(jnp.diag(raw)))


class FullRank(Family):
    """Gaussian with dense covariance L L^T: params ``loc (d,)``, ``chol (d, d)``.

    ``chol`` is unconstrained: its strictly-lower triangle is L's, its diagonal is log diag(L),
    and its upper triangle is unused (it gets zero gradient).
    """

    init_scale: float = 0.1
    name: ClassVar[str] = "fullrank"
    gaussian_form: ClassVar[str | None] = "dense"

    def init(self, key: Array, dim: int, loc: Array | None = None) -> Params:
        del key
        return {"loc": _loc(dim, loc), "chol": on_device(np.eye(dim) * math.log(self.init_scale))}

    def sample(self, params: Params, key: Array, n: int) -> Array:
        eps = jax.random.normal(key, (n,) + params["loc"].shape)
        return params["loc"] + eps @ _cholesky(params["chol"]).T

    def sample_and_log_prob(self, params, key, n, *, path_only=False):
        eps = jax.random.normal(key, (n,) + params["loc"].shape)
        chol = _cholesky(params["chol"])
        z = params["loc"] + eps @ chol.T
        score_z = None
        if path_only:  # grad_z log q = -Sigma^-1 (z - loc) = -L^-T eps: one solve, not differentiated
            score_z = -jsl.solve_triangular(jax.lax.stop_gradient(chol).T, eps.T, lower=False).T
        return _draws_and_log_prob(params["loc"], eps, z, jnp.sum(jnp.diag(params["chol"])),
                                   score_z)

    def log_prob(self, params: Params, z: Array) -> Array:
        chol = _cholesky(params["chol"])
        u = jsl.solve_triangular(chol, z - params["loc"], lower=True)
        return -0.5 * jnp.sum(u**2) - jnp.sum(jnp.diag(params["chol"])) - 0.5 * z.shape[-1] * _LOG_2PI

    def entropy(self, params: Params) -> Array:
        return gaussian_entropy(2.0 * jnp.sum(jnp.diag(params["chol"])), params["loc"].shape[-1])

    def mean(self, params: Params) -> Array:
        return params["loc"]

    def covariance(self, params: Params) -> Array:
        chol = _cholesky(params["chol"])
        return chol @ chol.T

    def from_gaussian(self, mean: Array, cov: Array) -> Params:
        """A host (NumPy) ``cov`` is factored in float64 and the factor cast to mean's dtype:
        a float32 Cholesky of a rotated covariance with eigenvalues 1e-8 and 0.5 (a
        spike-and-slab posterior's cross mode) lost the small one to cancellation, and auto's
        mixture started from a broken component."""
        loc = jnp.asarray(mean)
        if isinstance(cov, np.ndarray):
            try:
                chol = np.linalg.cholesky(np.asarray(cov, np.float64))
            except np.linalg.LinAlgError:
                pass
            else:
                raw = np.tril(chol, -1) + np.diag(np.log(np.diag(chol)))
                return {"loc": loc, "chol": jnp.asarray(raw, loc.dtype)}
        return {"loc": loc, "chol": raw_from_cov(jnp.asarray(cov))}


class LowRank(Family):
    """Gaussian with covariance F F^T + diag(exp(2 log_scale)), F of shape (d, rank).

    Costs O(d * rank^2) per log-density instead of O(d^3): the choice for large d with a few
    strongly correlated directions. ``F`` starts small and random because F = 0 is a saddle.
    """

    rank: int = 2

    def __check_init__(self):
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise ConfigError(f"the lowrank family's rank must be a positive integer, got "
                              f"{self.rank!r}.")
    init_scale: float = 0.1
    name: ClassVar[str] = "lowrank"

    def init(self, key: Array, dim: int, loc: Array | None = None) -> Params:
        rank = min(self.rank, dim)
        return {
            "loc": _loc(dim, loc),
            "factor": 0.01 * self.init_scale * jax.random.normal(key, (dim, rank)),
            "log_scale": on_device(np.full(dim, math.log(self.init_scale))),
        }

    def sample(self, params: Params, key: Array, n: int) -> Array:
        k1, k2 = jax.random.split(key)
        dim, rank = params["factor"].shape
        eps_r = jax.random.normal(k1, (n, rank))
        eps_d = jax.random.normal(k2, (n, dim))
        return params["loc"] + eps_r @ params["factor"].T + jnp.exp(params["log_scale"]) * eps_d

    def _capacitance_chol(self, params: Params) -> tuple[Array, Array]:
        # Woodbury: Sigma^-1 = D^-2 - D^-2 F C^-1 F^T D^-2 with C = I + F^T D^-2 F (rank x rank).
        inv_d2 = jnp.exp(-2.0 * params["log_scale"])
        scaled = params["factor"] * inv_d2[:, None]
        cap = jnp.eye(params["factor"].shape[1]) + params["factor"].T @ scaled
        return jnp.linalg.cholesky(cap), scaled

    def _logdet(self, cap_chol: Array, params: Params) -> Array:
        return 2.0 * jnp.sum(jnp.log(jnp.diag(cap_chol))) + 2.0 * jnp.sum(params["log_scale"])

    def log_prob(self, params: Params, z: Array) -> Array:
        cap_chol, scaled = self._capacitance_chol(params)
        r = z - params["loc"]
        inv_d2 = jnp.exp(-2.0 * params["log_scale"])
        v = jsl.solve_triangular(cap_chol, scaled.T @ r, lower=True)
        maha = jnp.sum(r**2 * inv_d2) - jnp.sum(v**2)
        return -0.5 * maha - 0.5 * self._logdet(cap_chol, params) - 0.5 * z.shape[-1] * _LOG_2PI

    def entropy(self, params: Params) -> Array:
        cap_chol, _ = self._capacitance_chol(params)
        return gaussian_entropy(self._logdet(cap_chol, params), params["loc"].shape[-1])

    def mean(self, params: Params) -> Array:
        return params["loc"]

    def covariance(self, params: Params) -> Array:
        f = params["factor"]
        return f @ f.T + jnp.diag(jnp.exp(2.0 * params["log_scale"]))

    def from_gaussian(self, mean: Array, cov: Array) -> Params:
        """The top-``rank`` eigen-directions of cov as the factor, and the diagonal of what they
        leave (floored at 1% of cov's diagonal, so every scale stays positive)."""
        dim = cov.shape[-1]
        rank = min(self.rank, dim)
        vals, vecs = jnp.linalg.eigh(cov)
        top_vals, top_vecs = vals[::-1][:rank], vecs[:, ::-1][:, :rank]
        factor = top_vecs * jnp.sqrt(jnp.maximum(top_vals, 0.0))
        rest = jnp.maximum(jnp.diag(cov) - jnp.sum(factor**2, axis=1), 0.01 * jnp.diag(cov))
        return {"loc": jnp.asarray(mean), "factor": factor, "log_scale": 0.5 * jnp.log(rest)}
