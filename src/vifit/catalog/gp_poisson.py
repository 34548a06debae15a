"""Gaussian-process Poisson regression (posteriordb ``gp_pois_regr``), whitened.

Eleven counts k at x = -10, -8, ..., 10 (the data set of posteriordb's ``gp_pois_regr``):

    rho ~ Gamma(25, 4),  alpha ~ HalfNormal(2),  f_tilde ~ N(0, I_11),
    f = chol(K(x; alpha, rho) + 1e-5 I) f_tilde,  K_ij = alpha^2 exp(-(x_i - x_j)^2 / (2 rho^2)),
    k_i ~ Poisson(exp(f_i)).

(posteriordb's Stan model uses a jitter of 1e-10; float32 needs 1e-5, a change far below the
posterior's spread.) ``f`` is a deterministic site.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from vifit.adapters.numpyro import from_numpyro
from vifit.target import Target

DESCRIPTION = "Gaussian-process Poisson regression, posteriordb gp_pois_regr (real, d=13)"

X = np.arange(-10.0, 11.0, 2.0)
K = np.array([40, 37, 29, 12, 4, 3, 9, 19, 77, 82, 33])
JITTER = 1e-5


def model(x, k=None):
    rho = numpyro.sample("rho", dist.Gamma(25.0, 4.0))
    alpha = numpyro.sample("alpha", dist.HalfNormal(2.0))
    with numpyro.plate("point", x.shape[0]):
        f_tilde = numpyro.sample("f_tilde", dist.Normal(0.0, 1.0))
    sq = (x[:, None] - x[None, :]) ** 2
    cov = alpha**2 * jnp.exp(-0.5 * sq / rho**2) + JITTER * jnp.eye(x.shape[0])
    f = numpyro.deterministic("f", jnp.linalg.cholesky(cov) @ f_tilde)
    with numpyro.plate("point", x.shape[0]):
        numpyro.sample("k", dist.Poisson(jnp.exp(f)), obs=k)


def make() -> Target:
    return from_numpyro(model, jnp.asarray(X), k=jnp.asarray(K), target_name="gp_poisson")
