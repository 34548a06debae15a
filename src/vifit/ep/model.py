"""The model description EP works on: a Gaussian prior times terms of linear projections.

    p(z)  proportional to  N(z; m0, S0) * prod_i t(a_i^T z; data_i),   z in R^d, i = 1..n.

Inside, EP works in whitened coordinates w, z = m0 + L0 w with S0 = L0 L0^T, where the prior is
N(0, I) and term i sees u_i = c_i + b_i^T w (b_i = L0^T a_i, c_i = a_i^T m0). The posterior
precision there is I + sum_i tau_i b_i b_i^T, whose eigenvalues are >= 1 while the site
precisions are >= 0: well conditioned in float32 even when S0 is a nearly singular GP kernel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vifit.ep.terms import Term, get_term
from vifit.errors import ConfigError
from vifit.target import Target

Array = jax.Array
_LOG_2PI = math.log(2.0 * math.pi)


def _float(x) -> Array:
    return jnp.asarray(x, dtype=jnp.result_type(float))


class Factorized:
    """A factorized model for EP (and, through ``target()``, for VI).

    Args:
      term: the likelihood of each projection: a Term (``Probit()``, ``Logistic()``,
        ``Poisson()``, ``StudentT(df, scale)``, ``Gaussian(sd)``, ``Custom(log_t)``), a
        registered name (``"probit"``), or a function ``log_t(u, datum) -> scalar``.
      data: per-term data, a pytree whose leaves have leading axis n (labels, counts, ...).
      design: ``(n, d)`` rows a_i of the projections u_i = a_i^T z; ``None`` means the identity
        (one term per coordinate, as in GP classification: then d = n).
      prior_mean: ``(d,)`` (default 0).
      prior_cov: ``(d, d)`` positive definite; or ``prior_sd``, a scalar or ``(d,)`` of prior
        standard deviations (default 1). Give one of them.
      param_names: one name per coordinate of z (default ``z[j]``).
      name: a label for reports.
      exact: known answers (``log_z``, ``mean``, ``cov`` of z), passed on to the Target.
    """

    def __init__(self, term: str | Term, data: Any, design: Any = None, *,
                 prior_mean: Any = None, prior_cov: Any = None, prior_sd: Any = None,
                 param_names: Sequence[str] | None = None, name: str = "factorized",
                 exact: dict[str, Any] | None = None):
        self.term = get_term(term)
        self.data = self.term.prepare(data)
        leaves = jax.tree.leaves(self.data)
        if not leaves:
            raise ConfigError("data is empty; give one datum per term (e.g. the labels y).")
        n = int(np.shape(leaves[0])[0]) if np.ndim(leaves[0]) else 0
        if n == 0 or any(np.ndim(x) == 0 or np.shape(x)[0] != n for x in leaves):
            raise ConfigError("every leaf of data needs the same leading axis: one row per term.")
        if design is None:
            a = np.eye(n)
        else:
            a = np.asarray(design, dtype=np.float64)
            if a.ndim != 2 or a.shape[0] != n:
                raise ConfigError(
                    f"design must have shape (n_terms, d) = ({n}, d), got {a.shape}; row i is the "
                    "projection a_i with u_i = a_i @ z."
                )
        if not np.all(np.isfinite(a)):
            raise ConfigError("design has non-finite entries.")
        d = a.shape[1]
        m0 = np.zeros(d) if prior_mean is None else np.broadcast_to(
            np.asarray(prior_mean, dtype=np.float64), (d,)).copy()
        s0 = self._prior_cov(prior_cov, prior_sd, d)
        try:
            l0 = np.linalg.cholesky(s0)
        except np.linalg.LinAlgError as exc:
            raise ConfigError(
                "prior_cov is not positive definite; add a small jitter to its diagonal "
                "(e.g. 1e-6 times its largest variance)."
            ) from exc
        names = tuple(f"z[{j}]" for j in range(d)) if param_names is None else tuple(param_names)
        if len(names) != d:
            raise ConfigError(f"param_names has {len(names)} names for d = {d} coordinates.")
        self.n, self.dim, self.name = n, d, name
        self.param_names = names
        self.exact = dict(exact or {})
        # float64 copies for answers and checks; working copies in the default float dtype.
        self.design64, self.prior_mean64, self.prior_cov64, self.prior_chol64 = a, m0, s0, l0
        self.design, self.prior_mean, self.prior_chol = _float(a), _float(m0), _float(l0)
        self.proj = _float(a @ l0)  # (n, d) rows b_i = L0^T a_i
        self.offset = _float(a @ m0)  # (n,) c_i = a_i^T m0

    @staticmethod
    def _prior_cov(prior_cov, prior_sd, d: int) -> np.ndarray:
        if prior_cov is not None and prior_sd is not None:
            raise ConfigError("give prior_cov or prior_sd, not both.")
        if prior_cov is not None:
            s0 = np.asarray(prior_cov, dtype=np.float64)
            if s0.shape != (d, d):
                raise ConfigError(f"prior_cov must have shape ({d}, {d}), got {s0.shape}.")
            return 0.5 * (s0 + s0.T)
        sd = np.broadcast_to(np.asarray(1.0 if prior_sd is None else prior_sd, np.float64), (d,))
        if np.any(sd <= 0):
            raise ConfigError("prior_sd must be positive.")
        return np.diag(sd**2)

    def __repr__(self) -> str:
        return f"Factorized(name={self.name!r}, term={self.term.name}, n={self.n}, d={self.dim})"

    def to_z(self, w: Array) -> Array:
        """Whitened coordinates to the model's: ``w (..., d) -> z (..., d)``."""
        return self.prior_mean + w @ self.prior_chol.T

    def log_likelihood(self, z: Array) -> Array:
        """sum_i log t(a_i^T z; data_i) for one ``z (d,)``."""
        u = self.design @ z
        return jnp.sum(jax.vmap(self.term.log_t)(u, self.data))

    def log_density(self, z: Array) -> Array:
        """The normalized prior times the terms, at ``z (d,)``: its integral is the evidence."""
        r = jax.scipy.linalg.solve_triangular(self.prior_chol, z - self.prior_mean, lower=True)
        log_prior = (-0.5 * jnp.sum(r**2) - jnp.sum(jnp.log(jnp.diag(self.prior_chol)))
                     - 0.5 * self.dim * _LOG_2PI)
        return log_prior + self.log_likelihood(z)

    def constrain(self, z: Array) -> dict[str, Array]:
        return {name: z[..., j] for j, name in enumerate(self.param_names)}

    def target(self, whiten: bool = True) -> Target:
        """The same model as a vifit Target, so VI can be run on it and compared with EP.

        ``whiten=True`` (default): coordinates w with z = m0 + L0 w and prior N(0, I), the
        coordinates EP works in (well conditioned); ``constrain`` reports z by name.
        ``whiten=False``: coordinates z themselves.
        """
        # check=False: the density is assembled from validated data and a Term that EP itself
        # evaluates; the checks would only cost compilations.
        if not whiten:
            return Target(self.log_density, dim=self.dim, param_names=self.param_names,
                          name=self.name, exact=self.exact, check=False)
        def log_density(w):
            # p(w) = p(z(w)) |L0|: the prior's 1/|L0| cancels, so Z (the evidence) is unchanged.
            return -0.5 * jnp.sum(w**2) - 0.5 * self.dim * _LOG_2PI + self.log_likelihood(
                self.to_z(w))

        def constrain(w):
            return self.constrain(self.to_z(w))

        return Target(log_density, dim=self.dim, param_names=[f"w[{j}]" for j in range(self.dim)],
                      constrain=constrain, name=self.name, exact=self.exact, check=False)
