"""Bayesian linear regression with correlated coefficients (posteriordb ``sblrc-blr``;
simulated, N = 100, D = 5):

    beta_k ~ N(0, 10^2),  sigma ~ HalfNormal(10)  (``normal_lpdf(sigma | 0, 10)`` on sigma > 0),
    y_i ~ N(X_i beta, sigma^2).

No intercept; posteriordb simulated the data so that the coefficients' posterior
correlations are about 0.8.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from vifit.adapters.numpyro import from_numpyro
from vifit.catalog.posteriordb import load
from vifit.target import Target

DESCRIPTION = "Bayesian linear regression, posteriordb sblrc-blr (simulated, N=100, d=6)"


def data() -> tuple[np.ndarray, np.ndarray]:
    d = load("sblrc")
    return np.asarray(d["X"], dtype=np.float64), np.asarray(d["y"], dtype=np.float64)


def model(x, y=None):
    beta = numpyro.sample("beta", dist.Normal(0.0, 10.0).expand([x.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(10.0))
    with numpyro.plate("row", x.shape[0]):
        numpyro.sample("y", dist.Normal(x @ beta, sigma), obs=y)


def make() -> Target:
    x, y = data()
    return from_numpyro(model, jnp.asarray(x), y=jnp.asarray(y), target_name="blr")
