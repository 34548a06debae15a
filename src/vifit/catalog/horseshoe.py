"""Sparse regression with the regularized horseshoe prior (Piironen & Vehtari, 2017), non-centred.

    tau ~ HalfCauchy(tau0),  lambda_k ~ HalfCauchy(1),  c2 ~ InvGamma(2, 8),  z_k ~ N(0, 1),
    lambda_tilde_k = sqrt(c2 lambda_k^2 / (c2 + tau^2 lambda_k^2)),
    beta_k = tau lambda_tilde_k z_k,
    alpha ~ N(0, 5^2),  sigma ~ HalfNormal(2),  y_i ~ N(alpha + x_i beta, sigma^2),

with tau0 = p0 / (p - p0) / sqrt(n) for p0 = 3 expected non-zero coefficients (slab scale 2,
slab df 4). Data from a fixed seed: n = 60, p = 25, three non-zero coefficients. Heavy tails
and a funnel in (tau, z): hard for Gaussian q.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from vifit.adapters.numpyro import from_numpyro
from vifit.target import Target

DESCRIPTION = "regularized horseshoe sparse regression, n=60, p=25 (seeded data, d=54)"


def data(n: int = 60, p: int = 25, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    beta = np.zeros(p)
    beta[:3] = [2.0, -1.5, 1.0]
    return x, 0.5 + x @ beta + rng.normal(size=n)


def model(x, y=None, p0: float = 3.0, slab_scale: float = 2.0, slab_df: float = 4.0):
    n, p = x.shape
    tau0 = p0 / (p - p0) / np.sqrt(n)
    tau = numpyro.sample("tau", dist.HalfCauchy(tau0))
    c2 = numpyro.sample("c2", dist.InverseGamma(slab_df / 2, slab_df * slab_scale**2 / 2))
    with numpyro.plate("coef", p):
        lam = numpyro.sample("lambda", dist.HalfCauchy(1.0))
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    lam_tilde = jnp.sqrt(c2 * lam**2 / (c2 + tau**2 * lam**2))
    beta = numpyro.deterministic("beta", tau * lam_tilde * z)
    alpha = numpyro.sample("alpha", dist.Normal(0.0, 5.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0))
    with numpyro.plate("obs", n):
        numpyro.sample("y", dist.Normal(alpha + x @ beta, sigma), obs=y)


def make() -> Target:
    x, y = data()
    return from_numpyro(model, jnp.asarray(x), y=jnp.asarray(y), target_name="horseshoe")
